"""NER and QA tasks on the real shared data with the real MiniLM tokenizer: alignment, spans and windows (no training)."""

from __future__ import annotations

import numpy as np
import pytest

from forge_testing import shared_data
from lmforge.config import DataConfig, TaskConfig
from lmforge.data.labels import LabelSpace
from lmforge.data.squad import read_squad
from lmforge.data.tagging import label_names, read_tagged
from lmforge.models.build import load_tokenizer, resolve
from lmforge.tasks import get_task

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm_tokenizer() -> object:
    try:
        return load_tokenizer(resolve("minilm-l6"))
    except Exception as exc:  # noqa: BLE001  the zoo model is not cached on this machine
        pytest.skip(f"minilm-l6 is not available here ({exc})")


def test_conll_gold_tags_come_back_as_gold_spans(minilm_tokenizer: object) -> None:
    examples = read_tagged(shared_data("conll2003", "valid.txt"))
    assert len(examples) == 3250 and examples.scheme == "bio"
    task = get_task(TaskConfig(name="ner"))
    labels = LabelSpace("tags", label_names(examples.types()))
    targets = task.targets(examples, labels)
    split = task.make_split("valid", examples, targets, minilm_tokenizer, DataConfig(max_length=256), labels)
    first_tokens = (np.asarray(split.token_labels.values) != -100).sum()
    assert first_tokens == sum(len(w) for w in examples.words)  # every word labeled once, none cut at 256 tokens
    outputs = np.stack([np.where(targets >= 0, targets, 0), np.ones_like(targets)], axis=2).astype(np.float32)
    found = task.predictions(outputs, split, labels)
    spans = lambda items: [(x["start"], x["end"], x["type"]) for x in items]  # noqa: E731
    assert all(spans(row["entities"]) == spans(row["gold"]) for row in found)
    assert task.metrics(outputs, targets, labels)["f1"] == 1.0


def test_resume_bmes_read_and_repaired() -> None:
    examples = read_tagged(shared_data("resume_ner", "train.txt"))
    assert examples.scheme == "bmes" and examples.repairs == 2
    assert set(examples.types()) == {"CONT", "EDU", "LOC", "NAME", "ORG", "PRO", "RACE", "TITLE"}


@pytest.mark.parametrize("parts", [("squad", "dev_shared.json"), ("cmrc2018", "trial.json")])
def test_training_windows_hold_the_exact_answers(minilm_tokenizer: object, parts: tuple[str, str]) -> None:
    examples = read_squad(shared_data(*parts), on_bad_rows="skip").subset(range(600))
    task = get_task(TaskConfig(name="qa", stride=64))
    split = task.make_split("x", examples, np.arange(len(examples)), minilm_tokenizer, DataConfig(max_length=192), LabelSpace("span"))
    f = split.features
    exact = inside = 0
    for k, (s, e) in enumerate(zip(f.start_positions, f.end_positions)):
        if s == f.cls_index[k]:
            continue
        answer = examples.first_answers()[f.example_index[k]]
        inside += 1
        exact += examples.contexts[f.example_index[k]][f.offsets[k][s][0]:f.offsets[k][e][1]] == answer.text
    assert inside >= len(examples) * 0.9 and exact / inside > 0.97, (exact, inside)
