"""Span metrics (NER entity scores, SQuAD and CMRC answer scores) and the classic span baselines."""

from __future__ import annotations

import random

import pytest

from lmforge.evaluation.span_baselines import fit_crf, lexical_answers, predict_crf, qa_units, word_features
from lmforge.evaluation.spans import (
    cmrc_exact,
    cmrc_f1,
    cmrc_tokens,
    entity_confusion,
    ner_metrics,
    normalize_squad,
    qa_convention,
    qa_metrics,
    squad_exact,
    squad_f1,
)

GOLD = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"]]
PRED = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O"]]


def test_ner_metrics_entity_level() -> None:
    m = ner_metrics(GOLD, PRED)
    assert m["micro_precision"] == pytest.approx(1 / 3) and m["micro_recall"] == pytest.approx(1 / 3)
    assert m["micro_f1"] == pytest.approx(1 / 3) and m["macro_f1"] == pytest.approx(1 / 3)
    assert m["per_class"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert m["per_class"]["ORG"]["precision"] == 0.0 and m["num_entities"] == 3 and m["num_sentences"] == 2
    assert ner_metrics(GOLD, GOLD)["micro_f1"] == 1.0


def test_entity_confusion_table() -> None:
    confusion = entity_confusion(GOLD, PRED)
    assert confusion["types"] == ["LOC", "ORG", "PER"]
    assert confusion["table"]["LOC"] == {"LOC": 0, "ORG": 1, "PER": 0, "missed": 0}
    assert confusion["table"]["ORG"]["missed"] == 1 and confusion["table"]["PER"]["PER"] == 1
    assert confusion["spurious"] == {"LOC": 0, "ORG": 1, "PER": 0}


def test_ner_metrics_rejects_unequal_lengths() -> None:
    with pytest.raises(Exception, match="sentence 0 has 4 gold tags but 3"):
        ner_metrics(GOLD[:1], [["O", "O", "O"]])


def test_squad_scores() -> None:
    assert normalize_squad("The  Denver Broncos!") == "denver broncos"
    assert squad_exact("The Broncos!", ["broncos"]) == 1.0
    assert squad_f1("the Denver Broncos won", ["Denver Broncos"]) == pytest.approx(0.8)
    assert squad_f1("Broncos", ["Denver Broncos", "Broncos"]) == 1.0
    assert squad_exact("", []) == 1.0 and squad_f1("x", []) == 0.0
    m = qa_metrics(["Denver Broncos", "an apple"], [["Denver Broncos"], ["apple pie"]], "en")
    assert m["exact_match"] == 0.5 and m["f1"] == pytest.approx((1 + 2 / 3) / 2) and m["convention"] == "squad"


def test_cmrc_scores() -> None:
    assert cmrc_tokens("我在Google工作，2019年 NBA!") == ["我", "在", "google", "工", "作", "2019", "年", "nba"]
    assert cmrc_f1("北京天安门", ["北京"]) == pytest.approx(4 / 7)
    assert cmrc_f1("位于NBA的球队", ["NBA球队"]) == pytest.approx(4 / 9)
    assert cmrc_exact("《北京》。", ["北 京"]) == 1.0 and cmrc_exact("北京市", ["北京"]) == 0.0
    m = qa_metrics(["北京天安门", "上海"], [["北京"], ["上海", "沪"]])
    assert m["convention"] == "cmrc" and m["exact_match"] == 0.5 and m["f1"] == pytest.approx((4 / 7 + 1) / 2)
    assert qa_convention("zh-CN") == "cmrc" and qa_convention("en") == "squad"


def toy_ner(n: int, seed: int) -> list[tuple[list[str], list[str]]]:
    rng = random.Random(seed)
    people, places = ["Alice", "Bob", "Carol", "Dave"], ["Paris", "London", "Rome", "Berlin"]
    sentences = []
    for _ in range(n):
        person, place = rng.choice(people), rng.choice(places)
        sentences.append(([person, "lives", "in", place, "."], ["B-PER", "O", "O", "B-LOC", "O"]))
    return sentences


def test_crf_baseline_english_and_chinese() -> None:
    model = fit_crf(toy_ner(40, 0), c1=0.05, c2=0.05, max_iterations=50)
    assert not model.chinese
    assert predict_crf(model, [["Rome", "lives", "in", "Alice", "."]])[0][1:3] == ["O", "O"]
    test = toy_ner(10, 1)
    assert ner_metrics([t for _, t in test], predict_crf(model, [w for w, _ in test]))["micro_f1"] == 1.0
    assert word_features(["EU", "rejects"], 0)["shape"] == "X" and word_features(["EU", "rejects"], 0)["1:lower"] == "rejects"
    chinese = [(list("张三在北京工作"), ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "O"]),
               (list("李四在上海工作"), ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "O"])] * 10
    zh = fit_crf(chinese, max_iterations=50)
    assert zh.chinese and predict_crf(zh, [list("张三在上海工作")]) == [chinese[0][1]]


def test_lexical_qa_baseline() -> None:
    contexts = ["The capital of France is Paris . Berlin is a big city in Germany .",
                "The river Thames flows through London . It is long ."]
    questions = ["What is the capital of France?", "Which river flows through London?"]
    answers = lexical_answers(questions, contexts, "en")
    assert answers[0]["text"] == "Paris" and contexts[0][answers[0]["start"]:answers[0]["end"]] == "Paris"
    assert answers[1]["text"] == "Thames"
    zh = lexical_answers(["法国的首都是哪里？"], ["法国的首都是巴黎，柏林很大。"], "zh", max_span=2, window=3, chinese_units="char")
    assert zh[0]["text"] == "巴黎"
    assert [u for u, _, _ in qa_units("NBA球队2019", True)] == ["nba", "球", "队", "2019"]
