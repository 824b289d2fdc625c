"""The artifact seam: every kind through one ``load``, runs saved by earlier versions, and one-line refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lmforge
from forge_testing import tiny_config, toy_rows, write_csv
from lmforge import artifacts
from lmforge.cli import main
from lmforge.errors import LmforgeError

TEXTS = ["the movie was good", "a very bad plot"]


@pytest.fixture(scope="module")
def classifier_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("classifier")
    data = write_csv(tmp / "toy.csv", toy_rows(120))
    return lmforge.finetune(tiny_config(tiny_bert, data, tmp / "run", train={"epochs": 1})).run_dir


@pytest.fixture(scope="module")
def lora_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("lora")
    data = write_csv(tmp / "toy.csv", toy_rows(120))
    return lmforge.finetune(tiny_config(tiny_bert, data, tmp / "run", train={"epochs": 1}, tuning={"method": "lora"})).run_dir


def _rewrite_meta(folder: Path, **changes: object) -> dict:
    path = folder / "lmforge.json"
    meta = json.loads(path.read_text()) | changes
    path.write_text(json.dumps(meta))
    return meta


def test_new_runs_name_their_kind_and_describe_themselves(classifier_run: Path, lora_run: Path) -> None:
    for run, kind in ((classifier_run, "classifier"), (lora_run, "adapter")):
        model = artifacts.load(run)
        info = model.describe()
        assert model.kind == kind and info["kind"] == kind and info["labels"] == ["negative", "positive"]
        assert {"predict", "evaluate"} <= set(info["capabilities"]) and "generate" not in info["capabilities"]
        assert info["size_bytes"] > 0 and info["inputs"]["max_length"] == 32
    assert not list((classifier_run / "model").glob(".lmforge.json.*"))  # written through a temporary name


def test_a_run_saved_in_the_old_layout_still_loads(classifier_run: Path, tmp_path: Path) -> None:
    import shutil

    old = tmp_path / "old-run"
    shutil.copytree(classifier_run, old)
    _rewrite_meta(old / "model", kind="model", lmforge_version="0.1.0")
    assert artifacts.load(old).predict(TEXTS) == artifacts.load(classifier_run).predict(TEXTS)
    assert artifacts.load(old).kind == "classifier"


def test_an_old_pretrained_encoder_loads_as_an_encoder(tiny_bert: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "pre" / "model"
    shutil.copytree(tiny_bert, run)
    (run / "lmforge.json").write_text(json.dumps({"kind": "pretrained", "lmforge_version": "0.1.0", "base_model": "x",
                                                  "objectives": ["mlm"], "data": {"max_length": 32}}))
    encoder = artifacts.load(run.parent)
    assert encoder.kind == "encoder" and set(encoder.capabilities) == {"embed", "fill_mask", "predict"}
    vectors = encoder.embed(["good movie", "bad plot", "good movie"])
    assert vectors.shape[0] == 3 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2], atol=1e-6)
    fills = encoder.predict(["the movie was [MASK]"], top_k=3)[0]["masks"][0]
    assert len(fills) == 3 and fills[0]["score"] >= fills[-1]["score"]
    with pytest.raises(LmforgeError, match=r"put \[MASK\] in the text"):
        encoder.predict(["no mask here"])
    with pytest.raises(LmforgeError, match="nothing to evaluate"):
        encoder.evaluate("any.csv")
    with pytest.raises(LmforgeError, match="not generate"):
        encoder.generate("x")


def test_plain_folders_and_zoo_style_models_load_by_what_they_are(tiny_bert: Path, tiny_llama: Path, tmp_path: Path) -> None:
    llm = artifacts.load(tiny_llama, device="cpu")
    assert llm.kind == "generator" and isinstance(llm.generate("the movie", max_new_tokens=3), str)
    rows = llm.score(["the movie was good"])
    assert rows[0]["logprobs"][0] is None and all(v <= 0 for v in rows[0]["logprobs"][1:])
    text_file = tmp_path / "texts.txt"
    text_file.write_text("the movie was good\na very bad plot\n")
    result = llm.evaluate(text_file)
    assert result["perplexity"] > 1 and result["num_examples"] == 2
    assert artifacts.load(tiny_bert).kind == "encoder"


@pytest.mark.parametrize("case", ["not_a_run", "unknown_kind", "newer_version", "corrupt", "missing_base"])
def test_bad_runs_give_one_line(case: str, classifier_run: Path, lora_run: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture) -> None:
    import shutil

    target = tmp_path / "bad"
    if case == "not_a_run":
        target.mkdir()
        (target / "notes.txt").write_text("hello")
        expected = "is not an lmforge run"
    else:
        shutil.copytree(lora_run if case == "missing_base" else classifier_run, target)
        meta_file = target / "model" / "lmforge.json"
        if case == "unknown_kind":
            _rewrite_meta(target / "model", kind="hologram")
            expected = "artifact kind 'hologram', which this lmforge does not know"
        elif case == "newer_version":
            _rewrite_meta(target / "model", lmforge_version="99.0.0")
            expected = "newer than this lmforge"
        elif case == "corrupt":
            meta_file.write_text("{not json")
            expected = "cannot be read"
        else:
            _rewrite_meta(target / "model", base_model=str(tmp_path / "gone"))
            expected = "is an adapter over .*gone, which cannot be loaded here"
    with pytest.raises(LmforgeError, match=expected):
        artifacts.load(target)
    assert main(["predict", str(target), "some text"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err


def test_the_resolved_config_is_what_runs_and_what_is_printed(lora_run: Path, capsys: pytest.CaptureFixture) -> None:
    import yaml

    saved = yaml.safe_load((lora_run / "config.yaml").read_text())
    assert saved["train"]["lr"] == 1e-3  # the test config sets it; the method default applies only when unset
    assert "resolved config:" in (lora_run / "train.log").read_text()
    assert main(["config", "finetune", "tuning.method=lora"]) == 0
    printed = capsys.readouterr().out
    assert "  lr: 0.002" in printed and "  r: 16" in printed and "method: lora" in printed
    assert main(["config", "finetune"]) == 0
    assert "  lr: 5.0e-05" in capsys.readouterr().out


def test_a_method_default_learning_rate_is_saved_and_logged(tiny_bert: Path, tmp_path: Path) -> None:
    import yaml

    data = write_csv(tmp_path / "toy.csv", toy_rows(60))
    cfg = tiny_config(tiny_bert, data, tmp_path / "run", train={"epochs": 1}, tuning={"method": "lora"})
    del cfg["train"]["lr"]
    run = lmforge.finetune(cfg).run_dir
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["lr"] == 0.002
    assert "usual rate of tuning.method=lora" in (run / "train.log").read_text()


def test_the_command_line_starts_without_torch() -> None:
    code = "import sys, lmforge.cli; lmforge.cli.parser(); print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
