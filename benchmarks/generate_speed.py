"""Greedy decoding speed of smollm2-135m on CPU: lmforge's Generator vs plain ``model.generate``.

Both decode 128 new tokens greedily from the same chat prompt with the same model object, in
alternating rounds (lmforge, transformers, lmforge, ...); each side's tokens/s is the median
over its rounds, so load from other processes on a shared machine hits both alike. The
streaming path (tokens printed as they come, here into a null device) is timed as well.

    PYTHONPATH=src python benchmarks/generate_speed.py           # writes benchmarks/results/generate_speed.json
    PYTHONPATH=src python benchmarks/generate_speed.py --quick   # smoke run (16 tokens, 1 round)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import torch
from _common import REPO, emit, log, setup_logging

PROMPT = "Write a short story about a robot who learns to paint."


def time_lmforge(generator: Any, tokens: int, stream: Any = None) -> tuple[float, str]:
    """Seconds and text of lmforge's greedy decoding (chat template applied, text decoded)."""
    start = time.perf_counter()
    text = generator.generate(PROMPT, max_new_tokens=tokens, stream=stream)
    return time.perf_counter() - start, text


def time_plain(model: Any, tokenizer: Any, tokens: int) -> tuple[float, str, int]:
    """Seconds, text and new-token count of the same work done with transformers alone."""
    start = time.perf_counter()
    text = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=False)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    return time.perf_counter() - start, answer, int(out.shape[1] - inputs["input_ids"].shape[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 16 tokens, one round")
    args = parser.parse_args()
    setup_logging()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge.generation import Generator
    from lmforge.zoo import resolve_model

    source = resolve_model("smollm2-135m")
    model = AutoModelForCausalLM.from_pretrained(source).eval()
    plain_tok, ours = AutoTokenizer.from_pretrained(source), Generator(model, AutoTokenizer.from_pretrained(source))
    tokens, rounds = (16, 1) if args.quick else (128, 3)
    time_plain(model, plain_tok, 4)  # warm-up: first calls allocate caches
    runs: dict[str, list[float]] = {"lmforge": [], "hf": [], "stream": []}
    with open(os.devnull, "w", encoding="utf-8") as null:
        for r in range(rounds):
            plain_s, expected, n = time_plain(model, plain_tok, tokens)
            ours_s, text = time_lmforge(ours, tokens)
            stream_s, streamed = time_lmforge(ours, tokens, null)
            if not text == streamed == expected:
                raise SystemExit("lmforge and transformers decoded different texts; the comparison would be unfair")
            for name, seconds in (("hf", plain_s), ("lmforge", ours_s), ("stream", stream_s)):
                runs[name].append(n / seconds)
            log(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.1f} tok/s" for k, v in runs.items()))
    result = {
        "lmforge_tokens_per_s": round(statistics.median(runs["lmforge"]), 2),
        "hf_tokens_per_s": round(statistics.median(runs["hf"]), 2),
        "lmforge_streaming_tokens_per_s": round(statistics.median(runs["stream"]), 2),
        "ratio_vs_hf": round(statistics.median(runs["lmforge"]) / statistics.median(runs["hf"]), 3),
        "new_tokens": n, "rounds": rounds, "torch_threads": torch.get_num_threads(), "quick": args.quick,
    }
    emit(result, None if args.quick else REPO / "benchmarks" / "results" / "generate_speed.json")


if __name__ == "__main__":
    main()
