"""Splits, temperature scaling, the TF-IDF mix and the out-of-scope score, on synthetic numbers; the real run when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from lmforge.config import DataConfig
from scipy.special import softmax

from lmforge_support import evaluation, intents
from lmforge_support.config import IntentsConfig, load_config


def test_support_split_is_stratified_and_disjoint(tmp_path: Path) -> None:
    rows = [(f"text {i} of {label}", label) for label in ("a", "b", "c", "d") for i in range(50)]
    data = intents.write_rows(tmp_path / "all.csv", rows)
    cfg = IntentsConfig(data=str(data))
    train, val, test = intents.split_rows(intents.read_rows(data), cfg)
    assert len(test) == 40 and len(val) == 16 and len(train) == 144
    assert {y for _, y in test} == {"a", "b", "c", "d"}
    assert not {t for t, _ in train} & {t for t, _ in test}
    splits = intents.make_splits(cfg, tmp_path / "split", exclude=["a"])
    assert "a" not in {y for _, y in intents.read_rows(splits.train)}
    held = intents.held_out_intents([y for _, y in rows], 2, seed=0)
    assert len(held) == 2 and held == intents.held_out_intents([y for _, y in rows], 2, seed=0)


def test_support_missing_column_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("sentence,label\nhi,x\n", encoding="utf-8")
    with pytest.raises(Exception, match="bad.csv has no column 'text'"):
        intents.read_rows(path)


def test_support_temperature_undoes_overconfidence() -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 5, 2000)
    logits = rng.normal(size=(2000, 5))
    logits[np.arange(2000), targets] += 1.0
    t = intents.fit_temperature(logits * 4, targets)
    assert 3.0 < t < 5.0


def test_support_mix_weight_and_oos_score() -> None:
    targets = np.array([0, 1, 2, 0])
    model_probs = np.eye(3)[[0, 2, 2, 0]]  # one mistake
    tfidf = np.eye(3)[[0, 1, 2, 0]]
    assert intents.pick_weight(model_probs, tfidf, targets) > 0
    assert intents.pick_weight(np.eye(3)[targets], tfidf, targets) == 0.0
    probs = softmax(np.array([[5.0, 0, 0], [0.1, 0, 0]]), axis=1)
    assert evaluation.expected_calibration_error(probs, np.array([0, 0])) >= 0


SHARED = Path(os.environ.get("LMFORGE_SHARED_DATA") or Path(__file__).resolve().parents[4] / "shared" / "data")


@pytest.mark.slow
def test_support_trained_run_beats_tfidf_on_held_out_rows() -> None:
    cfg = load_config(Path(__file__).resolve().parents[1] / "config.yaml")
    run = Path(cfg.data_dir) / "runs" / "intents"
    if not (SHARED / "banking77" / "train.csv").is_file() or not (run / "model" / "lmforge.json").is_file():
        pytest.skip("needs ../shared/data/banking77 and a trained run (lmforge app support train)")
    model = intents.IntentModel.open(cfg, run)
    rows = intents.read_rows(Path(cfg.data_dir) / "splits" / "intents" / "test.csv")[:400]
    figures = evaluation.intent_figures(model, rows)
    assert figures["mixed"]["accuracy"] >= figures["tfidf"]["accuracy"]
    assert model.classify("I still have not received my new card").label == "card_arrival"


class FakeArtifact:
    """Scores that favour the right label of a synthetic text ('... of b' -> b), a little too sharply."""

    def __init__(self, names: list[str]) -> None:
        self.labels = type("Labels", (), {"names": names})()
        self.data = DataConfig()

    def scores(self, examples, targets=None, batch_size=64) -> np.ndarray:
        out = np.zeros((len(examples.texts), len(self.labels.names)))
        for i, text in enumerate(examples.texts):
            _, number, _, label = text.split()
            right = self.labels.names.index(label)
            out[i, right if int(number) % 5 else (right + 1) % len(out[i])] = 8.0  # every fifth row confidently wrong
        return out


def test_support_calibration_is_fitted_once_and_read_back(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    rows = [(f"row {i} of {y}", y) for y in names for i in range(30)]
    train, val = intents.write_rows(tmp_path / "train.csv", rows), intents.write_rows(tmp_path / "val.csv", rows[::3])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": {"train": str(train), "validation": str(val)}}), encoding="utf-8")
    model = intents.IntentModel(FakeArtifact(names))
    model.calibrate(tmp_path, IntentsConfig())
    assert model.temperature > 1.0 and (tmp_path / intents.CALIBRATION).is_file()
    again = intents.IntentModel(FakeArtifact(names))
    again.calibrate(tmp_path, IntentsConfig())
    assert again.temperature == model.temperature and again.weight == model.weight
    result = again.classify("row 3 of b")
    assert result.label == "b" and 0 < result.confidence <= 1


def test_support_scope_detector_turns_away_unfamiliar_messages_and_is_read_back(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    rows = [(f"row {i} of {y}", y) for y in names for i in range(40)]
    train, val = intents.write_rows(tmp_path / "train.csv", rows), intents.write_rows(tmp_path / "val.csv", rows[1::2])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": {"train": str(train), "validation": str(val)}}), encoding="utf-8")

    class Artifact(FakeArtifact):
        def scores(self, examples, targets=None, batch_size=64) -> np.ndarray:
            return super().scores(type("E", (), {"texts": [t.rstrip("!") for t in examples.texts]})(), targets, batch_size)

    calls: list[int] = []

    def embed(texts: list[str]) -> np.ndarray:
        # Familiar messages point along their label's axis; a message ending in "!" points somewhere the bot never saw.
        calls.append(len(texts))
        out = np.zeros((len(texts), 4), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i, 3 if text.endswith("!") else names.index(text.split()[-1])] = 1.0
            out[i] += 0.05 * np.cos(np.arange(4) + int(text.split()[1]))
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    cfg = IntentsConfig(scope_share=0.05)
    model = intents.IntentModel(Artifact(names), embed=embed)
    model.calibrate(tmp_path, cfg)
    assert (tmp_path / intents.SCOPE).is_file() and model.utterances.shape == (120, 4)
    familiar, strange = model.classify("row 6 of b"), model.classify("row 6 of b!")
    assert familiar.label == strange.label == "b"  # the classifier is as sure of both...
    assert familiar.in_scope and not strange.in_scope  # ...but only one is like what it was trained on
    scope = model.scope([t for t, _ in rows[1::2]])
    assert (scope < model.scope_cut).mean() <= 0.05 + 1e-9
    again = intents.IntentModel(Artifact(names), embed=embed)
    before = sum(calls)
    again.calibrate(tmp_path, cfg)
    assert again.scope_cut == model.scope_cut and sum(calls) == before  # read back, nothing embedded again
    assert intents.IntentModel(Artifact(names)).classify("row 6 of b!").in_scope  # no encoder: no detector
