"""Readers, validation errors, normalization, labels, splits, the token cache and batching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from forge_testing import toy_rows, write_csv
from lmforge.config import DataConfig, TaskConfig
from lmforge.data import tokenize as tok_mod
from lmforge.data.batching import plan_batches, shard
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.data.normalize import make_normalizer, to_halfwidth
from lmforge.data.pipeline import labeled_splits
from lmforge.data.sources import BadRows, read_table
from lmforge.data.split import split_indices
from lmforge.errors import DataError
from lmforge.tasks import get_task

ROWS = [{"text": "good film", "label": "pos"}, {"text": "bad film", "label": "neg"}]


def cfg_for(path: Path, **kw) -> DataConfig:
    return DataConfig(train=str(path), **kw)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_readers_agree(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"d.{fmt}"
    if fmt in ("csv", "tsv"):
        write_csv(path, ROWS, "," if fmt == "csv" else "\t")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq
        pq.write_table(pa.Table.from_pylist(ROWS), path)
    table = read_table(path)
    assert table.rows == ROWS and table.columns == ["text", "label"]


def test_plain_text_and_fasttext_labels(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_text("one example\n\n__label__pos a good one\n")
    table = read_table(path)
    assert table.rows == [{"text": "one example"}, {"text": "a good one", "label": "pos"}]
    assert table.lines == [1, 3]


def test_csv_lines_count_multiline_fields(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"two\nlines",a\nnext,b\n')
    assert read_table(path).lines == [2, 4]


@pytest.mark.parametrize(("content", "match"), [
    ("", "holds no rows"),
    ("text,label\n", "holds no rows"),
    ("sentence,label\nhi,a\n", "has no column 'text' \\(columns: sentence, label\\); set data.text_column"),
    ("text,label\nhi,a\n ,b\n", "line 3: empty text in column 'text'"),
    ("text,label\nhi,a\nyo,\n", "line 3: missing label in column 'label'"),
])
def test_bad_input_gives_one_line(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=match) as err:
        labeled_splits(cfg_for(path, split={"validation": 0.0}), get_task(TaskConfig()))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_undecodable_bytes_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"text,label\nfine,a\nbro\xffken,b\nok,a\n")
    with pytest.raises(DataError, match=r"bad.csv, line 3: bytes that are not valid utf-8"):
        read_table(path)
    table = read_table(path, on_bad_rows="skip")
    assert [r["text"] for r in table.rows] == ["fine", "ok"] and table.skipped == 1


def test_skip_counts_bad_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "d.csv"
    rows = toy_rows(40) + [{"text": "", "label": "positive"}, {"text": "odd", "label": ""}]
    write_csv(path, rows)
    with caplog.at_level("WARNING", logger="lmforge.data"):
        splits, _ = labeled_splits(cfg_for(path, on_bad_rows="skip"), get_task(TaskConfig()))
    assert sum(len(ex) for ex, _ in splits.values()) == 40
    assert "skipped 2 bad rows" in caplog.text


def test_unknown_label_in_validation_file(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", toy_rows(20))
    val = write_csv(tmp_path / "val.csv", [{"text": "meh", "label": "neutral"}])
    with pytest.raises(DataError, match=r"val.csv, line 2: unknown label 'neutral' \(known: negative, positive\)"):
        labeled_splits(cfg_for(train, validation=str(val)), get_task(TaskConfig()))


def test_singleton_label_blocks_stratified_split(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", toy_rows(20) + [{"text": "lonely", "label": "rare"}])
    with pytest.raises(DataError, match=r"d.csv, line 22: label 'rare' has only this one example.*stratify=false"):
        labeled_splits(cfg_for(path), get_task(TaskConfig()))
    splits, labels = labeled_splits(cfg_for(path, on_bad_rows="skip"), get_task(TaskConfig()))
    assert "rare" in labels.names and sum(len(ex) for ex, _ in splits.values()) == 20


def test_stratified_split_is_seeded_and_keeps_proportions() -> None:
    strata = np.array([0] * 80 + [1] * 20)
    a = split_indices(100, 0.25, 3, strata)
    b = split_indices(100, 0.25, 3, strata)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    kept, held = a
    assert len(held) == 25 and (strata[held] == 1).sum() == 5
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(100))


def test_normalization() -> None:
    norm = make_normalizer("nfkc", lowercase=True)
    assert norm("  Ｈｅｌｌｏ\u3000 Wörld\n ") == "hello wörld"
    assert to_halfwidth("ＡＢＣ，１２３\u3000好") == "ABC,123 好"
    assert make_normalizer("none", fullwidth_to_halfwidth=True)("ｆｕｌｌ") == "full"
    assert make_normalizer("none")("ｆｕｌｌ") == "ｆｕｌｌ"


def examples_with(labels: list) -> Examples:
    return Examples(Path("f.csv"), ["t"] * len(labels), None, labels, list(range(2, len(labels) + 2)))


def test_label_spaces() -> None:
    ex = examples_with([10, 2, 1.0, "2"])
    space = LabelSpace.infer(ex, "single")
    assert space.names == ["1", "2", "10"]
    _, y = space.encode(ex, BadRows())
    assert y.tolist() == [2, 1, 0, 1]
    named = LabelSpace("single", ["negative", "positive"])
    _, y = named.encode(examples_with([1, "Positive", "negative"]), BadRows())
    assert y.tolist() == [1, 1, 0]
    multi = LabelSpace.infer(examples_with(["a,b", ["c"], "b"]), "multi")
    _, y = multi.encode(examples_with(["a,b", ["c"], "b"]), BadRows())
    assert multi.names == ["a", "b", "c"] and y.tolist() == [[1, 1, 0], [0, 0, 1], [0, 1, 0]]
    with pytest.raises(DataError, match="line 3: label 'x' is not a number"):
        LabelSpace("regression").encode(examples_with([0.5, "x"]), BadRows())


def test_token_cache_skips_tokenization(tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    texts = [r["text"] for r in toy_rows(50)]
    first = tok_mod.tokenize(tokenizer, texts, None, 16, tmp_path)
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tokenized again")

    monkeypatch.setattr(tok_mod, "_run_tokenizer", refuse)
    second = tok_mod.tokenize(tokenizer, texts, None, 16, tmp_path)
    assert np.array_equal(first.input_ids.values, second.input_ids.values)
    assert first.input_ids.lengths.max() <= 16
    with pytest.raises(AssertionError):
        tok_mod.tokenize(tokenizer, texts, None, 12, tmp_path)  # another max length is another cache entry


def test_ragged_take_and_concat() -> None:
    r = tok_mod.Ragged.from_lists([[1, 2], [3], [4, 5, 6]])
    assert [r[i].tolist() for i in range(3)] == [[1, 2], [3], [4, 5, 6]]
    t = r.take([2, 0])
    assert [t[i].tolist() for i in range(2)] == [[4, 5, 6], [1, 2]]
    c = tok_mod.Ragged.concat([r, t])
    assert len(c) == 5 and c[4].tolist() == [1, 2]


@pytest.mark.parametrize("mode", ["random", "length_grouped", "token_budget"])
def test_batch_plans_cover_each_example_once(mode: str) -> None:
    lengths = np.random.default_rng(0).integers(3, 60, size=1000)
    plan = plan_batches(lengths, 16, mode, seed=1, epoch=0, max_tokens=400)
    assert sorted(np.concatenate(plan).tolist()) == list(range(1000))
    again = plan_batches(lengths, 16, mode, seed=1, epoch=0, max_tokens=400)
    assert all(np.array_equal(a, b) for a, b in zip(plan, again))
    other = plan_batches(lengths, 16, mode, seed=1, epoch=1, max_tokens=400)
    assert not all(np.array_equal(a, b) for a, b in zip(plan, other))
    if mode == "token_budget":
        assert all(lengths[b].max() * len(b) <= 400 for b in plan)
    if mode == "length_grouped":
        padded = sum(lengths[b].max() * len(b) for b in plan)
        assert padded < 1.1 * lengths.sum()


def test_shard_splits_global_batch() -> None:
    batch = np.arange(10)
    parts = [shard(batch, r, 2) for r in range(2)]
    assert np.concatenate(parts).tolist() == list(range(10)) and len(parts[0]) == 5


def test_a_huge_cell_trains_truncated(tmp_path: Path, tiny_bert: Path) -> None:
    from lmforge.data.pipeline import to_split
    from lmforge.models.build import load_tokenizer

    rows = toy_rows(20)
    rows[3]["text"] = "good " * 200_000  # about 1 MB in one cell, beyond the csv module's default limit
    path = write_csv(tmp_path / "big.csv", rows)
    splits, _ = labeled_splits(cfg_for(path, split={"validation": 0.0}), get_task(TaskConfig()))
    examples, targets = splits["train"]
    split = to_split("train", examples, targets, load_tokenizer(str(tiny_bert)), DataConfig(train=str(path), max_length=16), None)
    assert len(split) == 20 and int(split.lengths.max()) == 16


def test_an_unreadable_csv_row_names_its_line_or_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import csv

    from lmforge.data import sources

    path = tmp_path / "d.csv"
    path.write_text("text,label\nfine,a\n" + "x" * 5000 + ",b\nok,a\n")
    old = csv.field_size_limit(1000)
    monkeypatch.setattr(sources, "FIELD_LIMIT", 1000)
    try:
        with pytest.raises(DataError, match=r"d.csv, line 3: unreadable CSV row \(field larger than field limit") as err:
            read_table(path)
        assert "\n" not in str(err.value)
        table = read_table(path, on_bad_rows="skip")
        assert [r["text"] for r in table.rows] == ["fine", "ok"] and table.skipped == 1
    finally:
        csv.field_size_limit(old)


def test_containing_groups_keep_a_sentence_with_its_phrases() -> None:
    from lmforge.data.split import containing_groups

    texts = ["a good film", "The plot is thin and the acting is good", "acting is good", "thin", "a good film indeed", "好电影", "电影"]
    groups = containing_groups(texts)
    assert groups[0] == groups[4] == "a good film indeed"
    assert groups[2] == groups[3] == groups[1] == "the plot is thin and the acting is good"
    assert groups[6] == groups[5]


@pytest.mark.parametrize("group_by", ["containing_text", "doc"])
def test_group_split_shares_no_group(tmp_path: Path, group_by: str) -> None:
    from lmforge.data.split import containing_groups

    rows = []
    for d, r in enumerate(toy_rows(60)):
        rows += [{"text": f"{r['text']} number {d}", "label": r["label"], "doc": str(d)},
                 {"text": f"number {d}", "label": r["label"], "doc": str(d)}]
    path = write_csv(tmp_path / "frag.csv", rows)
    splits, _ = labeled_splits(cfg_for(path, split={"validation": 0.25, "group_by": group_by}), get_task(TaskConfig()))
    train, valid = (splits[n][0].texts for n in ("train", "validation"))
    assert len(train) + len(valid) == len(rows) and len(valid) >= 0.2 * len(rows)
    doc_of = {r["text"]: r["doc"] for r in rows}
    assert not {doc_of[t] for t in train} & {doc_of[t] for t in valid}
    roots = set(containing_groups(train + valid))
    for text in valid:  # a held-out sentence is inside no training text
        if text in roots:
            assert not any(f" {text} " in f" {other} " for other in train)


def test_held_out_longest_keeps_whole_sentences_only(tmp_path: Path) -> None:
    rows = []
    for d, r in enumerate(toy_rows(40)):
        rows += [{"text": f"{r['text']} number {d}", "label": r["label"]}, {"text": f"number {d}", "label": r["label"]}]
    path = write_csv(tmp_path / "frag.csv", rows)
    split = {"validation": 0.25, "test": 0.25, "group_by": "containing_text", "held_out": "longest"}
    splits, _ = labeled_splits(cfg_for(path, split=split), get_task(TaskConfig()))
    for name in ("validation", "test"):
        texts = splits[name][0].texts
        assert texts and all(t.split()[0] != "number" for t in texts)  # no phrase, only its sentence
    assert len(splits["train"][0]) + 2 * sum(len(splits[n][0]) for n in ("validation", "test")) == len(rows)


def test_held_out_longest_needs_groups() -> None:
    with pytest.raises(ValueError, match="group_by"):
        DataConfig(train="x.csv", split={"held_out": "longest"})
