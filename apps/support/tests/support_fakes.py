"""Fakes for fast tests: a keyword intent classifier and a bag-of-words embedding (no model is loaded)."""

from __future__ import annotations

import zlib

import numpy as np

from lmforge_support.intents import IntentResult

ZOO_ENCODER = "minilm-l6"

KEYWORDS = {
    "arrive": "card_arrival", "lost": "lost_or_stolen_card", "stolen": "lost_or_stolen_card", "cancel": "cancel_transfer",
    "refund": "request_refund", "twice": "transaction_charged_twice", "rate": "exchange_rate", "pin": "change_pin",
    "recognise": "card_payment_not_recognised", "recipient": "transfer_not_received_by_recipient",
}


class KeywordClassifier:
    """Confident on a keyword, unsure on 'maybe', lost otherwise."""

    def classify(self, text: str, k: int = 3) -> IntentResult:
        low = text.lower()
        for word, intent in KEYWORDS.items():
            if word in low:
                if "maybe" in low:
                    return IntentResult([(intent, 0.4), ("exchange_rate", 0.3), ("change_pin", 0.1)])
                return IntentResult([(intent, 0.95), ("exchange_rate", 0.02), ("change_pin", 0.01)])
        return IntentResult([("exchange_rate", 0.1), ("change_pin", 0.08), ("card_arrival", 0.05)])


def fake_embed(texts: list[str]) -> np.ndarray:
    """Hashed bag of words, unit length (N, 64)."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, zlib.crc32(word.encode()) % 64] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def number_span(question: str, passage: str) -> dict:
    """Stands for an extractive QA model: the first 'N working days' / 'N GBP'-like phrase of the passage."""
    import re

    found = re.search(r"\d[\d,.]* (?:working days?|days?|hours?|GBP)", passage)
    if not found:
        return {"answer": "", "start": -1, "end": -1, "score": None}
    return {"answer": found.group(0), "start": found.start(), "end": found.end(), "score": 5.0}
