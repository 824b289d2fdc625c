"""Tiny synthetic MovieLens files and a fake text embedder, so every unit test runs in seconds without a model."""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from lmforge_recommend.config import ModelConfig, RecommendConfig, ServeConfig
from lmforge_recommend.data import load_genres, load_items, load_ratings
from lmforge_recommend.recommender import Recommender

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHARED_DATA = Path(os.environ.get("LMFORGE_SHARED_DATA") or Path(__file__).resolve().parents[4] / "shared" / "data")
GENRES = ["unknown", "Action", "Comedy", "Drama"]


def fake_embed(texts: list[str], model: str = "fake") -> np.ndarray:
    """Bag-of-words vectors hashed into 32 dimensions, unit length: texts sharing words are close."""
    out = np.zeros((len(texts), 32), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"[a-z]+", text.lower()):
            out[row, zlib.crc32(word.encode()) % 32] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def item_line(item: int, title: str, year: int, genre: str) -> str:
    flags = ["1" if g == genre else "0" for g in GENRES]
    return "|".join([str(item), f"{title} ({year})", f"01-Jan-{year}", "", "http://example.org", *flags])


def write_movies(folder: Path) -> Path:
    """u.genre, u.item (30 films: 1-15 action/space, 16-30 comedy/romance; 15 and 16 share a title) and ua.base in ``folder``.

    Users 1-10 rate action films, users 11-20 comedies, 14 each, one a second in a fixed order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)))
    items = [item_line(i, f"Robot Space War {i}", 1980 + i, "Action") for i in range(1, 15)]
    items += [item_line(15, "Twin Film", 1994, "Action"), item_line(16, "Twin Film", 1994, "Comedy")]
    items += [item_line(i, f"Love Wedding Comedy {i}", 1980 + i, "Comedy") for i in range(17, 31)]
    (folder / "u.item").write_text("\n".join(items) + "\n")
    rng = np.random.default_rng(0)
    lines = []
    for user in range(1, 21):
        pool = np.arange(1, 16) if user <= 10 else np.arange(16, 31)
        for t, item in enumerate(rng.permutation(pool)[:14]):
            lines.append(f"{user}\t{item}\t{int(rng.integers(1, 6))}\t{880000000 + 1000 * user + t}")
    (folder / "ua.base").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def movie_dir(tmp_path: Path) -> Path:
    """The synthetic MovieLens files (see :func:`write_movies`)."""
    return write_movies(tmp_path)


def build_tiny_encoder(path: Path) -> Path:
    """A 2-layer, hidden-32 random BERT and its WordPiece tokenizer: the service's ``text`` model in tests."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz", *("##" + c for c in "abcdefghijklmnopqrstuvwxyz")]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizer(vocab_file=str(path / "vocab.txt"))
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64, pad_token_id=0)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of the tiny encoder (built once per test session)."""
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


def small_recommender(folder: Path) -> Recommender:
    """A recommender on the synthetic files with the fake embedder (fits in well under a second)."""
    cat = load_items(folder / "u.item", load_genres(folder / "u.genre"))
    train = load_ratings(folder / "ua.base", set(cat.ids.tolist()))
    config = RecommendConfig(model=ModelConfig(text_model="fake", windows=1, ease_lambda=5.0, candidates=10), serve=ServeConfig(max_k=20))
    return Recommender(cat, train, config, embed=fake_embed)
