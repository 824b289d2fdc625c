"""Compression of a minilm-l6 SST-2 run, side by side with transformers' pipeline, and int8 SmolLM2 generation.

A teacher is fine-tuned on a seeded subset of ../shared/data/sst2/train.tsv (3% of the file held
out for validation, which is what compression measures itself on); everything is scored on
sst2/dev.tsv. In one process, in alternating rounds (each figure is the median of its rounds),
the script times on the same dev sentences:

- transformers ``pipeline("text-classification", batch_size=32)`` on the uncompressed model (the baseline);
- the same model through lmforge (PyTorch fp32, and bf16 autocast where the CPU has AMX);
- ``lmforge compress --method onnx`` (int8), the same with ``--min-agreement 0.99`` (weight matrices back in
  fp32, most sensitive first, until 99% of the run's validation predictions match), ``--method quantize`` (PyTorch int8), ``--method distill
  --layers 4``, ``--method prune --heads 0.4``, each loaded with ``lmforge.load`` and run by its ``predict``
  at batch 32.

SmolLM2-135M is compared with its int8 weight-only copy (``--method quantize``): ``model.generate``
tokens/s at batch 1, greedy, 128 new tokens, and perplexity on held-out Wikipedia paragraphs
(../shared/data/squad/dev_shared.json).

    flock /tmp/lmforge-cpu.lock python benchmarks/compress.py          # writes benchmarks/results/compress.json
    python benchmarks/compress.py --quick                               # smoke run (small data, one round)

Runs are cached under LMFORGE_HOME/bench/compress, keyed by their settings; a rerun only times.
Ends with one JSON line; scores and shares are fractions in 0-1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import REPO, SHARED, bench_home, emit, key_of, log, setup_logging, shared_file


def train_teacher(samples: int, epochs: float) -> Path:
    """The minilm-l6 SST-2 run (cached)."""
    import lmforge

    cfg = {"data": {"train": str(shared_file("sst2", "train.tsv")), "text_column": "sentence", "max_length": 128,
                    "split": {"validation": 0.03, "seed": 42}, "max_train_samples": samples},
           "model": {"name": "minilm-l6"}, "train": {"epochs": epochs, "batch_size": 32, "lr": 5e-5, "seed": 0},
           "output": {"dir": "", "tensorboard": False, "report": False, "baseline": False}}
    run = bench_home("compress") / f"teacher-{key_of(cfg)}"
    if not (run / "model" / "lmforge.json").is_file():
        cfg["output"]["dir"] = str(run)
        cfg["output"]["overwrite"] = True
        log(f"fine-tuning the teacher on {samples} SST-2 examples, {epochs} epoch(s)")
        lmforge.finetune(cfg)
    return run


def compressed(teacher: Path, name: str, options: dict[str, Any]) -> Path:
    """The teacher compressed with ``options`` (cached)."""
    from lmforge.compression import compress

    out = bench_home("compress") / f"{name}-{key_of(str(teacher), options)}"
    if not (out / "model" / "lmforge.json").is_file():
        log(f"compressing: {name} {options}")
        compress(teacher, out, options)
    return out


def rounds(contenders: dict[str, Callable[[], Any]], count: int, items: int) -> dict[str, float]:
    """Items per second of each contender: median over ``count`` alternating rounds."""
    for fn in contenders.values():
        fn()  # warm-up: first calls allocate and pick kernels
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(count):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            rates[name].append(items / (time.perf_counter() - start))
        log(f"round {r + 1}/{count}: " + ", ".join(f"{k} {v[-1]:.1f}/s" for k, v in rates.items()))
    return {name: statistics.median(v) for name, v in rates.items()}


def fp32_inference() -> None:
    """Time and score PyTorch in fp32 from here on (bf16 only where named), whatever the training used.

    lmforge autocasts inference to bf16 on AMX CPUs; the issue's figures compare with the fp32
    model, so the timed contenders run in fp32 and ``teacher_bf16`` shows what autocast adds.
    """
    from lmforge.devices import CPU_BF16_ENV, cpu_bf16

    os.environ[CPU_BF16_ENV] = "0"
    cpu_bf16.cache_clear()


@contextlib.contextmanager
def bf16() -> Any:
    """bf16 autocast on the CPU (fast where the CPU has AMX tiles)."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yield


