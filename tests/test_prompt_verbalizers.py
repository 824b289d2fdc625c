"""Verbalizers: built-in and user words, token mapping of single- and multi-token words, calibration math."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lmforge.errors import ConfigError
from lmforge.prompting.verbalizers import (
    Verbalizer,
    build_verbalizer,
    calibrate,
    content_free_probs,
    readable,
    word_scores_at,
)


def test_builtin_words_for_numeric_and_named_sentiment_labels() -> None:
    v = build_verbalizer(["0", "1"], "sentiment", "en")
    assert v.names == ["negative", "positive"] and v.words == [["negative", "terrible", "bad"], ["positive", "great", "good"]]
    v = build_verbalizer(["fresh", "rotten"], "sentiment", "en")
    assert v.names == ["positive", "negative"]
    v = build_verbalizer(["negative", "positive"], "sentiment", "zh")
    assert v.names == ["负面", "正面"] and v.words[1] == ["正面", "好", "棒"]
    v = build_verbalizer(["1", "2", "3", "4", "5"], "sentiment", "en")
    assert v.words[0] == ["terrible"] and v.words[4] == ["great"]


def test_unknown_labels_fall_back_to_readable_names_and_user_words_win() -> None:
    v = build_verbalizer(["card_arrival", "lost-or-stolen"], "intent", "en", {"card_arrival": "delivery"})
    assert v.words == [["delivery"], ["lost or stolen"]]
    assert readable("pin_blocked") == "pin blocked"
    with pytest.raises(ConfigError, match=r"labels \['nope'\] that are not in the data"):
        build_verbalizer(["a", "b"], "topic", "en", {"nope": ["x"]})
    with pytest.raises(ConfigError, match=r"prompt.names names labels \['c'\]"):
        build_verbalizer(["a", "b"], "topic", "en", None, "mean", {"c": "x"})
    assert build_verbalizer(["a", "b"], "topic", "en", None, "mean", {"a": "alpha"}).names == ["alpha", "b"]
    with pytest.raises(ConfigError, match="empty word"):
        build_verbalizer(["a", "b"], "topic", "en", {"a": [" "]})


def test_token_mapping_single_and_multi_token_words(tiny_bert: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    v = Verbalizer(["neg", "pos"], ["neg", "pos"], [["bad"], ["good", "goods"]], "mean")
    ids = v.token_ids(tok, leading_space=True)
    assert ids[0] == [tok.convert_tokens_to_ids("bad")]
    assert ids[2] == tok.convert_tokens_to_ids(["good", "##s"])  # a word of two word pieces
    first = Verbalizer(v.labels, v.names, v.words, "first").token_ids(tok, leading_space=True)
    assert first[2] == [tok.convert_tokens_to_ids("good")]


def test_word_and_label_score_math() -> None:
    log_probs = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]]))
    words = word_scores_at(log_probs, [[0], [1, 3], [2]])
    expected = [math.log(0.1), (math.log(0.2) + math.log(0.4)) / 2, math.log(0.3)]
    assert torch.allclose(words[0], torch.tensor(expected))
    v = Verbalizer(["a", "b"], ["a", "b"], [["w0"], ["w1", "w2"]])
    labels = v.label_scores(words)
    # a label with several words gets the log of their mean probability
    assert labels[0, 1].item() == pytest.approx(math.log((math.exp(expected[1]) + 0.3) / 2), rel=1e-6)
    assert labels[0, 0].item() == pytest.approx(math.log(0.1), rel=1e-6)


def test_contextual_calibration_on_a_fixed_example() -> None:
    # content-free inputs lean towards label 0: p_cf = mean of (0.8, 0.2) and (0.6, 0.4) = (0.7, 0.3)
    p_cf = content_free_probs(np.log(np.array([[0.8, 0.2], [0.6, 0.4]])))
    assert p_cf == pytest.approx([0.7, 0.3])
    # p = (0.6, 0.4): q ∝ (0.6 / 0.7, 0.4 / 0.3) = (0.857, 1.333) -> (0.3913, 0.6087): the prediction flips
    q = np.exp(calibrate(np.log(np.array([[0.6, 0.4]])), p_cf))
    assert q[0] == pytest.approx([0.6 / 0.7 / (0.6 / 0.7 + 0.4 / 0.3), 0.4 / 0.3 / (0.6 / 0.7 + 0.4 / 0.3)])
    assert q.sum() == pytest.approx(1.0)
    # an unbiased content-free distribution changes nothing
    same = np.exp(calibrate(np.log(np.array([[0.6, 0.4]])), np.array([0.5, 0.5])))
    assert same[0] == pytest.approx([0.6, 0.4])
