"""Parameter-efficient fine-tuning on a tiny in-process BERT: every method trains only its own
parameters, saves only them, reloads to the same outputs, resumes exactly, merges, and switches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

import lmforge
from forge_testing import tiny_config, toy_rows, write_csv
from lmforge import config
from lmforge.config import FinetuneConfig, ModelConfig, TaskConfig, TrainConfig
from lmforge.data.dataset import SplitSource
from lmforge.data.pipeline import labeled_splits
from lmforge.errors import ConfigError, LmforgeError
from lmforge.models.build import load_tokenizer
from lmforge.tasks import get_task
from lmforge.tasks.base import make_split
from lmforge.training.loop import fit
from lmforge.tuning import apply_tuning, head_modules, parse_options, shared_parameters

METHODS: dict[str, dict[str, Any]] = {
    "full": {"method": "full"},
    "lora": {"method": "lora", "r": 4},
    "dora": {"method": "lora", "r": 4, "dora": True, "rslora": True, "target_modules": "all-linear"},
    "ia3": {"method": "ia3"},
    "prompt": {"method": "prompt", "num_virtual_tokens": 4, "init": "vocab"},
    "ptuning": {"method": "ptuning", "num_virtual_tokens": 4, "encoder_hidden_size": 16},
    "prefix": {"method": "prefix", "num_virtual_tokens": 4},
    "bitfit": {"method": "bitfit"},
    "houlsby": {"method": "adapter", "placement": "houlsby", "reduction_factor": 4},
    "pfeiffer": {"method": "adapter", "placement": "pfeiffer", "reduction_factor": 4, "non_linearity": "gelu"},
}
PEFT_METHODS = ["lora", "dora", "ia3", "prompt", "ptuning", "prefix"]
TEXTS = ["the movie was good", "a very bad plot", "it is nice", "boring"]
# Six steps with a constant rate: short enough for a unit test, long enough for every trained tensor to move.
TRAIN = {"max_steps": 6, "save_every": 3, "scheduler": "constant", "warmup_ratio": 0.0, "lr": 1e-2}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    return {"train": write_csv(root / "train.csv", toy_rows(240)), "valid": write_csv(root / "valid.csv", toy_rows(60, seed=1))}


def run_config(model: Path, data: dict[str, Path], run: Path, method: str, **train: Any) -> dict[str, Any]:
    return tiny_config(model, data["train"], run, tuning=METHODS[method], train={**TRAIN, **train},
                       data={"validation": str(data["valid"])})


@pytest.fixture(scope="module")
def trained(tiny_bert: Path, data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """method -> finished run (trained once per module)."""
    runs: dict[str, Any] = {}

    def get(method: str) -> Any:
        if method not in runs:
            runs[method] = lmforge.finetune(run_config(tiny_bert, data, tmp_path_factory.mktemp(method) / "run", method))
        return runs[method]

    return get


def test_config_errors_are_one_line() -> None:
    base = {"data": {"train": "x.csv"}}
    with pytest.raises(ConfigError, match=r"unknown tuning method 'lorra'; known: adapter, bitfit, full, ia3, lora"):
        config.load(FinetuneConfig, base, ["tuning.method=lorra"])
    with pytest.raises(ConfigError) as err:
        config.load(FinetuneConfig, base, ["tuning.method=lora", "tuning.rank=4"])
    assert "unknown key 'tuning.rank'" in str(err.value) and "r, alpha" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"tuning.placement must be 'houlsby' or 'pfeiffer'"):
        config.load(FinetuneConfig, base, ["tuning.method=adapter", "tuning.placement=middle"])


def test_method_learning_rate_applies_unless_given() -> None:
    base = {"data": {"train": "x.csv"}}
    assert config.load(FinetuneConfig, base).train.lr == TrainConfig().lr
    lora = config.load(FinetuneConfig, base, ["tuning.method=lora"])
    assert lora.train.lr == type(lora.tuning).default_lr
    assert config.load(FinetuneConfig, base, ["tuning.method=lora", "train.lr=3e-4"]).train.lr == 3e-4
    reloaded = config.load(FinetuneConfig, yaml.safe_load(config.dump(lora)))  # a run's config.yaml
    assert reloaded.tuning == lora.tuning and reloaded.train.lr == lora.train.lr


def test_head_modules_per_architecture(tiny_bert: Path, tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    # The tiny BERT is saved as an MLM: its pooler is not in the checkpoint, so it trains with the head.
    assert head_modules(AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)) == [
        "classifier", "bert.pooler.dense"]
    assert head_modules(AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=2)) == ["score"]
    assert head_modules(AutoModelForCausalLM.from_pretrained(tiny_llama)) == []


@pytest.mark.parametrize("method", [m for m in METHODS if m != "full"])
def test_only_the_method_trains(method: str, tiny_bert: Path, data: dict[str, Path], tmp_path: Path) -> None:
    cfg = config.load(FinetuneConfig, run_config(tiny_bert, data, tmp_path / "run", method))
    task = get_task(cfg.task)
    tokenizer = load_tokenizer(str(tiny_bert))
    examples, labels = labeled_splits(cfg.data, task)
    split = make_split(task, "train", *examples["train"], tokenizer, cfg.data, labels, None)
    torch.manual_seed(0)
    model = apply_tuning(task.build_model(str(tiny_bert), labels, cfg.model), cfg.tuning)
    base_before = {n: p.detach().clone() for n, p in shared_parameters(model, cfg.tuning)}
    trained_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    source = SplitSource(split, task.collate, 16, "random", 0)
    (tmp_path / "fit").mkdir()
    fit(model, source, task.loss, cfg.train.model_copy(update={"save_every": None}), tmp_path / "fit", tensorboard=False)
    base_after = dict(shared_parameters(model, cfg.tuning))
    assert base_before and base_before.keys() == base_after.keys()
    for name, before in base_before.items():
        assert torch.equal(before, base_after[name]), f"{name} changed but is not trained by {method}"
    after = dict(model.named_parameters())
    moved = [n for n, before in trained_before.items() if not torch.equal(before, after[n])]
    assert len(moved) == len(trained_before), f"{method}: trainable but unchanged: {set(trained_before) - set(moved)}"
    assert not set(trained_before) & set(base_before)


@pytest.mark.parametrize("method", list(METHODS))
def test_run_saves_only_what_trained_and_reloads(method: str, trained: Any, data: dict[str, Path]) -> None:
    result = trained(method)
    run, saved = result.run_dir, result.run_dir / "model"
    counts = json.loads((run / "tuning.json").read_text())
    meta = json.loads((saved / "lmforge.json").read_text())
    assert counts["method"] == METHODS[method]["method"] and counts["trainable_parameters"] > 0
    if method == "full":
        assert meta["kind"] == "classifier" and counts["trainable_share"] == 1.0
    else:
        assert meta["kind"] == "adapter" and meta["tuning"]["method"] == METHODS[method]["method"]
        assert counts["trainable_share"] < 0.5 and not (saved / "model.safetensors").exists()
        weights = load_file(str(saved / "adapter_model.safetensors"))
        assert sum(t.numel() for t in weights.values()) <= counts["trainable_parameters"]
        full_ckpt = trained("full").run_dir / "checkpoints" / "checkpoint-0000006" / "model.safetensors"
        ckpt = run / "checkpoints" / "checkpoint-0000006" / "model.safetensors"
        assert ckpt.stat().st_size < full_ckpt.stat().st_size / 2
    reloaded = lmforge.load(run).evaluate(data["valid"])
    assert reloaded["loss"] == pytest.approx(result.metrics["validation"]["loss"], abs=1e-5)
    assert reloaded["accuracy"] == result.metrics["validation"]["accuracy"]


@pytest.mark.parametrize("method", list(METHODS))
def test_resume_mid_run_matches_uninterrupted(method: str, trained: Any, tiny_bert: Path, data: dict[str, Path],
                                              tmp_path: Path) -> None:
    whole = trained(method).run_dir
    cfg = run_config(tiny_bert, data, tmp_path / "run", method)
    cfg["data"].update(validation=None, split={"validation": 0.0})  # same training rows, no evaluation
    first = lmforge.finetune(cfg, ["train.max_steps=3"])
    assert first.status == "completed" and (first.run_dir / "checkpoints" / "checkpoint-0000003").is_dir()
    resumed = lmforge.finetune(cfg, resume=True)
    assert resumed.status == "completed"
    name = "model.safetensors" if method == "full" else "adapter_model.safetensors"
    a, b = load_file(str(whole / "model" / name)), load_file(str(resumed.run_dir / "model" / name))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", PEFT_METHODS)
def test_peft_adapter_loads_with_plain_peft(method: str, trained: Any, tiny_bert: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from lmforge.tuning.prefix import accept_past_key_values

    run = trained(method).run_dir
    ours = lmforge.load(run, device="cpu").predict(TEXTS)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    if method == "prefix":
        accept_past_key_values(base)  # peft 0.21 expects the argument name transformers 4 used
    model = PeftModel.from_pretrained(base, run / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    with torch.no_grad():
        probs = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.softmax(-1).numpy()
    for row, p in zip(ours, probs, strict=True):
        assert row["probabilities"]["positive"] == pytest.approx(float(p[1]), abs=1e-5)


def _logits(model: torch.nn.Module, tokenizer: Any) -> np.ndarray:
    with torch.no_grad():
        return model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.numpy()


@pytest.mark.parametrize("method", ["lora", "dora", "ia3", "bitfit"])
def test_merge_matches_unmerged_and_loads_with_transformers(method: str, trained: Any, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    from lmforge.cli import main

    run = trained(method).run_dir
    unmerged = lmforge.load(run, device="cpu")
    expected = _logits(unmerged.model, unmerged.tokenizer)
    assert main(["merge", str(run), "--out", str(tmp_path / "merged")]) == 0
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    np.testing.assert_allclose(_logits(plain, unmerged.tokenizer), expected, atol=1e-5, rtol=0)
    assert lmforge.load(tmp_path / "merged").predict(TEXTS) == unmerged.predict(TEXTS)
    assert json.loads((tmp_path / "merged" / "lmforge.json").read_text())["merged_from"]["tuning"]["method"]


@pytest.mark.parametrize("method", ["prompt", "houlsby"])
def test_merge_refuses_methods_that_cannot_merge(method: str, trained: Any, tmp_path: Path) -> None:
    from lmforge.recipes.merge import merge

    with pytest.raises(LmforgeError, match="cannot be merged"):
        merge(trained(method).run_dir, tmp_path / "merged")


def test_adapters_switch_by_name_over_one_base(trained: Any, tiny_bert: Path, data: dict[str, Path], tmp_path: Path) -> None:
    flip = lambda rows: [{**r, "label": "good" if r["label"] == "negative" else "bad"} for r in rows]  # noqa: E731
    flipped = {"train": write_csv(tmp_path / "train.csv", flip(toy_rows(240))),
               "valid": write_csv(tmp_path / "valid.csv", flip(toy_rows(60, seed=1)))}
    other = lmforge.finetune(run_config(tiny_bert, flipped, tmp_path / "other", "lora", seed=1)).run_dir
    runs = {"lora": trained("lora").run_dir, "pfeiffer": trained("pfeiffer").run_dir, "bitfit": trained("bitfit").run_dir,
            "other": other}
    adapters = lmforge.load_adapters(runs, device="cpu")
    assert adapters.names == list(runs)
    for name, run in runs.items():
        assert adapters.predict(TEXTS, adapter=name) == lmforge.load(run, device="cpu").predict(TEXTS)
    assert set(adapters.predict(TEXTS, adapter="other")[0]["probabilities"]) == {"bad", "good"}
    word = "bert.embeddings.word_embeddings.weight"
    pointers = {dict(shared_parameters(adapters[n].model, parse_options(json.loads(
        (runs[n] / "model" / "lmforge.json").read_text())["tuning"])))[word].data_ptr() for n in runs}
    assert len(pointers) == 1
    with pytest.raises(LmforgeError, match="no adapter named 'nope'; loaded: lora, pfeiffer"):
        adapters.predict(TEXTS, adapter="nope")
    with pytest.raises(LmforgeError, match="fully fine-tuned"):
        adapters.add("full", trained("full").run_dir)


def test_gradient_checkpointing_with_lora(tiny_bert: Path, data: dict[str, Path], tmp_path: Path) -> None:
    cfg = run_config(tiny_bert, data, tmp_path / "run", "lora")
    cfg["model"]["gradient_checkpointing"] = True
    result = lmforge.finetune(cfg)
    assert result.status == "completed"
    # LoRA's B starts at zero: it moves only if gradients reach the recomputed layers.
    weights = load_file(str(result.run_dir / "model" / "adapter_model.safetensors"))
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)


def test_build_model_unchanged_for_full(tiny_bert: Path) -> None:
    from lmforge.data.labels import LabelSpace

    model = get_task(TaskConfig()).build_model(str(tiny_bert), LabelSpace("single", ["a", "b"]), ModelConfig())
    assert apply_tuning(model, None) is model and all(p.requires_grad for p in model.parameters())


def test_lora_auto_targets_per_architecture(tiny_bert: Path, tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from lmforge.tuning.lora import targets

    assert targets("auto", AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)) == ["query", "value"]
    assert set(targets("auto", AutoModelForCausalLM.from_pretrained(tiny_llama))) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert targets(["query"], None) == ["query"]