def classifiers(teacher: Path, args: argparse.Namespace) -> dict[str, Any]:
    """ONNX int8, PyTorch int8, 4-layer student and 40%-heads-pruned model against the teacher and the pipeline."""
    from transformers import pipeline

    import lmforge
    from lmforge import artifacts

    budget = {"train_samples": args.train_samples}
    runs = {"onnx_int8": compressed(teacher, "onnx-int8", {"method": "onnx"}),
            "onnx_int8_aware": compressed(teacher, "onnx-int8-aware", {"method": "onnx", "onnx": {"min_agreement": 0.99}}),
            "torch_int8": compressed(teacher, "torch-int8", {"method": "quantize", "quantize": {"max_drop": 0.005}}),
            "student": compressed(teacher, "student4", {"method": "distill", "distill": {"layers": 4},
                                                         "train": {"epochs": args.distill_epochs}, **budget}),
            "pruned": compressed(teacher, "heads40", {"method": "prune", "prune": {"heads": 0.4},
                                                      "train": {"epochs": args.recovery_epochs}, **budget})}
    fp32_inference()
    models = {"teacher": lmforge.load(teacher, device="cpu")} | {k: lmforge.load(v, device="cpu") for k, v in runs.items()}
    examples, targets = artifacts.labeled_examples(models["teacher"].data, models["teacher"].labels, str(shared_file("sst2", "dev.tsv")),
                                                   text_column="sentence")
    if args.dev_samples:
        examples, targets = examples.subset(range(args.dev_samples)), targets[:args.dev_samples]
    preds = {k: m.scores(examples, None, 64).argmax(-1) for k, m in models.items()}
    acc = {k: float((p == targets).mean()) for k, p in preds.items()}
    timed = examples.texts[:args.timed]
    pipe = pipeline("text-classification", model=str(teacher / "model"), batch_size=32, device="cpu")
    contenders = {"pipeline": lambda: pipe(timed, truncation=True, max_length=128)}
    contenders |= {k: (lambda m=m: m.predict(timed, batch_size=32)) for k, m in models.items()}
    contenders["teacher_bf16"] = lambda: _in_bf16(models["teacher"], timed)
    sps = rounds(contenders, args.rounds, len(timed))
    meta = {k: json.loads((v / "model" / "lmforge.json").read_text()) for k, v in runs.items()}
    return {
        "pipeline_sps": sps["pipeline"], "onnx_int8_sps": sps["onnx_int8"], "onnx_int8_ratio": sps["onnx_int8"] / sps["pipeline"],
        "onnx_int8_agreement": float((preds["onnx_int8"] == preds["teacher"]).mean()),
        "onnx_int8_acc_drop": acc["teacher"] - acc["onnx_int8"],
        "onnx_int8_aware_sps": sps["onnx_int8_aware"], "onnx_int8_aware_ratio": sps["onnx_int8_aware"] / sps["pipeline"],
        "onnx_int8_aware_agreement": float((preds["onnx_int8_aware"] == preds["teacher"]).mean()),
        "onnx_int8_aware_acc_drop": acc["teacher"] - acc["onnx_int8_aware"],
        "onnx_int8_aware_fallback": meta["onnx_int8_aware"]["compression"]["fallback_fp32"],
        "onnx_int8_validation_agreement": meta["onnx_int8"]["compression"]["agreement"],
        "onnx_int8_aware_validation_agreement": meta["onnx_int8_aware"]["compression"]["agreement"],
        "student_speedup": sps["student"] / sps["teacher"], "student_acc_drop": acc["teacher"] - acc["student"],
        "pruned_heads_share": meta["pruned"]["compression"]["pruned_heads_share"],
        "pruned_acc_drop": acc["teacher"] - acc["pruned"], "pruned_speedup": sps["pruned"] / sps["teacher"],
        "teacher_accuracy": acc["teacher"], "teacher_sps": sps["teacher"], "teacher_bf16_sps": sps["teacher_bf16"],
        "torch_int8_sps": sps["torch_int8"], "torch_int8_agreement": float((preds["torch_int8"] == preds["teacher"]).mean()),
        "torch_int8_acc_drop": acc["teacher"] - acc["torch_int8"], "torch_int8_fallback": meta["torch_int8"]["compression"]["fallback_fp32"],
        "student_sps": sps["student"], "pruned_sps": sps["pruned"], "student_vs_pipeline": sps["student"] / sps["pipeline"],
        "accuracy": acc, "dev_examples": len(targets), "timed_sentences": len(timed),
    }


def _in_bf16(model: Any, texts: list[str]) -> Any:
    with bf16():
        return model.predict(texts, batch_size=32)


