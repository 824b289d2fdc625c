"""The pretraining recipe on tiny in-process models: losses fall, runs fine-tune, heads, presets, errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lmforge
from forge_testing import tiny_config, toy_rows, write_csv
from lmforge import config
from lmforge.errors import ConfigError
from lmforge.models.presets import preset_config
from lmforge.pretraining.config import PretrainConfig
from lmforge.recipes.pretrain import pretrain
from test_pretraining_data import write_corpus


def pretrain_config(model: dict[str, Any], corpus: Path, run: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "data": {"train": [str(corpus)], "documents": "blank_line", "max_length": 48, "validation_share": 0.1, "cache": False},
        "model": model,
        "train": {"max_steps": 30, "batch_size": 16, "lr": 3e-3, "warmup_ratio": 0.0, "log_every": 1, "seed": 0},
        "output": {"dir": str(run), "tensorboard": False, "report": False},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


def train_losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["split"] == "train"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt", docs=150, sentences=(2, 8))


@pytest.mark.parametrize("nsp", [False, True], ids=["mlm", "mlm+nsp"])
def test_mlm_steps_reduce_the_loss(tiny_bert: Path, corpus: Path, tmp_path: Path, nsp: bool) -> None:
    result = pretrain(pretrain_config({"name": str(tiny_bert)}, corpus, tmp_path / "run", objective={"nsp": nsp}))
    losses = train_losses(result.run_dir)
    assert result.status == "completed" and result.objectives == (["mlm", "nsp"] if nsp else ["mlm"])
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5
    assert {"mlm_accuracy", "mlm_perplexity"} <= set(result.metrics)
    assert ("nsp_accuracy" in result.metrics) == nsp
    meta = json.loads((result.run_dir / "model" / "lmforge.json").read_text())
    assert meta["kind"] == "encoder" and meta["objectives"] == result.objectives


def test_clm_steps_reduce_the_loss_and_generate(tiny_llama: Path, corpus: Path, tmp_path: Path) -> None:
    result = pretrain(pretrain_config({"name": str(tiny_llama)}, corpus, tmp_path / "run"))
    losses = train_losses(result.run_dir)
    assert result.objectives == ["clm"]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5
    generator = lmforge.load(result.run_dir)
    assert result.metrics["clm_perplexity"] < len(generator.tokenizer)
    text = generator.generate("the movie", max_new_tokens=5)
    assert isinstance(text, str)


def test_pretrained_run_fine_tunes_without_conversion(tiny_bert: Path, corpus: Path, tmp_path: Path) -> None:
    run = pretrain(pretrain_config({"name": str(tiny_bert)}, corpus, tmp_path / "pre")).run_dir
    data = write_csv(tmp_path / "toy.csv", toy_rows(240))
    result = lmforge.finetune(tiny_config(run, data, tmp_path / "ft", train={"epochs": 6}))
    assert result.status == "completed"
    losses = train_losses(result.run_dir)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    saved = json.loads((result.run_dir / "model" / "lmforge.json").read_text())
    assert saved["base_model"] == str(run)


@pytest.mark.parametrize(("arch", "saved_as"), [("bert", "BertForPreTraining"), ("roformer", "RoFormerForMaskedLM")])
def test_new_model_from_preset_and_trained_tokenizer(corpus: Path, tmp_path: Path, arch: str, saved_as: str) -> None:
    from transformers import AutoTokenizer

    from lmforge.data.tokenizer_training import train_tokenizer

    train_tokenizer([str(corpus)], tmp_path / "tok", "wordpiece", vocab_size=120, min_frequency=1)
    model = {"arch": arch, "size": "tiny", "tokenizer": str(tmp_path / "tok"), "overrides": {"num_hidden_layers": 1}}
    result = pretrain(pretrain_config(model, corpus, tmp_path / "run", train={"max_steps": 30}))
    saved = json.loads((result.run_dir / "model" / "config.json").read_text())
    assert saved["architectures"] == [saved_as] and saved["num_hidden_layers"] == 1
    assert saved["vocab_size"] == len(AutoTokenizer.from_pretrained(tmp_path / "tok"))
    losses = train_losses(result.run_dir)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5


def test_new_roformer_fine_tunes_and_refuses_nsp(corpus: Path, tmp_path: Path) -> None:
    from lmforge.data.tokenizer_training import train_tokenizer
    from lmforge.errors import LmforgeError

    train_tokenizer([str(corpus)], tmp_path / "tok", "wordpiece", vocab_size=120, min_frequency=1)
    model = {"arch": "roformer", "size": "tiny", "tokenizer": str(tmp_path / "tok")}
    run = pretrain(pretrain_config(model, corpus, tmp_path / "pre", train={"max_steps": 10})).run_dir
    data = write_csv(tmp_path / "toy.csv", toy_rows(240))
    result = lmforge.finetune(tiny_config(run, data, tmp_path / "ft", train={"epochs": 2}))
    assert json.loads((result.run_dir / "model" / "config.json").read_text())["architectures"] == [
        "RoFormerForSequenceClassification"]
    with pytest.raises(LmforgeError, match="no next-sentence head"):
        pretrain(pretrain_config(model, corpus, tmp_path / "nsp", objective={"nsp": True}))


def test_checkpoint_without_mlm_head_gets_a_tied_one(tiny_bert: Path, corpus: Path, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from transformers import AutoTokenizer, BertModel

    bare = tmp_path / "bare"  # like minilm-l6: an encoder saved without any head
    BertModel.from_pretrained(tiny_bert).save_pretrained(bare)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(bare)
    with caplog.at_level(logging.WARNING, logger="lmforge"):
        result = pretrain(pretrain_config({"name": str(bare)}, corpus, tmp_path / "run", train={"max_steps": 5}))
    assert any("has no masked-LM head: created one" in r.message and "tied to the word embeddings" in r.message
               for r in caplog.records)
    assert result.status == "completed"


def test_resume_continues_exactly(tiny_bert: Path, corpus: Path, tmp_path: Path) -> None:
    import shutil

    cfg = pretrain_config({"name": str(tiny_bert)}, corpus, tmp_path / "run", train={"max_steps": 8, "save_every": 4})
    run = pretrain(cfg).run_dir
    straight = train_losses(run)
    shutil.rmtree(run / "checkpoints" / "checkpoint-0000008")  # as if the run had stopped after step 4
    resumed = pretrain(cfg, resume=True)
    assert train_losses(resumed.run_dir) == pytest.approx(straight, rel=1e-5)


def test_presets_and_overrides(tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    expected = {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "base": (12, 768)}
    for size, (layers, hidden) in expected.items():
        for arch in ("bert", "roformer", "gpt2", "llama"):
            cfg = preset_config(arch, size, tok, 128)
            assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size) == (layers, hidden, len(tok))
    assert preset_config("llama", "tiny", tok, 128, {"num_key_value_heads": 1}).num_key_value_heads == 1
    with pytest.raises(ConfigError, match="model.overrides.hidden_sise is not an attribute"):
        preset_config("bert", "tiny", tok, 128, {"hidden_sise": 64})


def test_config_errors_are_one_line(tiny_bert: Path, tiny_llama: Path, corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of model.name"):
        config.load(PretrainConfig, {"data": {"train": "x.txt"}, "model": {"name": "a", "arch": "bert"}})
    with pytest.raises(ConfigError, match="needs model.tokenizer"):
        config.load(PretrainConfig, {"data": {"train": "x.txt"}, "model": {"arch": "bert"}})
    with pytest.raises(ConfigError, match="data.train is required"):
        config.load(PretrainConfig, {})
    with pytest.raises(ConfigError, match="objective.clm needs a decoder"):
        pretrain(pretrain_config({"name": str(tiny_bert)}, corpus, tmp_path / "a", objective={"clm": True}))
    with pytest.raises(ConfigError, match="objective.mlm needs an encoder"):
        pretrain(pretrain_config({"name": str(tiny_llama)}, corpus, tmp_path / "b", objective={"mlm": True}))


@pytest.mark.slow
def test_minilm_continues_pretraining_on_real_text(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from forge_testing import shared_data

    source = shared_data("financial_phrasebank", "train.csv")
    cfg = {"data": {"train": [str(source)], "max_length": 64, "max_documents": 400, "cache": False},
           "model": {"name": "minilm-l6"},
           "train": {"max_steps": 3, "batch_size": 8, "lr": 1e-4, "log_every": 1},
           "output": {"dir": str(tmp_path / "run"), "tensorboard": False, "report": False}}
    with caplog.at_level(logging.WARNING, logger="lmforge"):
        result = pretrain(cfg)
    assert any("minilm-l6 has no masked-LM head" in r.message for r in caplog.records)
    assert result.status == "completed" and 0 <= result.metrics["mlm_accuracy"] <= 1
    assert (result.run_dir / "model" / "model.safetensors").is_file()


def test_cli_pretrain_with_overrides(tiny_bert: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import yaml

    from lmforge.cli import main

    path = tmp_path / "pre.yaml"
    path.write_text(yaml.safe_dump(pretrain_config({"name": str(tiny_bert)}, corpus, tmp_path / "run")), encoding="utf-8")
    assert main(["pretrain", str(path), "train.max_steps=3", "objective.whole_word_masking=false"]) == 0
    assert "fine-tune it with model.name=" in capsys.readouterr().out
    assert len(train_losses(tmp_path / "run")) == 3
    assert main(["pretrain", str(path), "objective.mask_probability=2"]) == 2
