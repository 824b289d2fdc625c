"""Fixtures of the support tests: the packaged knowledge base over fake embeddings, the bot, keys and the HTTP app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from lmforge.errors import LmforgeError
from lmforge.serving.auth import create_key

from lmforge_support.cli import build_app
from lmforge_support.config import PACKAGE_DIR, DialogueConfig, load_config
from lmforge_support.dialogue import Bot
from lmforge_support.kb import KnowledgeBase
from support_fakes import ZOO_ENCODER, KeywordClassifier, fake_embed


@pytest.fixture
def kb() -> KnowledgeBase:
    return KnowledgeBase.from_file(PACKAGE_DIR / "kb" / "bank.yaml", fake_embed)


@pytest.fixture
def bot(kb: KnowledgeBase) -> Bot:
    return Bot(KeywordClassifier(), kb, DialogueConfig())


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
