"""Compression on tiny models: ONNX, int8, pruning and distillation produce runs that load, predict and evaluate."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

import lmforge
from forge_testing import tiny_config, toy_rows, write_csv
from lmforge import artifacts
from lmforge.artifacts.compressed import INT8_FILE
from lmforge.cli import main
from lmforge.compression import compress, distillation_loss
from lmforge.compression.smooth import input_ranges, smooth, untie_output
from lmforge.errors import LmforgeError
from lmforge.models.quantized import TokenDynamicLinear, dynamic_int8

pytest.importorskip("onnxruntime")
TEXTS = ["the movie was good", "a very bad plot", "happy actor", "boring film"]
REPO = Path(__file__).resolve().parents[1]
# Run before the documented snippet: makes lmforge unimportable, as on a machine that never installed it.
NO_LMFORGE = """import sys
class NoLmforge:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] == "lmforge":
            raise ModuleNotFoundError("No module named 'lmforge'")
sys.meta_path.insert(0, NoLmforge)
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(tmp_path_factory.mktemp("toy") / "toy.csv", toy_rows(240, seed=3))


@pytest.fixture(scope="module")
def run(tiny_bert: Path, toy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("parent")
    return lmforge.finetune(tiny_config(tiny_bert, toy, tmp / "run", train={"epochs": 8})).run_dir


def _logits(artifact: object, texts: list[str]) -> np.ndarray:
    return artifact.scores(artifacts.input_examples(artifact.data, texts), None, 8)


def _meta(out: Path) -> dict:
    return json.loads((out / "model" / "lmforge.json").read_text())


def test_onnx_fp32_equals_pytorch_and_names_its_parent(run: Path, tmp_path: Path) -> None:
    out = compress(run, tmp_path / "onnx", {"method": "onnx", "onnx": {"precision": "fp32"}})
    meta = _meta(out)
    assert meta["kind"] == "compressed" and meta["method"] == "onnx" and meta["parent"] == str((run / "model").resolve())
    assert meta["graph_optimization"] == "all" and meta["compression"]["agreement"] == 1.0
    assert {"model.onnx", "tokenizer.json", "config.json"} <= {p.name for p in (out / "model").iterdir()}
    graph, torch_model = artifacts.load(out), artifacts.load(run)
    np.testing.assert_allclose(_logits(graph, TEXTS), _logits(torch_model, TEXTS), atol=1e-4)
    assert [p["label"] for p in graph.predict(TEXTS)] == [p["label"] for p in torch_model.predict(TEXTS)]
    assert 0.0 <= graph.evaluate(_toy_file(run))["accuracy"] <= 1.0


def _toy_file(run: Path) -> str:
    return yaml.safe_load((run / "config.yaml").read_text())["data"]["train"]


def test_onnx_int8_agrees_with_fp32_above_a_floor(run: Path, tmp_path: Path) -> None:
    out = compress(run, tmp_path / "int8", {"method": "onnx"})
    meta = _meta(out)
    assert meta["precision"] == "int8" and meta["compression"]["quantization"] == "dynamic"
    assert meta["compression"]["agreement"] >= 0.9
    import onnx

    int8_inputs = [i for n in onnx.load(str(out / "model" / "model.onnx")).graph.node if n.op_type == "MatMulInteger" for i in n.input]
    assert int8_inputs and not any("classifier" in i or "pooler" in i for i in int8_inputs)  # head in fp32
    rows = toy_rows(100, seed=7)
    texts = [r["text"] for r in rows]
    ours, ref = _logits(artifacts.load(out), texts), _logits(artifacts.load(run), texts)
    assert (ours.argmax(1) == ref.argmax(1)).mean() >= 0.9


def test_onnx_accuracy_aware_int8_puts_weight_matrices_back_in_fp32(run: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx

    from lmforge.compression import onnx as onnx_mod

    fp32 = compress(run, tmp_path / "fp32", {"method": "onnx", "onnx": {"precision": "fp32"}}) / "model" / "model.onnx"
    modules = onnx_mod.weight_matmuls(fp32)
    # 2 layers x (query, key, value, attention output, intermediate, output); the head and pooler are found by their weights.
    assert len(modules) == 12 and "bert.encoder.layer.1.output.dense" in modules.values()
    assert len(onnx_mod._head_nodes(fp32)) == 4 and not set(onnx_mod._head_nodes(fp32)) & set(modules)
    # The bounds fail twice, then hold: two matrices go back to fp32, the most sensitive first, and are recorded.
    verdicts = iter([False, False, True])
    monkeypatch.setattr(onnx_mod, "within", lambda *args: next(verdicts))
    out = compress(run, tmp_path / "aware", {"method": "onnx", "onnx": {"min_agreement": 0.99}})
    record = _meta(out)["compression"]
    assert len(record["fallback_fp32"]) == 2 and set(record["fallback_fp32"]) <= set(modules.values())
    graph = onnx.load(str(out / "model" / "model.onnx")).graph
    assert sum(n.op_type == "MatMulInteger" for n in graph.node) == 10
    monkeypatch.undo()
    # Real bounds: agreement 1.0 holds at the latest once every matrix is back in fp32.
    out = compress(run, tmp_path / "exact", {"method": "onnx", "onnx": {"min_agreement": 1.0}})
    record = _meta(out)["compression"]
    assert record["agreement"] == 1.0 and record["min_agreement"] == 1.0 and set(record["fallback_fp32"]) <= set(modules.values())


def test_onnx_static_int8_with_a_calibration_file(run: Path, tmp_path: Path) -> None:
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("\n".join(r["text"] for r in toy_rows(40, seed=5)), encoding="utf-8")
    out = compress(run, tmp_path / "static", {"method": "onnx", "onnx": {"calibration": str(calibration)}})
    assert _meta(out)["compression"]["quantization"] == "static"
    assert len(artifacts.load(out).predict(TEXTS)) == len(TEXTS)


def test_the_documented_snippet_runs_with_onnxruntime_and_tokenizers_alone(run: Path, tmp_path: Path) -> None:
    out = compress(run, tmp_path / "snippet", {"method": "onnx", "onnx": {"precision": "fp32"}})
    doc = (REPO / "docs" / "compression.md").read_text(encoding="utf-8")
    snippet = re.search(r"<!-- snippet: onnx -->\n```python\n(.*?)```", doc, re.S).group(1)
    assert len(snippet.strip().splitlines()) <= 10
    code = NO_LMFORGE + snippet.replace("runs/sst2-onnx/model", str(out / "model")) + "\nassert 'lmforge' not in sys.modules\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # -I: no PYTHONPATH, no user site, not the current folder; the finder also hides an installed lmforge.
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    expected = [p["label"] for p in artifacts.load(run).predict(["a gripping, funny film", "a dull mess"])]
    assert result.stdout.split() == expected


def test_quantized_classifier_agrees_and_goes_through_predict_and_evaluate(run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "q8"
    assert main(["compress", str(run), "--method", "quantize", "--out", str(out), "--max-drop", "0.05"]) == 0
    meta = _meta(out)
    assert meta["scheme"] == "dynamic" and "classifier" in meta["kept_fp32"] and meta["compression"]["agreement"] >= 0.9
    stored = load_file(str(out / "model" / INT8_FILE))
    assert stored["bert.encoder.layer.0.attention.self.query.weight_int8"].dtype == torch.int8
    quantized = artifacts.load(out)
    assert quantized.kind == "compressed" and {"predict", "evaluate"} <= set(quantized.describe()["capabilities"])
    ref = _logits(artifacts.load(run), TEXTS)
    assert (_logits(quantized, TEXTS).argmax(1) == ref.argmax(1)).mean() >= 0.75
    with torch.autocast("cpu", dtype=torch.bfloat16):  # inference on AMX CPUs: the int8 layers get fp32 inputs
        assert (_logits(quantized, TEXTS).argmax(1) == ref.argmax(1)).mean() >= 0.75
    capsys.readouterr()
    assert main(["predict", str(out), *TEXTS[:2]]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert main(["evaluate", str(out), "--data", _toy_file(run), "--json"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["accuracy"] <= 1.0


def test_accuracy_aware_quantization_puts_the_harmful_layer_back_in_fp32(run: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from lmforge.compression import quantize as quantize_mod

    harmful = "bert.encoder.layer.1.output.dense"
    real = quantize_mod.dynamic_int8

    def breaking(model: torch.nn.Module, names: list[str], per_channel: bool = True) -> torch.nn.Module:
        quantized = real(model, [n for n in names if n != harmful], per_channel)
        if harmful in names:  # stands for a layer that int8 ruins
            layer = quantized.get_submodule(harmful)
            layer.weight.data.mul_(-20.0)
        return quantized

    monkeypatch.setattr(quantize_mod, "dynamic_int8", breaking)
    out = compress(run, tmp_path / "aware", {"method": "quantize", "quantize": {"max_drop": 0.02}})
    record = _meta(out)["compression"]
    assert record["fallback_fp32"] == [harmful] and record["before"] - record["after"] <= 0.02
    assert harmful in _meta(out)["kept_fp32"] and harmful not in _meta(out)["quantized"]


def test_generator_int8_weights_generate_and_score(tiny_llama: Path, tmp_path: Path) -> None:
    text = tmp_path / "held_out.txt"
    text.write_text("the movie was good\na very bad plot\n", encoding="utf-8")
    out = compress(tiny_llama, tmp_path / "gen8", {"method": "quantize", "data": str(text), "quantize": {"scheme": "weight_only"}})
    meta = _meta(out)
    assert meta["scheme"] == "weight_only" and meta["kept_fp32"] == ["lm_head"]
    model = artifacts.load(out)
    assert model.kind == "compressed" and "generate" in model.capabilities
    assert isinstance(model.generate("the movie", max_new_tokens=5), str)
    plain = artifacts.load(tiny_llama)
    ours, ref = model.score(["the movie was good"])[0]["logprobs"][1:], plain.score(["the movie was good"])[0]["logprobs"][1:]
    np.testing.assert_allclose(ours, ref, atol=0.05)
    assert model.evaluate(str(text))["perplexity"] == pytest.approx(meta["compression"]["after"], rel=1e-3)
    assert main(["generate", str(out), "the movie", "--max-new-tokens", "3", "--no-stream"]) == 0


def test_pruned_heads_are_gone_and_the_folder_loads_in_plain_transformers(run: Path, tmp_path: Path) -> None:
    out = compress(run, tmp_path / "heads", {"method": "prune", "prune": {"heads": 0.5, "sample": 32}})
    meta = _meta(out)
    pruned = {int(k): v for k, v in meta["pruned_heads"].items()}
    assert meta["format"] == "pruned_heads" and sum(map(len, pruned.values())) == 2 and meta["compression"]["pruned_heads_share"] == 0.5
    plain = AutoModelForSequenceClassification.from_pretrained(out / "model").eval()
    for layer, heads in pruned.items():
        query = plain.bert.encoder.layer[layer].attention.self.query.weight
        for h in heads:
            assert torch.count_nonzero(query[h * 16:(h + 1) * 16]) == 0
    ours = artifacts.load(out)
    assert [ours.model.bert.encoder.layer[i].attention.self.query.out_features for i in range(2)] == [16, 16]
    enc = ours.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        np.testing.assert_allclose(ours.model(**enc).logits.numpy(), plain(**enc).logits.numpy(), atol=1e-5)
    assert 0.0 <= ours.evaluate(_toy_file(run))["accuracy"] <= 1.0
    graph = compress(out, tmp_path / "heads-onnx", {"method": "onnx", "onnx": {"precision": "fp32"}})
    np.testing.assert_allclose(_logits(artifacts.load(graph), TEXTS), _logits(ours, TEXTS), atol=1e-4)
    int8 = artifacts.load(compress(out, tmp_path / "heads-int8", {"method": "quantize"}))
    assert int8.model.bert.encoder.layer[0].attention.self.query.weight().shape[0] == 16
    assert (_logits(int8, TEXTS).argmax(1) == _logits(ours, TEXTS).argmax(1)).mean() >= 0.75


def test_layer_dropping_and_magnitude_pruning_save_plain_classifiers(run: Path, tmp_path: Path) -> None:
    out = compress(run, tmp_path / "layers", {"method": "prune", "prune": {"layers": 1, "sparsity": 0.5, "sample": 32}})
    meta = _meta(out)
    assert meta["kind"] == "classifier" and meta["method"] == "prune" and len(meta["compression"]["kept_layers"]) == 1
    plain = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert plain.config.num_hidden_layers == 1
    weights = [m.weight for n, m in plain.named_modules() if isinstance(m, torch.nn.Linear) and "encoder" in n]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros >= 0.5
    assert (run / "model").is_dir() and len(artifacts.load(out).predict(TEXTS)) == 4


def test_distillation_loss_matches_hand_computed_values() -> None:
    student = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    teacher = torch.tensor([[np.log(3.0), 0.0], [np.log(3.0), 0.0]])
    # T=1: teacher softmax [3/4, 1/4]; KL([.75, .25] || [.5, .5]) = .75 ln 1.5 + .25 ln .5 = 0.130812;
    # the CE of a uniform student is ln 2 = 0.693147 whatever the label.
    one = distillation_loss(student, teacher, torch.tensor([0, 1]), temperature=1.0, alpha=0.5)
    assert float(one) == pytest.approx(0.5 * 0.130812 + 0.5 * 0.693147, abs=1e-5)
    # T=2: teacher softmax [sqrt3, 1] / (sqrt3 + 1) = [0.633975, 0.366025]; KL = 0.036341, times T^2 = 0.145363.
    # The unlabeled row (-100) adds no CE term; the CE of the labeled one is still ln 2.
    two = distillation_loss(student, teacher, torch.tensor([0, -100]), temperature=2.0, alpha=0.25)
    assert float(two) == pytest.approx(0.25 * 0.145363 + 0.75 * 0.693147, abs=1e-5)
    soft_only = distillation_loss(student, teacher, torch.tensor([-100, -100]), temperature=2.0, alpha=1.0)
    assert float(soft_only) == pytest.approx(0.145363, abs=1e-5)


def test_distilled_student_has_fewer_layers_and_learns_from_transfer_text(run: Path, tmp_path: Path) -> None:
    transfer = tmp_path / "unlabeled.txt"
    transfer.write_text("\n".join(r["text"] for r in toy_rows(30, seed=11)), encoding="utf-8")
    out = compress(run, tmp_path / "student", {"method": "distill", "distill": {"layers": 1, "hidden_weight": 1.0,
                                                                                "transfer": [str(transfer)]},
                                               "train": {"epochs": 1}})
    meta = _meta(out)
    assert meta["kind"] == "classifier" and meta["method"] == "distill"
    assert meta["compression"]["student_layers"] == 1 and meta["compression"]["transfer_texts"] == 30
    assert meta["compression"]["teacher_layers_used"] == [0]
    student = artifacts.load(out)
    assert student.model.config.num_hidden_layers == 1 and len(student.predict(TEXTS)) == 4
    assert "accuracy" in student.evaluate(_toy_file(run))


def test_an_ensemble_teaches_a_student(run: Path, toy: Path, tmp_path: Path) -> None:
    ensemble = artifacts.assemble([run, run], tmp_path / "ens")
    out = compress(ensemble, tmp_path / "from-ens", {"method": "distill", "train_data": str(toy), "distill": {"layers": 1},
                                                     "train": {"epochs": 1}})
    meta = _meta(out)
    assert meta["method"] == "distill" and meta["parent"] == str((ensemble / "model").resolve())
    assert artifacts.load(out).model.config.num_hidden_layers == 1


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def prefix_run(tiny_bert: Path, toy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("prefix")
    cfg = tiny_config(tiny_bert, toy, tmp / "run", train={"epochs": 1}, tuning={"method": "prefix", "num_virtual_tokens": 4})
    return lmforge.finetune(cfg).run_dir


def test_a_method_that_does_not_apply_names_those_that_do(prefix_run: Path, run: Path, tmp_path: Path) -> None:
    with pytest.raises(LmforgeError) as exc:
        compress(prefix_run, tmp_path / "x", {"method": "prune", "prune": {"heads": 0.5}})
    assert "adapter run (prefix)" in _one_line(exc) and "compress can apply distill" in str(exc.value)
    ensemble = artifacts.assemble([run, run], tmp_path / "ens")
    with pytest.raises(LmforgeError) as exc:
        compress(ensemble, tmp_path / "y", {"method": "onnx"})
    assert "ensemble run" in _one_line(exc) and "distill" in str(exc.value)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_bad_inputs_give_one_line_and_change_nothing(run: Path, tmp_path: Path, capsys) -> None:
    before = sorted(p.name for p in (run / "model").iterdir())
    missing = tmp_path / "nope.txt"
    assert main(["compress", str(run), "--method", "onnx", "--calibration", str(missing), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "calibration file" in err and not (tmp_path / "a").exists()
    assert main(["compress", str(run), "--method", "quantize", "--calibration", str(missing), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "calibration file" in err and not (tmp_path / "a").exists()
    assert main(["compress", str(run), "--method", "distill", "--layers", "2", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not fewer than the teacher's 2 layers" in err and not (tmp_path / "b").exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    assert main(["compress", str(run), "--method", "quantize", "--out", str(taken)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already exists" in err and [p.name for p in taken.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in (run / "model").iterdir()) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_larger_student_is_refused(run: Path, tiny_bert: Path, tmp_path: Path) -> None:
    with pytest.raises(LmforgeError) as exc:
        compress(run, tmp_path / "big", {"method": "distill", "distill": {"student": str(tiny_bert)}})
    assert "not smaller than its teacher" in _one_line(exc) and not (tmp_path / "big").exists()


def test_an_interrupted_compress_leaves_no_run(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lmforge.compression import onnx as onnx_mod

    def interrupted(*args: object, **kwargs: object) -> None:
        (tmp_path / "seen").write_text("export started")
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_mod, "quantize_graph", interrupted)
    out = tmp_path / "half"
    with pytest.raises(KeyboardInterrupt):
        compress(run, out, {"method": "onnx"})
    assert (tmp_path / "seen").is_file() and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(LmforgeError, match="does not exist"):
        artifacts.load(out)


def test_bench_compares_runs_in_a_table_json_lines_and_a_chart(run: Path, tmp_path: Path, capsys) -> None:
    quantized = compress(run, tmp_path / "q", {"method": "quantize"})
    chart = tmp_path / "bench.png"
    assert main(["bench", str(run), str(quantized), "--data", _toy_file(run), "--json", "--plot", str(chart),
                 "--latency-samples", "5", "--in-process"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["kind"] for r in rows] == ["classifier", "compressed"] and rows[0]["agreement"] == 1.0
    for row in rows:
        assert row["sentences_per_s"] > 0 and row["p99_ms"] >= row["p50_ms"] > 0 and row["size_mb"] > 0
        assert 0.0 <= row["score"] <= 1.0 and row["peak_rss_mb"] > 0 and row["load_s"] > 0
    assert rows[1]["size_mb"] < rows[0]["size_mb"] and chart.stat().st_size > 0
    assert main(["bench", str(run), "--latency-samples", "3", "--plot", ""]) == 0
    table = capsys.readouterr().out
    assert "sent/s" in table and str(run) in table


def test_per_token_int8_kernel_and_its_many_row_form_agree() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(64, 32))
    quantized = dynamic_int8(layer, ["0"], per_token=True)[0]
    assert isinstance(quantized, TokenDynamicLinear)
    x = torch.randn(20, 64)
    x[3] *= 50  # one token with outliers: per-token scales keep the other rows precise
    with torch.inference_mode():
        many = quantized(x)  # more rows than the kernel path takes: the emulated form
        one_by_one = torch.cat([quantized(row[None]) for row in x])  # the int8 kernel
        exact = layer(x)
    torch.testing.assert_close(many, one_by_one, atol=1e-4, rtol=1e-4)
    others = [i for i in range(20) if i != 3]
    assert (many[others] - exact[others]).abs().max() < 0.05 * exact[others].abs().max()


def test_smoothing_leaves_the_decoder_function_unchanged(tiny_llama: Path) -> None:
    model = artifacts.load(tiny_llama).model.eval()
    tokenizer = artifacts.load(tiny_llama).tokenizer
    texts = ["the movie was good", "a very bad plot with many words in it"]
    smoothed = untie_output(copy.deepcopy(model))
    assert smoothed.lm_head.weight.data_ptr() != smoothed.model.embed_tokens.weight.data_ptr()
    ranges = input_ranges(smoothed, tokenizer, texts)
    assert smooth(smoothed, ranges, 0.75) == 7 * model.config.num_hidden_layers + 1
    assert not torch.equal(smoothed.model.norm.weight, model.model.norm.weight)
    ids = tokenizer(texts[1], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        torch.testing.assert_close(smoothed(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-4, rtol=1e-4)


def test_generator_per_token_int8_quantizes_the_output_layer_and_checks_perplexity(tiny_llama: Path, tmp_path: Path) -> None:
    text = tmp_path / "held_out.txt"
    text.write_text("the movie was good\na very bad plot\n", encoding="utf-8")
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("some other text about films\nthe plot was thin and the acting good\n", encoding="utf-8")
    out = compress(tiny_llama, tmp_path / "dyn8", {"method": "quantize", "data": str(text),
                                                  "quantize": {"calibration": str(calibration), "max_increase": 0.0}})
    meta = _meta(out)
    record = meta["compression"]
    assert meta["scheme"] == "dynamic" and meta["per_token"] and "lm_head" in meta["quantized"] + meta["kept_fp32"]
    assert record["smooth"] == 0.75 and record["calibration_texts"] == 2 and record["max_increase"] == 0.0
    # max_increase 0: layers went back to fp32 until perplexity did not rise, or every candidate was tried
    assert record["calibration_after"] <= record["calibration_before"] * (1 + 1e-6) or len(meta["kept_fp32"]) >= 1
    assert set(meta["quantized"]).isdisjoint(meta["kept_fp32"])
    model = artifacts.load(out)
    layers = dict(model.model.named_modules())
    assert all(isinstance(layers[n], TokenDynamicLinear) for n in meta["quantized"])
    assert all(type(layers[n]) is torch.nn.Linear for n in meta["kept_fp32"])
    assert model.model.model.embed_tokens.weight.dtype == torch.float32
    assert model.evaluate(str(text))["perplexity"] == pytest.approx(record["after"], rel=1e-3)
    assert record["after"] == pytest.approx(record["before"], rel=0.1)
    assert isinstance(model.generate("the movie", max_new_tokens=5), str)
