"""The shipped config on MovieLens 100K with the real sentence encoder (slow; skipped without the shared data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SHARED_DATA
from lmforge_recommend.recommender import Recommender

ML = SHARED_DATA / "ml-100k"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (ML / "ua.base").is_file(), reason=f"{ML} is absent (shared data)")]


def test_shipped_config_recommends_on_movielens() -> None:
    rec = Recommender.from_config(Path(__file__).resolve().parents[1] / "config.yaml", data_dir=ML)
    out = rec.recommend(user_id=1, k=10)
    assert len(out) == 10 and all(r["because"] is not None for r in out)
    space = rec.recommend(text="space adventure with robots", k=10, genres=["Sci-Fi"])
    assert len(space) == 10 and all("Sci-Fi" in r["genres"] for r in space)
    assert "Nightmare on Elm Street" in " ".join(rec.catalogue.titles)  # month names repaired
