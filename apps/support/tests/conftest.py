"""Fakes for fast tests: a keyword intent classifier and a bag-of-words embedding (no model is loaded)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from lmforge.errors import LmforgeError
from lmforge.serving.auth import create_key

from lmforge_support.cli import build_app
from lmforge_support.config import PACKAGE_DIR, DialogueConfig, load_config
from lmforge_support.dialogue import Bot
from lmforge_support.intents import IntentResult
from lmforge_support.kb import KnowledgeBase

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


@pytest.fixture
def kb() -> KnowledgeBase:
    return KnowledgeBase.from_file(PACKAGE_DIR / "kb" / "bank.yaml", fake_embed)


@pytest.fixture
def bot(kb: KnowledgeBase) -> Bot:
    return Bot(KeywordClassifier(), kb, DialogueConfig())


ZOO_ENCODER = "minilm-l6"


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A key store with a customer key and an agent key."""
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    return {"path": path, "customer": create_key(path, "customer", endpoints=("support",), rate=0),
            "agent": create_key(path, "agent", endpoints=("support", "support-agent"), rate=0)}


@pytest.fixture
def client(tmp_path, keys) -> Iterator[TestClient]:
    """The support app over the zoo encoder and the keyword classifier, with keys on and SQLite in ``tmp_path``."""
    cfg = load_config({"data_dir": str(tmp_path), "service": {"keys": str(keys["path"])}})
    try:
        app = build_app(cfg, {"encoder": ZOO_ENCODER}, KeywordClassifier())
    except LmforgeError as exc:
        pytest.skip(f"the zoo encoder {ZOO_ENCODER} is not available here ({exc})")
    with TestClient(app) as c:
        yield c
