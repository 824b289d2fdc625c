"""The shipped defaults on real data: zero-shot sentiment with the packaged encoder and decoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from forge_testing import shared_data
from lmforge.recipes.prompt import prompt


@pytest.mark.slow
def test_zero_shot_defaults_beat_chance_on_sst2(tmp_path: Path) -> None:
    train, dev = shared_data("sst2", "train.tsv"), shared_data("sst2", "dev.tsv")
    cfg = {"data": {"train": str(train), "validation": str(dev), "text_column": "sentence", "max_length": 64,
                    "max_eval_samples": 200, "cache": False},
           "methods": ["similarity", "likelihood"], "shots": {"k": [0], "decoder_eval_samples": 200},
           "output": {"dir": str(tmp_path / "run"), "report": False}}
    result = prompt(cfg)
    scores = {c.method: c.runs[0]["accuracy"] for c in result.cells}
    assert scores["similarity"] > 0.68 and scores["likelihood"] > 0.68, scores
    assert (tmp_path / "run" / "likelihood-k0" / "lmforge.json").is_file()
