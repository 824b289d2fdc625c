"""Ensembles: combination math, model soup, the artifact, and ``lmforge ensemble`` (seeds and k-fold)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import lmforge
from forge_testing import tiny_config, toy_rows, write_csv
from lmforge.errors import LmforgeError
from lmforge.training.ensembles import combine_logits, soup


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_mean_is_logit_averaging() -> None:
    a, b = np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 4.0], [1.0, 0.0]])
    np.testing.assert_allclose(combine_logits([a, b], "mean"), [[1.0, 2.0], [0.5, 0.5]])


def test_vote_gives_vote_shares_and_breaks_ties_by_mean_probability() -> None:
    m1 = np.array([[3.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    m2 = np.array([[0.0, 1.0, 0.0], [0.0, 0.1, 0.0]])
    m3 = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.5]])
    probs = softmax(combine_logits([m1, m2, m3], "vote"))
    np.testing.assert_allclose(probs[0], [2 / 3, 1 / 3, 0], atol=2e-3)  # two of three vote class 0
    assert probs[1].argmax() == 0  # one vote each: class 0 has the highest mean probability
    np.testing.assert_allclose(np.sort(probs[1]), [1 / 3] * 3, atol=2e-3)
    # A confident minority never outvotes the majority.
    sure = np.array([[0.0, 50.0]])
    unsure = np.array([[0.1, 0.0]])
    assert combine_logits([sure, unsure, unsure], "vote")[0].argmax() == 0


def test_multi_label_vote_needs_a_majority_per_label() -> None:
    high, low = 4.0, -4.0
    members = [np.array([[high, low, high]]), np.array([[high, high, low]]), np.array([[low, low, high]])]
    probs = 1 / (1 + np.exp(-combine_logits(members, "vote", kind="multi", threshold=0.5)))
    assert (probs[0] >= 0.5).tolist() == [True, False, True]
    even = [np.array([[high]]), np.array([[-0.5]])]  # a 1:1 tie: the mean probability (> 0.5) decides
    assert 1 / (1 + np.exp(-combine_logits(even, "vote", kind="multi")[0, 0])) >= 0.5
    strict = combine_logits(members, "vote", kind="multi", threshold=0.7)
    assert ((1 / (1 + np.exp(-strict[0]))) >= 0.7).tolist() == [True, False, True]


def test_regression_always_averages() -> None:
    np.testing.assert_allclose(combine_logits([np.array([[1.0]]), np.array([[3.0]])], "vote", kind="regression"), [[2.0]])


def test_soup_averages_float_weights() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "ids": torch.tensor([0, 1])}
    b = {"w": torch.tensor([3.0, 6.0]), "ids": torch.tensor([0, 1])}
    out = soup([a, b])
    assert torch.equal(out["w"], torch.tensor([2.0, 4.0])) and torch.equal(out["ids"], a["ids"])
    with pytest.raises(LmforgeError, match="architecture"):
        soup([a, {"w": torch.zeros(3), "ids": a["ids"]}])


@pytest.fixture(scope="module")
def two_runs(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("members")
    data = write_csv(tmp / "toy.csv", toy_rows(160))
    return [lmforge.finetune(tiny_config(tiny_bert, data, tmp / f"run{s}", train={"seed": s, "epochs": 3},
                                         model={"init_seed": 0})).run_dir for s in (0, 1)]


def test_assembled_ensemble_predicts_the_mean_of_its_members(two_runs: list[Path], tmp_path: Path) -> None:
    from lmforge.artifacts import assemble

    out = assemble(two_runs, tmp_path / "ens")
    meta = json.loads((out / "model" / "lmforge.json").read_text())
    assert meta["kind"] == "ensemble" and meta["combine"] == "mean" and len(meta["members"]) == 2
    texts = ["the movie was good", "an awful plot", "it is very nice"]
    ens = lmforge.load(out).predict(texts)
    members = [lmforge.load(r).predict(texts) for r in two_runs]
    for i, row in enumerate(ens):
        mean = np.mean([np.log([m[i]["probabilities"]["negative"], m[i]["probabilities"]["positive"]]) for m in members], 0)
        assert row["probabilities"]["positive"] == pytest.approx(float(softmax(mean)[1]), abs=1e-4)
    data = write_csv(tmp_path / "held.csv", toy_rows(40, seed=5))
    assert lmforge.load(out).evaluate(data)["num_examples"] == 40
    with pytest.raises(LmforgeError, match="already holds"):
        assemble(two_runs, tmp_path / "ens")
    with pytest.raises(LmforgeError, match="members must be fine-tuned models"):  # not as first member either
        assemble([out, two_runs[0]], tmp_path / "nested")


def test_members_may_come_from_different_base_models(two_runs: list[Path], tiny_llama: Path, tmp_path: Path) -> None:
    from lmforge.artifacts import assemble

    data = write_csv(tmp_path / "toy.csv", toy_rows(160))
    decoder = lmforge.finetune(tiny_config(tiny_llama, data, tmp_path / "llama", train={"epochs": 2, "lr": 5e-3},
                                           tuning={"method": "lora", "r": 4})).run_dir
    out = assemble([two_runs[0], decoder], tmp_path / "mixed")  # a BERT encoder and a LoRA-tuned Llama classifier
    texts = ["the movie was good", "an awful plot"]
    ens = lmforge.load(out).predict(texts)
    members = [lmforge.load(r).predict(texts) for r in (two_runs[0], decoder)]
    for i, row in enumerate(ens):
        mean = np.mean([np.log([m[i]["probabilities"]["negative"], m[i]["probabilities"]["positive"]]) for m in members], 0)
        assert row["probabilities"]["positive"] == pytest.approx(float(softmax(mean)[1]), abs=1e-4)
    with pytest.raises(LmforgeError, match="adapter artifact; a soup"):
        assemble([two_runs[0], decoder], tmp_path / "souped", combine="soup")


def test_soup_artifact_is_a_plain_model(two_runs: list[Path], tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    from lmforge.artifacts import assemble
    from lmforge.training.ensembles import load_state

    out = assemble(two_runs, tmp_path / "soup", combine="soup")
    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    states = [load_state(Path(r) / "model") for r in two_runs]
    name = "classifier.weight"
    torch.testing.assert_close(model.state_dict()[name], (states[0][name] + states[1][name]) / 2)
    assert lmforge.load(out).predict(["a good movie"])[0]["label"] in ("negative", "positive")


def test_ensemble_recipe_seeds_and_kfold(tiny_bert: Path, tmp_path: Path) -> None:
    from lmforge.recipes.ensemble import ensemble

    data = write_csv(tmp_path / "toy.csv", toy_rows(120))
    base = tiny_config(tiny_bert, data, tmp_path / "ens", train={"epochs": 2})
    result = ensemble({**base, "ensemble": {"members": 2, "combine": "vote"}})
    run = Path(result["run_dir"])
    assert (run / "members" / "member-1" / "model" / "lmforge.json").is_file()
    assert result["ensemble"]["validation"]["num_examples"] == 24
    assert "| **ensemble** |" in (run / "report.md").read_text()
    assert lmforge.load(run).predict(["good film"])[0]["label"] in ("negative", "positive")
    again = ensemble({**base, "ensemble": {"members": 2, "combine": "vote"}}, resume=True)  # members reused
    assert again["members"] == result["members"]
    kfold = tiny_config(tiny_bert, data, tmp_path / "cv", train={"epochs": 1}, data={"split": {"validation": 0.0}})
    result = ensemble({**kfold, "ensemble": {"members": 3, "strategy": "kfold"}})
    sizes = [m["validation"]["num_examples"] for m in result["members"]]
    assert sum(sizes) == 120 and max(sizes) - min(sizes) <= 1  # every example held out exactly once
    assert "Cross-validation" in (Path(result["run_dir"]) / "report.md").read_text()


def test_ensemble_config_errors() -> None:
    from lmforge import config
    from lmforge.config import EnsembleConfig
    from lmforge.errors import ConfigError

    with pytest.raises(ConfigError, match="remove data.validation"):
        config.load(EnsembleConfig, {"data": {"train": "a.csv", "validation": "b.csv"}, "ensemble": {"strategy": "kfold"}})
    with pytest.raises(ConfigError, match="2 seeds for 3 members"):
        config.load(EnsembleConfig, {"data": {"train": "a.csv"}, "ensemble": {"members": 3, "seeds": [1, 2]}})


def test_cli_assembles_runs_and_predicts_with_the_ensemble(two_runs: list[Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    from lmforge.cli import main

    out = tmp_path / "cli-ens"
    assert main(["ensemble", "--from", *map(str, two_runs), "--out", str(out), "--combine", "vote"]) == 0
    assert json.loads((out / "model" / "lmforge.json").read_text())["combine"] == "vote"
    capsys.readouterr()
    assert main(["predict", str(out), "a good movie", "an awful plot"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["a good movie", "an awful plot"]
    assert main(["ensemble"]) == 2
    assert "give an ensemble config" in capsys.readouterr().err
