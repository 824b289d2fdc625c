"""Extractive QA data: readers, answer repairs, article splits, windowed features, best answers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from transformers import BertTokenizer

from forge_testing import shared_data, tiny_vocab
from lmforge.data.squad import Answer, best_answers, locate_answer, qa_features, read_squad, split_by_article
from lmforge.errors import DataError, LmforgeError

CONTEXT = "the movie was good . the plot was bad . it is a great film and the actor was happy ."


def squad_file(path: Path, version: str = "1.1") -> Path:
    articles = [
        {"title": "Films", "paragraphs": [{"context": CONTEXT, "qas": [
            {"id": "q1", "question": "how was the actor", "answers": [{"text": "happy", "answer_start": 77},
                                                                     {"text": "was happy", "answer_start": 73}]},
            {"id": "q2", "question": "what was bad", "answers": [{"text": "the plot", "answer_start": 22}]},
        ]}]},
        {"title": "Other", "paragraphs": [{"context": "it is a film .", "qas": [
            {"id": "q3", "question": "what is it", "answers": [], "is_impossible": True},
        ]}]},
    ]
    path.write_text(json.dumps({"version": version, "data": articles}), encoding="utf-8")
    return path


def test_squad_json_keeps_references_titles_and_ids(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lmforge.data"):
        ex = read_squad(squad_file(tmp_path / "s.json", "v2.0"))
    assert ex.ids == ["q1", "q2", "q3"] and ex.titles == ["Films", "Films", "Other"]
    assert ex.answers[0] == [Answer("happy", 77), Answer("was happy", 73)]
    assert ex.answers[1] == [Answer("the plot", 21)] and ex.repairs == 1
    assert "1 answer_start values" in caplog.text and "question q2" in caplog.text
    assert ex.answers[2] == [] and ex.first_answers() == [Answer("happy", 77), Answer("the plot", 21), None]
    assert ex.where(1).endswith("s.json, question q2")


def test_locate_answer_picks_nearest_occurrence() -> None:
    assert locate_answer("a b a b a", "a", 3) == 4
    assert locate_answer("a b a b a", "a", 2) == 0
    assert locate_answer("a b a b a", "a", 8) == 8
    assert locate_answer("abc", "x", 0) is None


def test_missing_answer_text_is_error_or_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [{"id": "x1", "context": "Paris is in France.", "question": "where is Paris", "answers": [{"text": "France", "answer_start": 12}]},
            {"id": "x2", "context": "Paris is in France.", "question": "who", "answers": [{"text": "Berlin", "answer_start": 0}]}]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DataError, match=r"q\.jsonl, line 2: the answer 'Berlin' does not occur in the context"):
        read_squad(path)
    with caplog.at_level(logging.WARNING):
        ex = read_squad(path, on_bad_rows="skip")
    assert "skipped 1 bad rows" in caplog.text
    assert ex.ids == ["x1"] and ex.lines == [1] and ex.answers == [[Answer("France", 12)]]


def test_jsonl_columnar_answers_and_unlabeled(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"context": "ab cd", "question": "q", "answers": {"text": ["cd"], "answer_start": [3]}}) + "\n")
    assert read_squad(path).answers == [[Answer("cd", 3)]]
    path.write_text(json.dumps({"context": "ab cd", "question": "q"}) + "\n")
    assert read_squad(path).answers is None


def test_split_by_article_shares_no_article(tmp_path: Path) -> None:
    ex = read_squad(squad_file(tmp_path / "s.json"))
    train, validation = split_by_article(ex, 0.2, seed=0)
    assert len(train) + len(validation) == 3 and not set(train.titles) & set(validation.titles)


@pytest.fixture(scope="module")
def tokenizer() -> BertTokenizer:
    return BertTokenizer(vocab=tiny_vocab())


def test_windows_put_the_answer_in_the_second_window(tokenizer: BertTokenizer) -> None:
    context = "the movie was good . the actor was happy ."
    answer = Answer("happy", context.index("happy"))
    features = qa_features(tokenizer, ["how was it"], [context], max_length=16, stride=3, answers=[answer])
    assert len(features) == 2 and features.example_index == [0, 0]
    assert features.start_positions[0] == features.end_positions[0] == features.cls_index[0] == 0
    k, s, e = 1, features.start_positions[1], features.end_positions[1]
    assert s > 0 and context[features.offsets[k][s][0]:features.offsets[k][e][1]] == "happy"
    assert features.offsets[k][0] is None and features.token_type_ids is not None


def test_window_errors(tokenizer: BertTokenizer) -> None:
    with pytest.raises(LmforgeError, match="does not fit one window of max_length 16 and stride is 0"):
        qa_features(tokenizer, ["how was it"], [CONTEXT], max_length=16, stride=0)
    with pytest.raises(LmforgeError, match="question 0 takes"):
        qa_features(tokenizer, ["the movie " * 10], [CONTEXT], max_length=16, stride=4)


def test_best_answers_across_windows(tokenizer: BertTokenizer) -> None:
    contexts = ["the movie was good . the actor was happy .", "it is a film ."]
    features = qa_features(tokenizer, ["how was it", "what is it"], contexts, max_length=16, stride=3)
    start = np.zeros((len(features), 16))
    end = np.zeros((len(features), 16))
    last = [k for k, i in enumerate(features.example_index) if i == 0][-1]
    happy = next(t for t, o in enumerate(features.offsets[last]) if o and contexts[0][o[0]:o[1]] == "happy")
    start[last, happy - 1], end[last, happy] = 5.0, 4.0
    answers = best_answers(start, end, features, contexts)
    assert answers[0]["text"] == "was happy" and answers[0]["score"] == 9.0
    assert contexts[0][answers[0]["start"]:answers[0]["end"]] == "was happy"
    second = features.example_index.index(1)
    start[second, 0] = end[second, 0] = 3.0
    assert best_answers(start, end, features, contexts, allow_null=True)[1] == {"text": "", "score": 6.0, "start": -1, "end": -1}
    assert best_answers(start, end, features, contexts)[1]["text"] != ""
    assert best_answers(start, end, features, contexts, max_answer_length=1)[0]["text"] in ("was", "happy")


@pytest.mark.slow
def test_shared_qa_files_need_counted_repairs() -> None:
    assert read_squad(shared_data("squad", "dev_shared.json")).repairs == 0
    assert read_squad(shared_data("cmrc2018", "train.json")).repairs == 21
    trial = read_squad(shared_data("cmrc2018", "trial.json"), on_bad_rows="skip")
    assert trial.repairs == 5 and len(trial) == 1000