def held_out_text(path: Path, paragraphs: int, last: bool = False) -> Path:
    """Wikipedia paragraphs of the SQuAD dev articles, one per line: the first ``paragraphs`` (or the last ones)."""
    data = json.loads(shared_file("squad", "dev_shared.json").read_text(encoding="utf-8"))["data"]
    texts = [p["context"].replace("\n", " ") for article in data for p in article["paragraphs"]]
    texts = texts[-paragraphs:] if last else texts[:paragraphs]
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def generation(args: argparse.Namespace) -> dict[str, Any]:
    """model.generate tokens/s of SmolLM2-135M, fp32 vs int8 weight-only, and perplexity on held-out text."""
    import lmforge
    from lmforge.compression import compress

    text = held_out_text(bench_home("compress") / f"heldout-{args.paragraphs}.txt", args.paragraphs)
    # Smoothing and the perplexity check calibrate on other paragraphs (the last ones, other articles).
    calibration = held_out_text(bench_home("compress") / "calibration-32.txt", 32, last=True)
    options = {"method": "quantize", "data": str(text), "quantize": {"calibration": str(calibration)}}
    if args.gen_max_increase is not None:
        options["quantize"]["max_increase"] = args.gen_max_increase
    out = bench_home("compress") / f"smollm2-int8-{key_of(options)}"
    if not (out / "model" / "lmforge.json").is_file():
        compress("smollm2-135m", out, options)
    record = json.loads((out / "model" / "lmforge.json").read_text())["compression"]
    fp32, int8 = lmforge.load("smollm2-135m", device="cpu"), lmforge.load(out, device="cpu")
    prompt = fp32.tokenizer.apply_chat_template([{"role": "user", "content": "Write a short story about a robot who learns to paint."}],
                                                add_generation_prompt=True, tokenize=False)
    inputs = fp32.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)

    def decode(model: Any) -> Any:
        with torch.inference_mode():
            return model.generate(**inputs, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                                  pad_token_id=fp32.tokenizer.pad_token_id)

    tps = rounds({"fp32": lambda: decode(fp32.model), "int8": lambda: decode(int8.model)}, args.rounds, args.new_tokens)
    same = int((decode(fp32.model) == decode(int8.model)).all())
    return {"gen_int8_ratio": tps["int8"] / tps["fp32"], "gen_int8_ppl_increase": record["after"] / record["before"] - 1,
            "gen_fp32_tokens_per_s": tps["fp32"], "gen_int8_tokens_per_s": tps["int8"], "gen_ppl_fp32": record["before"],
            "gen_ppl_int8": record["after"], "gen_same_greedy_text": bool(same), "gen_new_tokens": args.new_tokens,
            "gen_scheme": record["scheme"], "gen_max_increase": record.get("max_increase"),
            "gen_kept_fp32": len(json.loads((out / "model" / "lmforge.json").read_text())["kept_fp32"]),
            "gen_size_mb": {"fp32": _mb(Path(fp32.path)), "int8": _mb(out / "model")}}


def _mb(folder: Path) -> float:
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6, 1)


def training_precision() -> str:
    """What ``train.precision: auto`` picks here (bf16 on AMX CPUs): the teacher, students and recovery train in it."""
    from lmforge.devices import cpu_has_fast_bf16

    return "bf16" if cpu_has_fast_bf16() else "fp32"


def machine(training: str) -> str:
    """Cores, matrix units and precision, in words."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    amx = "AMX" if "amx_bf16" in flags else "no AMX"
    return (f"{torch.get_num_threads()} CPU threads ({amx}); training in {training}; timed PyTorch in fp32 unless named; "
            f"ONNX Runtime {_ort_version()}")


def gen_machine() -> str:
    """Where the SmolLM2 part ran, in words (when it runs alone, the rest of the file may come from another machine)."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{torch.get_num_threads()} CPU threads ({simd}, {'AMX' if 'amx_bf16' in flags else 'no AMX'}), torch {torch.__version__}"


def _ort_version() -> str:
    import onnxruntime  # optional: lmforge[export]

    return onnxruntime.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-samples", type=int, default=20000, help="SST-2 training examples (seeded subset)")
    parser.add_argument("--epochs", type=float, default=2.0, help="teacher epochs")
    parser.add_argument("--distill-epochs", type=float, default=3.0)
    parser.add_argument("--recovery-epochs", type=float, default=1.0)
    parser.add_argument("--dev-samples", type=int, help="score on the first N dev sentences (all by default)")
    parser.add_argument("--timed", type=int, default=2048, help="dev sentences in each timed pass")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--paragraphs", type=int, default=40, help="held-out paragraphs for perplexity")
    parser.add_argument("--quick", action="store_true", help="smoke run: small data, one round, not saved")
    parser.add_argument("--gen-max-increase", type=float,
                        help="quantize.max_increase of the SmolLM2 int8 run (perplexity rise allowed on the calibration texts)")
    parser.add_argument("--only-generation", action="store_true",
                        help="rerun the SmolLM2 part alone and update its gen_* keys in the saved results")
    args = parser.parse_args()
    if args.quick:
        args.train_samples, args.epochs, args.distill_epochs, args.recovery_epochs = 1000, 1.0, 1.0, 0.5
        args.dev_samples, args.timed, args.rounds, args.new_tokens, args.paragraphs = 300, 256, 1, 16, 5
    setup_logging()
    start = time.perf_counter()
    if args.only_generation:
        saved = REPO / "benchmarks" / "results" / "compress.json"
        previous = json.loads(saved.read_text()) if saved.is_file() and not args.quick else {}
        part = {k: round(v, 4) if isinstance(v, float) else v for k, v in generation(args).items()}
        part |= {"gen_machine": gen_machine(), "gen_wall_s": round(time.perf_counter() - start)}
        emit(previous | part, None if args.quick else saved)
        return
    training = training_precision()
    teacher = train_teacher(args.train_samples, args.epochs)
    result = classifiers(teacher, args) | generation(args)
    result |= {"machine": machine(training), "train_samples": args.train_samples, "teacher_epochs": args.epochs,
               "distill_epochs": args.distill_epochs, "recovery_epochs": args.recovery_epochs, "rounds": args.rounds,
               "wall_s": round(time.perf_counter() - start), "quick": args.quick, "shared_data": str(SHARED)}
    result = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}
    emit(result, None if args.quick else REPO / "benchmarks" / "results" / "compress.json")


if __name__ == "__main__":
    main()
