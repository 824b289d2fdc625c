"""Classic baselines for span tasks, to report beside the models.

NER: a linear-chain CRF over hand-made word (English) or character (Chinese) features (sklearn-crfsuite).
QA: the sliding-window lexical-overlap answer picker (Richardson et al. 2013; the SQuAD paper's
sliding-window baseline): each candidate span scores the idf of the question words found in a window
around it, so an answer that sits among the question's words wins.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

from lmforge.data.segment import is_chinese, load_jieba
from lmforge.errors import LmforgeError

Unit = tuple[str, int, int]
SENTENCE_ENDS = {".", "!", "?", ";", "。", "！", "？", "；"}


def _is_punct(text: str) -> bool:
    return all(c in string.punctuation or unicodedata.category(c)[0] in "PS" for c in text)


def _shape(word: str) -> str:
    """``Xxxx``-style shape with repeats collapsed: ``McDonald`` -> ``XxXx``, ``1996-08-22`` -> ``d-d-d``."""
    shape = "".join("X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c for c in word)
    return re.sub(r"(.)\1+", r"\1", shape)


def word_features(words: Sequence[str], i: int) -> dict[str, Any]:
    """CRF features of English word ``i``: identity, lowercase, affixes, shape, case and digit flags, neighbours +-2."""
    w = words[i]
    features: dict[str, Any] = {"bias": 1.0, "word": w, "lower": w.lower(), "suffix2": w[-2:], "suffix3": w[-3:],
                                "prefix2": w[:2], "prefix3": w[:3], "shape": _shape(w), "title": w.istitle(),
                                "upper": w.isupper(), "digit": w.isdigit()}
    for d in (-2, -1, 1, 2):
        j = i + d
        if not 0 <= j < len(words):
            features[f"{d}:edge"] = True
            continue
        features.update({f"{d}:lower": words[j].lower(), f"{d}:shape": _shape(words[j]), f"{d}:title": words[j].istitle(),
                         f"{d}:upper": words[j].isupper()})
    return features


def char_features(chars: Sequence[str], i: int) -> dict[str, Any]:
    """CRF features of Chinese character ``i``: the character, neighbours +-2, the bigrams around it, digit/alpha/punct flags."""
    at = lambda j: chars[j] if 0 <= j < len(chars) else "<edge>"  # noqa: E731
    c = chars[i]
    features: dict[str, Any] = {"bias": 1.0, "char": c, "digit": c.isdigit(), "alpha": c.isascii() and c.isalpha(),
                                "punct": _is_punct(c), "-1:bigram": at(i - 1) + c, "+1:bigram": c + at(i + 1)}
    for d in (-2, -1, 1, 2):
        features[f"{d}:char"] = at(i + d)
    features["-2:bigram"], features["+2:bigram"] = at(i - 2) + at(i - 1), at(i + 1) + at(i + 2)
    return features


def sentence_features(words: Sequence[str], chinese: bool) -> list[dict[str, Any]]:
    """The CRF features of every word (or character) of a sentence."""
    make = char_features if chinese else word_features
    return [make(words, i) for i in range(len(words))]


@dataclass
class CrfTagger:
    """A fitted CRF and the feature set it was trained on."""

    crf: Any
    chinese: bool


def _crfsuite() -> Any:
    try:
        import sklearn_crfsuite  # optional: lmforge[spans]
    except ImportError:
        raise LmforgeError("the CRF baseline needs sklearn-crfsuite: pip install 'lmforge[spans]'") from None
    return sklearn_crfsuite


def fit_crf(train_sentences: Sequence[tuple[Sequence[str], Sequence[str]]], c1: float = 0.1, c2: float = 0.1,
            max_iterations: int = 100, language: str = "auto") -> CrfTagger:
    """Fit a linear-chain CRF (L-BFGS, elastic net) on (words, IOB2 tags) sentences.

    Args:
        train_sentences: (words, tags) pairs; Chinese sentences are one character per word.
        c1: L1 penalty.
        c2: L2 penalty.
        max_iterations: L-BFGS iterations.
        language: ``en`` (word features), ``zh`` (character features) or ``auto`` (from the sentences).
    """
    if not train_sentences:
        raise LmforgeError("the CRF baseline needs at least one training sentence")
    chinese = _chinese(language, [w for words, _ in train_sentences[:200] for w in words])
    crf = _crfsuite().CRF(algorithm="lbfgs", c1=c1, c2=c2, max_iterations=max_iterations, all_possible_transitions=True)
    crf.fit([sentence_features(words, chinese) for words, _ in train_sentences], [list(tags) for _, tags in train_sentences])
    return CrfTagger(crf, chinese)


def predict_crf(model: CrfTagger, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
    """IOB2 tags of each sentence's words."""
    return [list(tags) for tags in model.crf.predict([sentence_features(words, model.chinese) for words in sentences])]


def _chinese(language: str, sample: Sequence[str]) -> bool:
    if language == "auto":
        return is_chinese("".join(sample))
    return language.lower().startswith("zh")


def qa_units(text: str, chinese: bool, words: bool = False) -> list[Unit]:
    """Lowercased units of ``text`` with character offsets: English words and punctuation marks; for Chinese,
    characters (runs of Latin letters and digits whole) or, with ``words``, jieba words."""
    if chinese and words:
        jieba = load_jieba("word-level lexical QA on Chinese", "; or use characters")
        return [(w.lower(), a, b) for w, a, b in jieba.tokenize(text) if w.strip()]
    pattern = r"[A-Za-z0-9]+|\S" if chinese else r"\w+|[^\w\s]"
    return [(m.group().lower(), m.start(), m.end()) for m in re.finditer(pattern, text)]


