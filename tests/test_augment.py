"""Augmentation: each operation on fixed seeds, labels kept, length bounds, Chinese, model-based ops, training split only."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest

from forge_testing import tiny_config, toy_rows, write_csv
from lmforge.config import AugmentConfig, DataConfig
from lmforge.data.augment import (
    AugmentContext,
    augment_split,
    plan_copies,
    random_delete,
    random_insert,
    random_swap,
    read_word_list,
    synonym_replace,
)
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.data.segment import is_chinese, segment
from lmforge.errors import ConfigError

WORDS = "the plot of this movie was very good and the actor was great".split()
SYN = {"good": ["fine", "nice"], "great": ["superb"], "movie": ["film"], "plot": ["story"]}


def syn(word: str) -> list[str]:
    return SYN.get(word.lower(), [])


def examples(texts: list[str], labels: list[str]) -> Examples:
    return Examples(Path("toy.csv"), texts, None, labels, list(range(2, len(texts) + 2)))


def test_swap_keeps_the_words_and_their_count() -> None:
    out = random_swap(WORDS, random.Random(0), 0.2)
    assert sorted(out) == sorted(WORDS) and out != WORDS
    assert out == random_swap(WORDS, random.Random(0), 0.2)  # same seed, same result
    assert random_swap(["one"], random.Random(0), 0.2) is None


def test_delete_drops_some_but_never_all() -> None:
    for seed in range(20):
        out = random_delete(WORDS, random.Random(seed), 0.3)
        assert 1 <= len(out) < len(WORDS)
        assert all(w in WORDS for w in out)
    assert random_delete(["one", "two"], random.Random(0), 1.0)  # even at rate 1, one word stays
    assert random_delete(["one"], random.Random(0), 0.5) is None


def test_insert_adds_synonyms_within_bounds() -> None:
    out = random_insert(WORDS, random.Random(1), 0.1, syn)
    added = len(out) - len(WORDS)
    assert 1 <= added <= max(1, round(0.1 * len(WORDS)))
    extra = list(out)
    for w in WORDS:
        extra.remove(w)
    assert all(w in sum(SYN.values(), []) for w in extra)
    assert random_insert(["zzz"], random.Random(0), 0.1, syn) is None


def test_synonym_replace_changes_content_words_only() -> None:
    out = synonym_replace(WORDS, random.Random(0), 0.2, syn)
    assert len(out) == len(WORDS)
    changed = [(a, b) for a, b in zip(WORDS, out, strict=True) if a != b]
    assert 1 <= len(changed) <= round(0.2 * len(WORDS))
    assert all(b in SYN[a] for a, b in changed)


def test_word_list_groups_are_symmetric(tmp_path: Path) -> None:
    path = tmp_path / "syn.txt"
    path.write_text("# comment\ngood, fine nice\n好 棒\n", encoding="utf-8")
    table = read_word_list(path)
    assert table["fine"] == ["good", "nice"] and table["好"] == ["棒"]
    with pytest.raises(ConfigError, match="not found"):
        read_word_list(tmp_path / "missing.txt")


def test_chinese_segmentation_words_and_chars() -> None:
    text = "这部电影非常好看，演员也很棒"
    assert is_chinese(text) and not is_chinese("a good movie")
    words, joiner = segment(text, "word")
    assert joiner == "" and "".join(words) == text and len(words) < len(text)
    chars, _ = segment(text, "char")
    assert chars == list(text)


def test_augment_split_keeps_labels_and_logs_samples(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    words = tmp_path / "syn.txt"
    words.write_text("good fine nice\nbad poor awful\nmovie film\n", encoding="utf-8")
    rows = toy_rows(40, seed=3)
    ex = examples([r["text"] for r in rows], [r["label"] for r in rows])
    targets = np.array([int(r["label"] == "positive") for r in rows])
    ops = ["swap", "delete", "insert", "synonym", "typo"]
    cfg = AugmentConfig(ops=ops, factor=1.5, seed=7, synonyms=str(words), log_samples=3)
    with caplog.at_level(logging.INFO, logger="lmforge.data"):
        out, out_targets = augment_split(ex, targets, cfg, LabelSpace("single", ["negative", "positive"]))
    logged = caplog.text  # before the second call, which logs too where an earlier run left lmforge at INFO
    assert out.texts[:40] == ex.texts and len(out) > 40 and len(out) <= 40 + 60
    assert len(out_targets) == len(out)
    for text, target, label, line in zip(out.texts[40:], out_targets[40:], out.labels[40:], out.lines[40:], strict=True):
        source = ex.lines.index(line)
        assert target == targets[source] and label == ex.labels[source]
        assert text != ex.texts[source]
    again, _ = augment_split(ex, targets, cfg, LabelSpace("single", ["negative", "positive"]))
    assert again.texts == out.texts  # seeded
    assert "augmented copies" in logged and logged.count(" -> ") == 3


def test_plan_copies_factor() -> None:
    plan = plan_copies(10, 2.5, ["swap", "delete"], random.Random(0))
    counts = np.bincount([i for i, _ in plan], minlength=10)
    assert len(plan) == 25 and counts.min() == 2 and counts.max() == 3


def test_chinese_augmentation_by_characters() -> None:
    texts = ["这部电影非常好看", "剧情很无聊，浪费时间"]
    ex = examples(texts, ["positive", "negative"])
    cfg = AugmentConfig(ops=["swap", "delete"], factor=2, units="char", seed=1)
    out, targets = augment_split(ex, np.array([1, 0]), cfg, LabelSpace("single", ["negative", "positive"]))
    for text, line in zip(out.texts[2:], out.lines[2:], strict=True):
        source = texts[line - 2]
        assert " " not in text and set(text) <= set(source) and 1 <= len(text) <= len(source)
    words, _ = augment_split(ex, np.array([1, 0]), cfg.model_copy(update={"units": "auto"}), LabelSpace("single", ["a", "b"]))
    for text, line in zip(words.texts[2:], words.lines[2:], strict=True):
        source_words = segment(texts[line - 2], "word")[0]
        assert " " not in text and text != texts[line - 2]
        assert set(segment(text, "word")[0]) <= set(source_words) or len(text) < len(texts[line - 2])


def test_embedding_neighbours_and_masked_lm_refills(tiny_bert: Path) -> None:
    from lmforge.data.augment_models import EmbeddingNeighbours, MaskFiller

    neighbours = EmbeddingNeighbours(str(tiny_bert), k=3)
    found = neighbours("good")
    assert len(found) == 3 and "good" not in found and all(w.isalpha() for w in found)
    assert neighbours("notaword") == []
    filler = MaskFiller(str(tiny_bert))
    texts = ["the movie was good", "a bad plot"]
    out = filler(texts, random.Random(0), 0.3, "word")
    for before, after in zip(texts, out, strict=True):
        assert after is not None and after != before and len(after.split()) == len(before.split())


def test_contextual_needs_a_masked_lm(tmp_path: Path, tiny_bert: Path) -> None:
    from transformers import BertConfig, BertModel

    bare = tmp_path / "bare"
    BertModel(BertConfig.from_pretrained(tiny_bert)).save_pretrained(bare)
    ctx = AugmentContext(AugmentConfig(ops=["contextual"]), LabelSpace("single", ["a", "b"]), str(bare))
    from lmforge.data.augment import build_ops

    with pytest.raises(ConfigError, match="no masked-LM head"):
        build_ops(ctx)


class Labeler:
    """Labels texts containing 'good' positive and everything else negative."""

    def predict(self, texts: list[str]) -> list[dict[str, str]]:
        return [{"label": "positive" if "good" in t else "negative"} for t in texts]


def test_paraphrase_through_a_registered_generator_with_filter() -> None:
    from lmforge.data import augment_models
    from lmforge.data.augment import build_ops

    if "test-rewriter" not in augment_models.GENERATORS:
        # Rewrites "X" as "Paraphrase: X indeed good": the filter must drop it for negative examples.
        augment_models.GENERATORS.add("test-rewriter", lambda cfg: lambda prompts: [
            "Paraphrase: " + p.rsplit("\n", 1)[-1] + " indeed good\nignored second line" for p in prompts])
    cfg = AugmentConfig(ops=["paraphrase"], generator="test-rewriter", filter_model="labeler", seed=123456)
    ctx = AugmentContext(cfg, LabelSpace("single", ["negative", "positive"]))
    ctx.cache["labeler"] = Labeler()
    ops = build_ops(ctx)
    keep = augment_models.label_filter(ctx)
    texts, targets = ["a good film", "a dull film"], np.array([1, 0])
    outputs = keep(ops["paraphrase"](texts, targets, random.Random(0)), targets)
    assert outputs == ["a good film indeed good", None]


def test_paraphrase_without_a_labeler_is_a_config_error() -> None:
    from lmforge.data.augment import build_ops

    ctx = AugmentContext(AugmentConfig(ops=["paraphrase"], generator="test-rewriter"), LabelSpace("single", ["a", "b"]))
    with pytest.raises(ConfigError, match="filter_model"):
        build_ops(ctx)


def test_unknown_operation_names_the_key() -> None:
    from lmforge.data.augment import build_ops

    with pytest.raises(ConfigError, match=r"data.augment.ops: unknown augmentation operation 'shuffle'; known: .*swap"):
        build_ops(AugmentContext(AugmentConfig(ops=["shuffle"]), LabelSpace("single", ["a", "b"])))


def test_finetune_augments_the_training_split_only(tiny_bert: Path, tmp_path: Path) -> None:
    from lmforge.config import TaskConfig
    from lmforge.data.pipeline import labeled_splits
    from lmforge.tasks import get_task

    data = write_csv(tmp_path / "toy.csv", toy_rows(60))
    cfg = DataConfig(**tiny_config(tiny_bert, data, tmp_path / "run")["data"])
    plain, _ = labeled_splits(cfg, get_task(TaskConfig()))
    cfg.augment = AugmentConfig(ops=["swap", "delete"], factor=1.0)
    augmented, _ = labeled_splits(cfg, get_task(TaskConfig()), model_source=str(tiny_bert))
    assert augmented["validation"][0].texts == plain["validation"][0].texts
    assert len(augmented["train"][0]) > len(plain["train"][0])
