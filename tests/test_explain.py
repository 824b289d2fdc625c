"""Word attributions (occlusion, integrated gradients), faithfulness, the global view and rendering."""

from __future__ import annotations

import html
import importlib.util
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from lmforge.errors import LmforgeError
from lmforge.evaluation.explain import (
    Explanation,
    comprehensiveness,
    delete_words,
    integrated_gradients,
    model_predict_proba,
    occlusion,
    predictor_proba,
    to_html,
    to_table,
    top_words,
    word_spans,
)

needs_captum = pytest.mark.skipif(importlib.util.find_spec("captum") is None, reason="Captum is not installed (lmforge[explain])")


class KeywordModel(nn.Module):
    """Logit of class 1 = sum of the first embedding coordinate over the tokens; class 0 gets its negative.

    The keyword's embedding is large on that coordinate, every other token's small and random, and the
    pad token's zero, so exact attributions are known: each token adds its coordinate to the logit.
    """

    def __init__(self, vocab_size: int, keyword_id: int, pad_id: int = 0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(vocab_size, 4)
        with torch.no_grad():
            self.embed.weight.mul_(0.1)
            self.embed.weight[keyword_id, 0] = 3.0
            self.embed.weight[pad_id] = 0.0
        self.config = SimpleNamespace(id2label={0: "negative", 1: "positive"})

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        score = (self.embed(input_ids)[..., 0] * attention_mask).sum(-1)  # (B, T, 4) -> (B,)
        return SimpleNamespace(logits=torch.stack([-score, score], dim=-1))


@pytest.fixture(scope="module")
def tokenizer(tiny_bert: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert)


@pytest.fixture(scope="module")
def keyword_model(tokenizer) -> KeywordModel:
    return KeywordModel(len(tokenizer), tokenizer.convert_tokens_to_ids("good"), tokenizer.pad_token_id)


def keyword_proba(texts: list[str]) -> np.ndarray:
    """A black box: 0.9 positive with the word "good", 0.2 without."""
    p = np.array([0.9 if re.search(r"\bgood\b", t) else 0.2 for t in texts])
    return np.stack([1 - p, p], axis=1)


def test_word_spans_english_and_chinese() -> None:
    text = "It isn't bad... 真的很好!"
    assert [text[s:e] for s, e in word_spans(text)] == ["It", "isn't", "bad", "...", "真", "的", "很", "好", "!"]
    assert delete_words("a b c", word_spans("a b c"), {1}) == "a c"
    assert delete_words("a b c", word_spans("a b c"), {0, 2}, "[MASK]") == "[MASK] b [MASK]"
    assert delete_words("电影很好", word_spans("电影很好"), {2}) == "电影好"


def test_occlusion_ranks_the_keyword_first() -> None:
    texts = ["the plot was good and the actor was fine", "a very good movie"]
    for expl in occlusion(keyword_proba, texts, label_names=["negative", "positive"]):
        assert expl.label == "positive" and expl.probability == pytest.approx(0.9)
        assert expl.words[int(np.argmax(expl.scores))] == "good"
        assert max(expl.scores) == pytest.approx(0.7) and sorted(expl.scores)[-2] == pytest.approx(0.0)
        assert expl.method == "occlusion" and expl.delta is None
    against = occlusion(keyword_proba, texts[:1], target=0)[0]
    assert against.scores[against.words.index("good")] == pytest.approx(-0.7)


def test_occlusion_of_a_model_through_its_predict_proba(keyword_model: KeywordModel, tokenizer) -> None:
    expl = occlusion(model_predict_proba(keyword_model, tokenizer), ["the movie was good"])[0]
    assert expl.target == 1 and expl.words[int(np.argmax(expl.scores))] == "good"


@needs_captum
def test_integrated_gradients_sum_sub_tokens_into_words(keyword_model: KeywordModel, tokenizer) -> None:
    # Linear in the embeddings: IG of the logit is exact, each token adds its coordinate (the pad baseline is 0).
    text = "the goodness of 好电影"
    expl = integrated_gradients(keyword_model, tokenizer, [text], output="logit", n_steps=8)[0]
    assert expl.words == ["the", "goodness", "of", "好", "电", "影"]
    assert expl.offsets == [(0, 3), (4, 12), (13, 15), (16, 17), (17, 18), (18, 19)]
    weights = keyword_model.embed.weight[:, 0].detach()
    pieces = tokenizer.tokenize("goodness")
    assert len(pieces) > 1  # a word of several sub-tokens
    assert expl.scores[1] == pytest.approx(float(weights[tokenizer.convert_tokens_to_ids(pieces)].sum()), abs=1e-5)
    assert expl.scores[3] == pytest.approx(float(weights[tokenizer.convert_tokens_to_ids("好")]), abs=1e-5)
    assert abs(expl.delta) < 1e-4 and expl.label == "positive"


@needs_captum
def test_integrated_gradients_rank_the_keyword_first(keyword_model: KeywordModel, tokenizer) -> None:
    texts = ["the plot was good and the actor was fine", "a very good movie", "电影 good 很"]
    for expl in integrated_gradients(keyword_model, tokenizer, texts, n_steps=32, batch_size=2, internal_batch_size=8):
        assert expl.words[int(np.argmax(expl.scores))] == "good"
        # Completeness: the word scores add up to the probability change from the baseline.
        assert abs(expl.delta) < 0.02


@needs_captum
def test_integrated_gradients_on_tiny_bert(tiny_bert: Path, tokenizer) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    texts = ["a good film", "很好的电影"]
    for layer in ("word", "embeddings"):
        for expl in integrated_gradients(model, tokenizer, texts, n_steps=10, baseline="mask", layer=layer, target=[0, 1]):
            assert len(expl.scores) == len(expl.words) and expl.target in (0, 1)
            assert abs(expl.delta) < 0.05
    with pytest.raises(LmforgeError, match="layer must be"):
        integrated_gradients(model, tokenizer, texts, layer="pooler")


def test_missing_captum_names_the_extra(monkeypatch: pytest.MonkeyPatch, keyword_model: KeywordModel, tokenizer) -> None:
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(LmforgeError, match=r"pip install 'lmforge\[explain\]'"):
        integrated_gradients(keyword_model, tokenizer, ["good"])


def test_comprehensiveness_known_answer() -> None:
    # 10 words, one keyword: deleting the top 2 removes it (drop 0.7); 2 random words hit it 2 times in 10 (drop 0.14).
    texts = [" ".join(["good" if i == j else "film" for i in range(10)]) for j in range(10)]
    good = occlusion(keyword_proba, texts)
    scores = comprehensiveness(keyword_proba, texts, good, share=0.2, seed=0, draws=400)
    assert scores["top_drop"] == pytest.approx(0.7)
    assert scores["random_drop"] == pytest.approx(0.14, abs=0.02)
    assert scores["gap"] == pytest.approx(0.56, abs=0.02) and scores["num_texts"] == 10
    reversed_ = [Explanation(e.text, e.words, e.offsets, [-s for s in e.scores], e.target, e.label, e.probability, "x") for e in good]
    assert comprehensiveness(keyword_proba, texts, reversed_, draws=50)["gap"] < 0
    assert comprehensiveness(keyword_proba, texts, reversed_, draws=50, absolute=True)["top_drop"] == pytest.approx(0.7)
    with pytest.raises(LmforgeError, match="same order"):
        comprehensiveness(keyword_proba, texts[::-1], good)


def test_top_words_per_class() -> None:
    def expl(words: list[str], scores: list[float], label: str) -> Explanation:
        return Explanation(" ".join(words), words, [(0, 0)] * len(words), scores, 0, label, 0.9, "occlusion")

    sample = [expl(["Good", "plot", "bad"], [0.5, 0.1, -0.2], "pos"), expl(["good", "plot", "bad"], [0.3, 0.0, -0.4], "pos"),
              expl(["dull", "plot"], [0.6, 0.0], "neg")]
    view = top_words(sample, k=5, min_count=2)
    assert [r["word"] for r in view["pos"]["for"]] == ["good", "plot"]
    assert view["pos"]["for"][0] == {"word": "good", "mean": pytest.approx(0.4), "count": 2}
    assert [r["word"] for r in view["pos"]["against"]] == ["bad"] and view["pos"]["num_texts"] == 2
    assert view["neg"] == {"for": [], "against": [], "num_texts": 1}


def test_html_escapes_and_keeps_the_text() -> None:
    text = '<script>alert("x")</script> & good'
    expl = occlusion(keyword_proba, [text], label_names=["neg", "<pos>"])[0]
    page = to_html(expl)
    assert "<script" not in page and "&lt;" in page and "&quot;" in page and "&lt;pos&gt;" in page
    body = re.search(r'white-space:pre-wrap">(.*)</div></div></div>$', page).group(1)
    assert html.unescape(re.sub(r"<[^>]+>", "", body)) == text
    assert "rgba(22,163,74,0.800)" in page  # the keyword, full green
    assert to_html([expl, expl]).count("white-space:pre-wrap") == 2


def test_table_and_dict() -> None:
    expl = occlusion(keyword_proba, ["a good film"])[0]
    table = to_table(expl, top=1).splitlines()
    assert table[0].startswith("1 (p=0.900") and table[-1].split()[:3] == ["good", "2", "6"]
    assert expl.to_dict()["offsets"] == [(0, 1), (2, 6), (7, 11)]


def test_predictor_proba_orders_columns() -> None:
    def predict(texts: list[str]) -> list[dict]:
        return [{"label": "pos", "probabilities": {"pos": 0.8, "neg": 0.2}} for _ in texts]

    assert predictor_proba(predict, ["neg", "pos"])(["x", "y"]).tolist() == [[0.2, 0.8], [0.2, 0.8]]
