"""Where words begin, for whole-word masking: the tokenizer's words, and jieba's words in Chinese.

A tokenizer's pre-tokenizer defines words for space-separated languages (``##`` pieces and
byte-level pieces stay with their word). BERT-style tokenizers cut Chinese into single
characters, so Chinese words come from a segmenter instead: two adjacent CJK tokens belong to
one word unless jieba puts a word boundary between them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmforge.data.segment import load_jieba

_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_cjk(codepoints: np.ndarray) -> np.ndarray:
    """True for CJK ideographs (the ranges BERT treats as Chinese characters)."""
    out = np.zeros(codepoints.shape, dtype=bool)
    for low, high in _CJK_RANGES:
        out |= (codepoints >= low) & (codepoints <= high)
    return out


def jieba_boundaries(text: str) -> np.ndarray:
    """Boolean of length ``len(text) + 1``: True at every character offset where a jieba word starts."""
    out = np.zeros(len(text) + 1, dtype=bool)
    pos = 0
    for word in load_jieba("Chinese whole-word masking", " (or set objective.chinese_words=chars)").lcut(text):
        out[pos] = True
        pos += len(word)
    out[pos] = True
    return out


def word_starts(encoding: Any, text: str, chinese_words: str = "jieba") -> np.ndarray:
    """True where a token of ``encoding`` (a ``tokenizers.Encoding`` of ``text``) begins a word.

    Args:
        encoding: The encoding, made without special tokens.
        text: The text it encodes (offsets point into it).
        chinese_words: ``jieba`` (words from the segmenter) or ``chars`` (every CJK token a word).
    """
    n = len(encoding.ids)
    starts = np.ones(n, dtype=bool)
    if n < 2:
        return starts
    words = np.asarray([-1 if w is None else w for w in encoding.word_ids], dtype=np.int64)
    starts[1:] = words[1:] != words[:-1]
    offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(n, 2)
    codepoints = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    if not codepoints.size:
        return starts
    cjk = is_cjk(codepoints[np.minimum(offsets[:, 0], codepoints.size - 1)]) & (offsets[:, 1] > offsets[:, 0])
    joined = cjk[1:] & cjk[:-1] & (offsets[1:, 0] == offsets[:-1, 1])
    if joined.any():
        if chinese_words == "jieba":
            starts[1:][joined] = jieba_boundaries(text)[offsets[1:, 0][joined]]
        else:
            starts[1:][joined] = True
    return starts