def fit_idf(contexts: Sequence[str], chinese: bool, words: bool = False) -> dict[str, float]:
    """Inverse document frequency of each unit over the distinct contexts (smoothed, as scikit-learn computes it)."""
    analyzer = lambda text: [u for u, _, _ in qa_units(text, chinese, words)]  # noqa: E731
    vectorizer = TfidfVectorizer(analyzer=analyzer).fit(list(dict.fromkeys(contexts)))
    return dict(zip(vectorizer.get_feature_names_out(), vectorizer.idf_.tolist()))


def _nearest(found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each key and position t: the last occurrence before t and the first at or after t, shapes (K, T+1)."""
    keys, length = found.shape
    far = 10 ** 9
    position = np.arange(length)
    before = np.maximum.accumulate(np.where(found, position, -far), axis=1)
    after = np.minimum.accumulate(np.where(found, position, far)[:, ::-1], axis=1)[:, ::-1]
    return (np.concatenate([np.full((keys, 1), -far), before], axis=1),
            np.concatenate([after, np.full((keys, 1), far)], axis=1))


def _candidates(context: list[str], avoid: set[str], max_span: int, chinese: bool) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) units of the spans that may answer: within a sentence, no question word inside,
    no stop word or punctuation at an edge."""
    stop = set() if chinese else ENGLISH_STOP_WORDS
    edge_ok = [not (_is_punct(u) or u in stop) for u in context]
    avoid = avoid | SENTENCE_ENDS
    starts, ends = [], []
    # Longest first: argmax keeps the first maximum, so a longer span wins a tie (it shares more of a longer answer).
    for length in range(max_span, 0, -1):
        for a in range(len(context) - length + 1):
            b = a + length
            if edge_ok[a] and edge_ok[b - 1] and not avoid.intersection(context[a:b]):
                starts.append(a)
                ends.append(b)
    return np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)


def _keys(question: list[str], context: list[str], idf: dict[str, float], bigrams: bool, chinese: bool) -> dict[tuple[str, ...], float]:
    """The question's content unigrams (and bigrams) that occur in the context, with their idf weights."""
    stop = set() if chinese else ENGLISH_STOP_WORDS
    present = set(context) | (set(zip(context, context[1:])) if bigrams else set())
    keys = {(u,): idf.get(u, 0.0) for u in question if not _is_punct(u) and u not in stop and u in present}
    if bigrams:
        keys.update({pair: (idf.get(pair[0], 0.0) + idf.get(pair[1], 0.0)) / 2 for pair in zip(question, question[1:])
                     if pair in present and not any(_is_punct(u) for u in pair)})
    return keys


def lexical_answer(question: Sequence[Unit], context: Sequence[Unit], idf: dict[str, float], chinese: bool, max_span: int,
                   window: int, bigrams: bool = True) -> tuple[int, int, float] | None:
    """The best candidate span of one question: (start char, end char, score), None when no span can answer.

    A candidate scores the idf of the question keys (unigrams, bigrams) that occur within ``window`` units of
    it; ties go to the candidate whose keys sit nearest, then to the longer and earlier one.
    """
    q, c = [u for u, _, _ in question], [u for u, _, _ in context]
    keys = _keys(q, c, idf, bigrams, chinese)
    starts, ends = _candidates(c, {k[0] for k in keys if len(k) == 1}, max_span, chinese)
    if not len(starts):
        return None
    weights = np.asarray(list(keys.values()), dtype=float)
    found = np.zeros((len(keys), len(c)), dtype=bool)
    for row, key in enumerate(keys):
        found[row] = [tuple(c[t:t + len(key)]) == key for t in range(len(c))]
    before, after = _nearest(found)
    distance = np.minimum(starts - before[:, starts], after[:, ends] - ends + 1)  # (K, candidates), 1 = adjacent
    inside = distance <= window
    score = weights @ inside + 1e-3 * (weights @ (inside / np.maximum(distance, 1)))
    best = int(np.argmax(score)) if len(keys) else 0
    return context[starts[best]][1], context[ends[best] - 1][2], float(score[best]) if len(keys) else 0.0


def lexical_answers(questions: Sequence[str], contexts: Sequence[str], language: str = "auto", max_span: int | None = None,
                    window: int = 10, bigrams: bool = True, chinese_units: str = "auto") -> list[dict[str, Any]]:
    """The sliding-window lexical-overlap answer of each question.

    Args:
        questions: One question per example.
        contexts: Its context; idf is computed over the distinct contexts given.
        language: ``en``, ``zh`` or ``auto`` (from the contexts).
        max_span: Longest candidate in units (default 4 English words, 8 Chinese characters or words).
        window: Units on each side of a candidate where question keys count.
        bigrams: Count question bigrams as keys as well.
        chinese_units: ``char`` or ``word`` (jieba, an optional dependency) for Chinese text; ``auto`` takes
            words when jieba is installed.

    Returns:
        Per question ``{"text", "start", "end", "score"}`` (character offsets; empty text when no span qualifies).
    """
    chinese = _chinese(language, list(contexts[:50]))
    words = chinese and chinese_units != "char" and (chinese_units == "word" or _have_jieba())
    max_span = max_span or (8 if chinese else 4)
    idf = fit_idf(contexts, chinese, words)
    units: dict[str, list[Unit]] = {}
    out = []
    for question, context in zip(questions, contexts):
        if context not in units:
            units[context] = qa_units(context, chinese, words)
        best = lexical_answer(qa_units(question, chinese, words), units[context], idf, chinese, max_span, window, bigrams)
        out.append({"text": "", "start": -1, "end": -1, "score": 0.0} if best is None else
                   {"text": context[best[0]:best[1]], "start": best[0], "end": best[1], "score": best[2]})
    return out


def _have_jieba() -> bool:
    try:
        load_jieba()
    except LmforgeError:
        return False
    return True
