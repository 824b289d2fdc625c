"""Every prompting method end to end on tiny in-process models: the table, artifacts, predict and evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import lmforge
from forge_testing import toy_rows, write_csv
from lmforge import config
from lmforge.cli import main
from lmforge.errors import ConfigError
from lmforge.prompting.config import PromptConfig
from lmforge.recipes.prompt import load_data, prompt

ALL = ["cloze", "similarity", "likelihood", "generate", "icl", "pet", "pet_decoder", "setfit", "head"]


def prompt_config(tiny_bert: Path, tiny_llama: Path, train: Path, run_dir: Path, **sections: Any) -> dict[str, Any]:
    """A fast prompt config on the tiny models; ``sections`` update its sections."""
    cfg: dict[str, Any] = {
        "data": {"train": str(train), "split": {"validation": 0.25}, "max_length": 32, "cache": False},
        "methods": ALL,
        "models": {"encoder": str(tiny_bert), "mlm": str(tiny_bert), "decoder": str(tiny_llama)},
        "shots": {"k": [0, 2], "seeds": [0, 1], "decoder_eval_samples": 12},
        "icl": {"max_tokens": 64},
        "pet": {"max_steps": 2, "batch_size": 4},
        "pet_decoder": {"max_steps": 2, "batch_size": 4},
        "setfit": {"max_pairs": 8, "batch_size": 4},
        "head": {"max_steps": 2, "batch_size": 4},
        "output": {"dir": str(run_dir), "report": True},
    }
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values} if isinstance(values, dict) else values
    return cfg


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "toy.csv", toy_rows(48))


def test_every_method_runs_and_saves_a_predictable_artifact(tiny_bert: Path, tiny_llama: Path, small_csv: Path,
                                                            tmp_path: Path) -> None:
    result = prompt(prompt_config(tiny_bert, tiny_llama, small_csv, tmp_path / "run"))
    by = {(c.method, c.k): c for c in result.cells}
    assert {m for m, _ in by} == set(ALL)
    for name in ("cloze", "similarity", "likelihood", "generate"):
        assert by[(name, 0)].summary()["seeds"] == 1 and (name, 2) not in by
    for name in ("icl", "pet", "pet_decoder", "setfit", "head"):
        assert [r["seed"] for r in by[(name, 2)].runs] == [0, 1]
    assert by[("likelihood", 0)].runs[0]["n_eval"] == 12 and by[("similarity", 0)].runs[0]["n_eval"] == 12
    for line in ("method", "similarity", "setfit"):
        assert line in result.table
    run = result.run_dir
    assert (run / "report.md").is_file() and (run / "plots" / "accuracy_vs_k.png").is_file()
    assert json.loads((run / "results.json").read_text())["cells"]
    texts = ["the movie was good", "a very bad plot"]
    for name, path in result.artifacts.items():
        predictor = lmforge.load(path)
        rows = predictor.predict(texts, top_k=2)
        assert [r["text"] for r in rows] == texts, name
        assert all(set(r["probabilities"]) == {"negative", "positive"} for r in rows), name
        assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows), name
        metrics = predictor.evaluate(small_csv)
        assert 0.0 <= metrics["accuracy"] <= 1.0, name
    kinds = {name: json.loads((path / "lmforge.json").read_text())["kind"] for name, path in result.artifacts.items()}
    assert kinds["setfit-k2"] == "setfit" and kinds["head-k2"] == "classifier" and kinds["icl-k2"] == "prompt"


def test_saved_artifact_reproduces_protocol_scores(tiny_bert: Path, tiny_llama: Path, small_csv: Path, tmp_path: Path) -> None:
    cfg = prompt_config(tiny_bert, tiny_llama, small_csv, tmp_path / "run", methods=["icl", "setfit", "pet", "pet_decoder"],
                        shots={"k": [3], "seeds": [5], "decoder_eval_samples": None}, prompt={"calibrate": True})
    result = prompt(cfg)
    _, (evaluation, targets), _ = load_data(config.load(PromptConfig, cfg))
    for cell in result.cells:
        predictor = lmforge.load(result.artifacts[f"{cell.method}-k3"])
        pred = np.asarray(predictor.scores(evaluation)).argmax(1)
        assert float((pred == targets).mean()) == pytest.approx(cell.runs[0]["accuracy"], abs=1e-4), cell.method
    meta = json.loads((result.artifacts["icl-k3"] / "lmforge.json").read_text())
    assert len(meta["calibration"]) == 2 and (result.artifacts["icl-k3"] / "demonstrations.jsonl").is_file()


def test_calibrate_both_reports_each_variant(tiny_bert: Path, tiny_llama: Path, small_csv: Path, tmp_path: Path) -> None:
    cfg = prompt_config(tiny_bert, tiny_llama, small_csv, tmp_path / "run", methods=["similarity", "icl", "pet_decoder", "head"],
                        shots={"k": [0, 2], "seeds": [0], "decoder_eval_samples": None}, prompt={"calibrate": "both"})
    result = prompt(cfg)
    assert [(c.method, c.k) for c in result.cells] == [("similarity", 0), ("similarity+cal", 0), ("icl", 2),
                                                       ("icl+cal", 2), ("pet_decoder", 2), ("pet_decoder+cal", 2),
                                                       ("head", 2)]
    assert "icl+cal" in result.table
    plain = json.loads((result.artifacts["icl-k2"] / "lmforge.json").read_text())
    fixed = json.loads((result.artifacts["icl+cal-k2"] / "lmforge.json").read_text())
    assert "calibration" not in plain and len(fixed["calibration"]) == 2 and fixed["method"] == "icl"
    assert lmforge.load(result.artifacts["icl+cal-k2"]).predict(["a good film"])[0]["label"] in ("negative", "positive")


def test_shared_prefix_cache_gives_the_same_scores(tiny_llama: Path) -> None:
    from lmforge.prompting.decoder import CausalScorer, load_decoder

    model, tokenizer = load_decoder(str(tiny_llama))
    scorer = CausalScorer(model, tokenizer, batch_size=2)
    prefix_ids = scorer.encode("Review: good movie\nSentiment: positive\n\n", first=True)
    contexts = [scorer.encode(t) for t in ["Review: bad plot\nSentiment:", "Review: it was fine and nice\nSentiment:", "x"]]
    conts = [scorer.encode(" positive"), scorer.encode(" negative"), scorer.encode(" great")]
    cached = scorer.continuation(scorer.prefix(prefix_ids), contexts, conts)
    plain = scorer.continuation(None, [prefix_ids + c for c in contexts], conts)
    for a, b in zip(cached, plain, strict=True):
        assert np.allclose(a, b, atol=1e-4)
    with torch.inference_mode():
        full = model(torch.tensor([prefix_ids + contexts[0] + conts[0]])).logits[0].log_softmax(-1)
    start = len(prefix_ids) + len(contexts[0]) - 1
    assert cached[0][0] == pytest.approx(float(full[start, conts[0][0]]), abs=1e-4)


def test_template_without_needed_slot_is_rejected_before_loading(tiny_bert: Path, tiny_llama: Path, small_csv: Path,
                                                                 tmp_path: Path) -> None:
    cfg = prompt_config(tiny_bert, tiny_llama, small_csv, tmp_path / "run", methods=["cloze"],
                        prompt={"templates": {"cloze": "{text} It was great."}})
    with pytest.raises(ConfigError, match=r"prompt.templates.cloze .* has no \{mask\} slot"):
        prompt(cfg)


def test_cli_prints_the_table(tiny_bert: Path, tiny_llama: Path, small_csv: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    cfg = prompt_config(tiny_bert, tiny_llama, small_csv, tmp_path / "run", methods=["similarity", "head"])
    path = tmp_path / "p.yaml"
    path.write_text("# recipe: prompt\n" + yaml.safe_dump(cfg))
    assert main(["prompt", str(path), "shots.seeds=[0]", "output.report=false"]) == 0
    out = capsys.readouterr().out
    assert "similarity" in out and "head" in out and "k=2" in out
    assert main(["predict", str(tmp_path / "run" / "head-k2"), "a good film"]) == 0
    assert '"label"' in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "run" / "similarity-k0"), "--data", str(small_csv), "--json"]) == 0
    assert "accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("which", ["bert", "llama"])
def test_head_at_read_positions_matches_full_logits(which: str, tiny_bert: Path, tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    from lmforge.prompting.lmhead import logits_at, split_head

    auto, path = (AutoModelForMaskedLM, tiny_bert) if which == "bert" else (AutoModelForCausalLM, tiny_llama)
    model = auto.from_pretrained(path).eval()
    assert split_head(model) is not None
    ids = torch.tensor([[2, 7, 8, 9, 3], [2, 10, 11, 3, 0]])
    inputs = {"input_ids": ids, "attention_mask": (ids > 0).long()}
    position = torch.tensor([2, 1])
    with torch.inference_mode():
        full = model(**inputs).logits[torch.arange(2), position]
        assert torch.allclose(logits_at(model, inputs, position), full, atol=1e-5)


def test_chinese_data_gets_chinese_templates_and_words(tiny_bert: Path, tiny_llama: Path, tmp_path: Path) -> None:
    rows = [{"text": t, "label": lb} for t, lb in [("电影很好", "正面"), ("很好很好", "正面"), ("电影好", "正面"),
                                                  ("电影很坏", "负面"), ("很坏", "负面"), ("坏电影", "负面")] * 4]
    data = write_csv(tmp_path / "zh.csv", rows)
    cfg = prompt_config(tiny_bert, tiny_llama, data, tmp_path / "run", methods=["cloze", "likelihood", "pet"],
                        shots={"k": [0, 2], "seeds": [0], "decoder_eval_samples": None})
    result = prompt(cfg)
    meta = json.loads((result.artifacts["likelihood-k0"] / "lmforge.json").read_text(encoding="utf-8"))
    # the tiny decoder has a chat template, so prompt.chat: auto gives the prompt as a chat
    assert meta["template"] == ("<|im_start|>system\n你是一个情感分类器。<|im_end|>\n<|im_start|>user\n评论：{text}<|im_end|>\n"
                                "<|im_start|>assistant\n情感：{label}")
    assert meta["verbalizer"]["words"] == [["正面", "好", "棒"], ["负面", "差", "糟"]]
    pet_meta = json.loads((result.artifacts["pet-k2"] / "lmforge.json").read_text(encoding="utf-8"))
    assert pet_meta["template"] == "{text}总之很{mask}。"
    assert lmforge.load(result.artifacts["pet-k2"]).predict(["电影很好"])[0]["label"] in ("正面", "负面")


def test_prompt_chat_modes(tiny_bert: Path, tiny_llama: Path, small_csv: Path, tmp_path: Path) -> None:
    from forge_testing import build_tiny_llama

    def template(decoder: Path, chat: bool | str, name: str) -> str:
        cfg = prompt_config(tiny_bert, decoder, small_csv, tmp_path / name, methods=["likelihood"],
                            shots={"k": [0], "seeds": [0], "decoder_eval_samples": None}, prompt={"chat": chat})
        return json.loads((prompt(cfg).artifacts["likelihood-k0"] / "lmforge.json").read_text())["template"]

    assert template(tiny_llama, False, "plain") == "Review: {text}\nSentiment: {label}"
    assert template(tiny_llama, "auto", "auto").endswith("<|im_start|>assistant\nSentiment: {label}")
    bare = build_tiny_llama(tmp_path / "bare-llama", chat_template=False)
    assert template(bare, "auto", "bare") == "Review: {text}\nSentiment: {label}"
    with pytest.raises(ConfigError, match="no chat template"):
        template(bare, True, "forced")
