"""The embedding cache (one encoder call per new text) and the shipped config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lmforge.errors import ConfigError

from lmforge_recommend import embeddings
from lmforge_recommend.config import load_config
from recommend_testing import fake_embed

APP = Path(__file__).resolve().parents[1]


def test_embed_texts_caches_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def encode(texts: list[str], model: str) -> np.ndarray:
        calls.append(texts)
        return fake_embed(texts) * 3.0  # not unit length: embed_texts normalizes

    monkeypatch.setenv("LMFORGE_RECOMMEND_CACHE", str(tmp_path))
    monkeypatch.setattr(embeddings, "_encode", encode)
    first = embeddings.embed_texts(["space war", "love story", "space war"], model="m")
    again = embeddings.embed_texts(["love story", "robot"], model="m")
    other = embeddings.embed_texts(["robot"], model="other-model")
    assert calls == [["space war", "love story"], ["robot"], ["robot"]]
    assert first.dtype == np.float32 and first.shape == (3, 32)
    assert np.linalg.norm(first, axis=1) == pytest.approx(np.ones(3))
    assert again[0] == pytest.approx(first[1]) and other[0] == pytest.approx(again[1])
    assert (tmp_path / "embeddings.sqlite").is_file()


def test_shipped_config_loads() -> None:
    config, root = load_config(APP / "config.yaml")
    assert config.model.text_model == "minilm-l6" and root == APP


def test_config_errors(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("model:\n  ease_lamda: 3\n")
    with pytest.raises(ConfigError, match="key 'model.ease_lamda'"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("serve:\n  max_k: 0\n")
    with pytest.raises(ConfigError, match="key 'serve.max_k'"):
        load_config(tmp_path / "d.yaml")
