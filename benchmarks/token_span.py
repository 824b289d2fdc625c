"""Token and span tasks beside their classic baselines: NER (English, Chinese) and extractive QA (English, Chinese).

Each task fine-tunes a model through ``lmforge.finetune`` and scores, on the same held-out file in the
same run, the classic baseline of lmforge.evaluation.span_baselines:

- English NER: minilm-l6 (uncased) with casing ids in its token-type embeddings and a CRF layer, trained on
  conll2003/train.txt (validation: 10% of its documents), against a CRF over hand-made word features.
- Chinese NER: a small Chinese encoder pretrained here (below) with a CRF layer, trained on resume_ner/train.txt,
  against a CRF over character features.
- English QA: minilm-l6 on 4,000 questions of 80% of the articles of squad/dev_shared.json (validation: 10% of
  those articles), against the sliding-window lexical-overlap answer picker; scored on the other 20% of the articles.
- Chinese QA: the Chinese encoder on 3,000 questions of cmrc2018/train.json, scored on cmrc2018/trial.json, against
  the lexical picker.

The Chinese encoder (a RoFormer, 4 layers, hidden 256, one token per Chinese character) is pretrained by
masked LM with jieba whole-word masking on the zoo's chinese_news corpus plus the unlabeled text of the
training files (resume_ner/train.txt sentences, cmrc2018/train.json passages), never the test files.
It is cached under LMFORGE_HOME/bench/token_span, so reruns skip it; its wall time is reported apart.

    PYTHONPATH=src python benchmarks/token_span.py               # writes benchmarks/results/token_span.json
    PYTHONPATH=src python benchmarks/token_span.py --quick       # smoke run, minutes
    PYTHONPATH=src python benchmarks/token_span.py --pretrain-only
    PYTHONPATH=src python benchmarks/token_span.py --tasks ner_zh     # one task (its runs are cached)
    PYTHONPATH=src python benchmarks/token_span.py --cached-only      # merge the cached runs into the result

Each run's result is cached by its config, so the tasks can run one at a time (each within a time slot
of a shared machine) and a last ``--cached-only`` call, which trains nothing, writes the result file once
all four tasks have one. The sizes below (pretraining steps, epochs, training subsets) were chosen to fit
the issue's budget on 2 shared cores; the details file records them with each run's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from _common import REPO, bench_home, emit, key_of, log, setup_logging, shared_file, timer

# One torch thread: on a machine shared with other jobs, two threads that wait on each other at every
# operation ran up to 25 times slower than one (measured here); alone, one thread costs about half the speed.
THREADS = 1


def precision() -> str:
    """bf16 where the CPU multiplies bf16 matrices in hardware (AMX tiles, read from its flags), else fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "auto"
    return "bf16" if "amx_bf16" in flags else "fp32"


def zh_settings(quick: bool) -> dict[str, Any]:
    """Everything that shapes the Chinese encoder (its hash names the cache folder)."""
    return {"vocab_size": 10000, "model": {"arch": "roformer", "size": "mini", "dropout": 0.0, "attention_dropout": 0.0},
            "max_length": 256, "batch_size": 16, "steps": 40 if quick else 500, "lr": 5e-4,
            "max_documents": 2000 if quick else None, "corpus": ["chinese_news", "resume_ner/train.txt", "cmrc2018/train.json"]}


def zh_corpus(work: Path) -> list[str]:
    """chinese_news plus the unlabeled text of the Chinese training files, one document per line."""
    from lmforge.data.squad import read_squad
    from lmforge.data.tagging import read_tagged

    resume = read_tagged(shared_file("resume_ner", "train.txt"), scheme="bmes", on_bad_rows="skip")
    cmrc = read_squad(shared_file("cmrc2018", "train.json"))
    path = work / "training_text.txt"
    lines = list(dict.fromkeys(resume.texts)) + list(dict.fromkeys(cmrc.contexts))
    path.write_text("\n".join(line.replace("\n", " ") for line in lines) + "\n", encoding="utf-8")
    return ["chinese_news", str(path)]


