"""Sentence embeddings of item and query texts: the application's one call into lmforge's models.

Vectors are cached on disk (one SQLite file, keyed by model name and the text's SHA-256), so a
catalogue is embedded once per model. The cache lives in ``$LMFORGE_RECOMMEND_CACHE``, else in
``recommend/`` under ``$LMFORGE_HOME`` (``~/.cache/lmforge`` by default).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
from pathlib import Path

import numpy as np
from lmforge.prompting.encoders import SentenceEncoder
from lmforge.zoo import resolve_model


def embed_texts(texts: list[str], model: str = "minilm-l6") -> np.ndarray:
    """Unit-length sentence embeddings of ``texts``, in order.

    Args:
        texts: The texts.
        model: A zoo model name (``minilm-l6``) or a sentence-transformers folder.

    Returns:
        Embeddings (N, D), float32, L2-normalized.

    Raises:
        LmforgeError: The model cannot be found or loaded.
    """
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    keys = [hashlib.sha256(text.encode("utf-8")).hexdigest() for text in texts]
    with _Store(cache_dir() / "embeddings.sqlite") as store:
        found = store.get(model, keys)
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        if todo:
            first = {k: t for k, t in zip(keys, texts)}
            vectors = _encode([first[k] for k in todo], model)  # (M, D)
            store.put(model, todo, vectors)
            found.update(zip(todo, vectors))
    out = np.stack([found[k] for k in keys]).astype(np.float32)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def cache_dir() -> Path:
    """The folder of the embedding cache (created on demand)."""
    root = os.environ.get("LMFORGE_RECOMMEND_CACHE") or Path(os.environ.get("LMFORGE_HOME") or "~/.cache/lmforge") / "recommend"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _encode(texts: list[str], model: str) -> np.ndarray:
    return _encoder(model).embed(texts, desc="embedding items")


@functools.lru_cache(maxsize=2)
def _encoder(model: str) -> SentenceEncoder:
    return SentenceEncoder(resolve_model(model))


class _Store:
    """A model -> text hash -> vector table in SQLite (safe for several processes reading and writing)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, timeout=60)
        self.db.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT, hash TEXT, vector BLOB, PRIMARY KEY (model, hash))")

    def __enter__(self) -> _Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()

    def get(self, model: str, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):  # SQLite caps the number of bound parameters
            chunk = unique[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT hash, vector FROM vectors WHERE model = ? AND hash IN ({marks})", [model, *chunk])
            found.update((h, np.frombuffer(v, dtype=np.float32)) for h, v in rows)
        return found

    def put(self, model: str, keys: list[str], vectors: np.ndarray) -> None:
        rows = [(model, k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vectors)]
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)