def zh_encoder(quick: bool, cached_only: bool = False) -> tuple[Path, float]:
    """The pretrained Chinese encoder's model folder (cached) and the wall time its pretraining took."""
    from lmforge.data.tokenizer_training import train_tokenizer
    from lmforge.recipes.pretrain import pretrain

    s = zh_settings(quick)
    work = bench_home("token_span") / f"zh-encoder-{key_of(s)}"
    done = work / "pretrain_result.json"
    if done.is_file():
        cached = json.loads(done.read_text())
        log(f"using the cached Chinese encoder in {work} (pretraining took {cached['wall_s']:.0f}s)")
        return work / "pretrained" / "model", cached["wall_s"]
    if cached_only:
        log(f"no cached Chinese encoder in {work}: the Chinese tasks have no result")
        return work / "pretrained" / "model", 0.0
    work.mkdir(parents=True, exist_ok=True)
    corpus = zh_corpus(work)
    with timer() as t:
        tokenizer = work / "tokenizer"
        train_tokenizer(corpus, tokenizer, "wordpiece", vocab_size=s["vocab_size"], max_length=512)
        cfg = {
            "data": {"train": corpus, "max_length": s["max_length"], "validation_share": 0.01, "max_eval_sequences": 256,
                     "max_documents": s["max_documents"]},
            "model": {**s["model"], "tokenizer": str(tokenizer)},
            "objective": {"mlm": True, "whole_word_masking": True, "chinese_words": "jieba"},
            "train": {"max_steps": s["steps"], "batch_size": s["batch_size"], "lr": s["lr"], "warmup_ratio": 0.06,
                      "precision": precision(), "threads": THREADS,
                      "weight_decay": 0.01, "eval_every": max(20, s["steps"] // 5), "log_every": 50, "seed": 0},
            "output": {"dir": str(work / "pretrained"), "overwrite": True, "tensorboard": False},
        }
        result = pretrain(cfg)
    done.write_text(json.dumps({"wall_s": t["s"], "metrics": result.metrics}))
    return result.run_dir / "model", t["s"]


def _split_squad(path: Path, work: Path, share: float = 0.2, seed: int = 0) -> tuple[Path, Path]:
    """squad/dev_shared.json as train and held-out JSONL files, whole articles on each side."""
    from lmforge.data.squad import read_squad, split_by_article

    train, test = split_by_article(read_squad(path), share, seed)
    files = []
    for name, part in (("train", train), ("test", test)):
        rows = [{"id": i, "title": t, "context": c, "question": q, "answers": [{"text": a.text, "answer_start": a.start} for a in refs]}
                for i, t, c, q, refs in zip(part.ids, part.titles, part.contexts, part.questions, part.answers)]
        files.append(work / f"squad_{name}.jsonl")
        files[-1].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return files[0], files[1]


def task_specs(args: argparse.Namespace, zh_model: str) -> dict[str, dict[str, Any]]:
    """Per task: the fine-tuning config (without output), its variants, and the metric keys to report."""
    q = args.quick
    subset = {"max_train_samples": 400, "max_eval_samples": 200} if q else {}
    common = {"warmup_ratio": 0.1, "seed": 0, "precision": precision()}
    one = {**common, "threads": THREADS}  # runs after the English NER ones
    ner_train = {"epochs": 1 if q else 3, "batch_size": 32, "lr": 1e-4, "log_every": 50, **common}
    zh_train = {"epochs": 1 if q else 10, "batch_size": 32, "lr": 5e-4, "log_every": 50, **one}
    return {
        "ner_en": {"data": {"train": str(shared_file("conll2003", "train.txt")), "test": args.ner_test or str(shared_file("conll2003", "valid.txt")),
                            "split": {"validation": 0.1, "seed": 0}, "max_length": 256, **subset},
                   "model": {"name": "minilm-l6"}, "task": {"name": "ner"}, "train": ner_train},
        "ner_zh": {"data": {"train": str(shared_file("resume_ner", "train.txt")),
                            "test": args.ner_zh_test or str(shared_file("resume_ner", "dev.txt")),
                            "split": {"validation": 0.1, "seed": 0}, "max_length": 256, **subset},
                   "model": {"name": zh_model, "dropout": 0.1}, "task": {"name": "ner"}, "train": zh_train},
        "qa_en": {"data": {"split": {"validation": 0.1, "seed": 0}, "max_length": 256, **({"max_train_samples": 4000} | subset)},
                  "model": {"name": "minilm-l6"}, "task": {"name": "qa", "stride": 128},
                  "train": {"epochs": 1, "batch_size": 32, "lr": 1.5e-4, "log_every": 20, **one}},
        # trial.json holds two questions with no text (TRIAL_20_QUERY_0, TRIAL_776_QUERY_4): skipped and counted in the log.
        "qa_zh": {"data": {"train": str(shared_file("cmrc2018", "train.json")), "test": args.qa_zh_test or str(shared_file("cmrc2018", "trial.json")),
                           "split": {"validation": 0.1, "seed": 0}, "max_length": 256, "on_bad_rows": "skip",
                           **({"max_train_samples": 3000} | subset)},
                  "model": {"name": zh_model, "dropout": 0.1}, "task": {"name": "qa", "stride": 64, "max_answer_length": 40, "language": "zh"},
                  "train": {"epochs": 1, "batch_size": 32, "lr": 5e-4, "log_every": 20, **one}},
    }


def run_task(name: str, spec: dict[str, Any], work: Path, casing_ablation: bool = False, cached_only: bool = False) -> dict[str, Any]:
    """Fine-tune each variant of one task (cached by config); the CRF / lexical baseline runs inside the first.

    With ``cached_only`` nothing is trained: the variants without a cached result are left out.
    """
    import lmforge

    variants = {"crf": {"crf": True}, "softmax": {"crf": False}} if spec["task"]["name"] == "ner" else {"model": {}}
    if name == "ner_en" and casing_ablation:
        variants["crf_no_casing"] = {"crf": True, "casing": False}  # what the casing ids add to the uncased MiniLM
    out: dict[str, Any] = {}
    for i, (variant, options) in enumerate(variants.items()):
        cfg = json.loads(json.dumps(spec))
        cfg["task"].update(options)
        cfg["output"] = {"dir": str(work / f"{name}-{variant}-{key_of(cfg)}"), "overwrite": True, "tensorboard": False,
                         "report": True, "baseline": i == 0}
        done = Path(cfg["output"]["dir"]) / "bench_result.json"
        if done.is_file():
            out[variant] = json.loads(done.read_text())
            log(f"{name}/{variant}: cached result in {done.parent}")
            continue
        if cached_only:
            log(f"{name}/{variant}: no cached result in {done.parent}, left out")
            continue
        cpu0 = time.process_time()
        with timer() as t:
            result = lmforge.finetune(cfg)
        row = {"metrics": {k: _scalars(v) for k, v in result.metrics.items()}, "wall_s": round(t["s"], 1),
               "cpu_s": round(time.process_time() - cpu0, 1), "run": str(result.run_dir)}
        done.write_text(json.dumps(row, indent=1))
        out[variant] = row
        log(f"{name}/{variant}: {json.dumps(row['metrics'].get('test', {}))[:300]} in {t['s']:.0f}s")
    return out


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) or v is None}


def pick(variants: dict[str, Any], metric: str = "f1") -> str:
    """The variant with the best validation score (the test file plays no part in the choice)."""
    return max(variants, key=lambda v: variants[v]["metrics"].get("validation", {}).get(metric) or 0.0)


def sizes(specs: dict[str, dict[str, Any]], quick: bool) -> dict[str, Any]:
    """What each task trained on and for how long, for the details file."""
    out: dict[str, Any] = {"chinese_encoder": {k: v for k, v in zh_settings(quick).items() if k != "model"}}
    for name, spec in specs.items():
        data, train = spec["data"], spec["train"]
        out[name] = {"model": spec["model"]["name"], "epochs": train["epochs"], "batch_size": train["batch_size"], "lr": train["lr"],
                     "max_length": data["max_length"], "max_train_samples": data.get("max_train_samples"),
                     "threads": train.get("threads") or os.cpu_count(), "precision": train["precision"]}
    return out


def summary(results: dict[str, dict[str, Any]], zh_wall: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The result line (the issue's keys) and the details (every variant, times, the model choices)."""
    line: dict[str, Any] = {}
    details: dict[str, Any] = {"chinese_encoder_pretrain_wall_s": round(zh_wall, 1)}
    for name, prefix, base_key, base_name in (("ner_en", "ner_en", "ner_en_crf_f1", "test (CRF baseline)"),
                                              ("ner_zh", "ner_zh", "ner_zh_crf_f1", "test (CRF baseline)"),
                                              ("qa_en", "qa_en", "qa_en_lexical_f1", "test (lexical baseline)"),
                                              ("qa_zh", "qa_zh", "qa_zh_lexical_f1", "test (lexical baseline)")):
        if not results.get(name):
            continue
        variants = results[name]
        chosen = pick(variants)
        test = variants[chosen]["metrics"]["test"]
        line[f"{prefix}_f1"] = test["f1"]
        if name == "qa_en":
            line["qa_en_em"] = test["exact_match"]
        first = next(iter(variants.values()))["metrics"]
        line[base_key] = first.get(base_name, {}).get("f1" if name.startswith("qa") else "micro_f1")
        details[name] = {"chosen_on_validation": chosen, **{
            v: {"validation_f1": r["metrics"].get("validation", {}).get("f1"), "test_f1": r["metrics"]["test"].get("f1"),
                "test_exact_match": r["metrics"]["test"].get("exact_match"), "wall_min": round(r["wall_s"] / 60, 1),
                "cpu_min": round(r["cpu_s"] / 60, 1), "run": r["run"]} for v, r in variants.items()}}
    return line, details


def unseen_sentences(train: str, test: str, out: Path) -> tuple[Path, int]:
    """The test sentences whose words do not occur as a sentence of train (CoNLL-2003 repeats many short lines)."""
    from lmforge.data.tagging import read_tagged

    seen = {tuple(words) for words in read_tagged(train).words}
    held = read_tagged(test)
    keep = [i for i, words in enumerate(held.words) if tuple(words) not in seen]
    lines = [line for i in keep for line in [*(f"{w} {t}" for w, t in zip(held.words[i], held.tags[i])), ""]]
    out.write_text("\n".join(lines), encoding="utf-8")
    return out, len(keep)


def add_unseen(details: dict[str, Any], spec: dict[str, Any], work: Path) -> None:
    """F1 of the chosen English NER run on the test sentences that are not also training sentences."""
    import lmforge

    info = details.get("ner_en")
    if not info or "unseen_test_f1" in info:
        return
    path, n = unseen_sentences(spec["data"]["train"], spec["data"]["test"], work / "ner_en_unseen_test.txt")
    run = info[info["chosen_on_validation"]]["run"]
    info["unseen_test_sentences"] = n
    info["unseen_test_f1"] = lmforge.load(run).evaluate(str(path))["f1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small subsets, one epoch")
    parser.add_argument("--pretrain-only", action="store_true", help="only pretrain (and cache) the Chinese encoder")
    parser.add_argument("--casing-ablation", action="store_true", help="also train English NER without the casing ids")
    parser.add_argument("--tasks", default="ner_en,ner_zh,qa_en,qa_zh", help="tasks to run (comma separated)")
    parser.add_argument("--cached-only", action="store_true", help="train nothing: merge the cached runs (writes the result once all tasks have one)")
    parser.add_argument("--ner-test", help="English NER test file (CoNLL); default conll2003/valid.txt")
    parser.add_argument("--ner-zh-test", help="Chinese NER test file; default resume_ner/dev.txt")
    parser.add_argument("--qa-test", help="SQuAD-format test file; default: 20%% of the squad/dev_shared.json articles held out")
    parser.add_argument("--qa-zh-test", help="CMRC-format test file; default cmrc2018/trial.json")
    args = parser.parse_args()
    setup_logging()
    tasks = [t for t in args.tasks.split(",") if t]
    chinese = args.pretrain_only or any(t.endswith("_zh") for t in tasks)
    zh_model, zh_wall = zh_encoder(args.quick, args.cached_only) if chinese else (Path("-"), 0.0)
    if args.pretrain_only:
        return
    work = bench_home("token_span") / ("quick" if args.quick else "runs")
    work.mkdir(parents=True, exist_ok=True)
    specs = task_specs(args, str(zh_model))
    squad = shared_file("squad", "dev_shared.json")
    train, test = (squad, Path(args.qa_test)) if args.qa_test else _split_squad(squad, work)
    specs["qa_en"]["data"] |= {"train": str(train), "test": str(test)}
    results = {name: run_task(name, specs[name], work, args.casing_ablation, args.cached_only) for name in tasks}
    line, details = summary(results, zh_wall)
    details["sizes"] = sizes({name: specs[name] for name in tasks}, args.quick)
    if "ner_en" in tasks:
        add_unseen(details, specs["ner_en"], work)
    line["machine"] = f"{os.cpu_count()} CPU cores, torch {torch.__version__}, " + ("bf16 (AMX)" if precision() == "bf16" else "fp32")
    log("details: " + json.dumps(details))
    complete = all(results.get(name) for name in specs) and not args.quick
    if complete:
        (REPO / "benchmarks" / "results" / "token_span_details.json").write_text(json.dumps(details, indent=1) + "\n")
    emit(line, REPO / "benchmarks" / "results" / "token_span.json" if complete else None)

if __name__ == "__main__":
    main()
