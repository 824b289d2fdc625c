"""``lmforge serve`` under load on loopback: throughput and latency against a naive FastAPI server, memory, time to ready.

The model is minilm-l6 with a two-label classification head, saved as an lmforge classifier run
(training changes no weight's shape, so it does not change the cost of a forward pass). Both
servers run it on this machine with the same number of processes (one): lmforge with its queue
and micro-batching, the naive server with one forward pass per request (FastAPI, uvicorn, the
model called from its thread pool). One client process sends one SST-2 sentence per request at
concurrency 1, 8, 32 and 64; each level stops after a fixed number of requests or seconds.

Then: an overload phase (concurrency 128 against a queue of 16) that must answer only 200 or
429/503; the memory of 1 and 4 workers serving the same run (proportional set size summed over
the supervisor and its workers: pages shared by the workers count once; the plain RSS sum is
reported beside it); and the seconds from starting ``lmforge serve`` to ``/readyz`` = 200.

    flock /tmp/lmforge-cpu.lock python benchmarks/serve_load.py           # writes benchmarks/results/serve_load.json
    python benchmarks/serve_load.py --quick                                # smoke run (fewer requests)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from _common import REPO, SHARED, bench_home, emit, log, setup_logging

LEVELS = (1, 8, 32, 64)


def build_run(folder: Path) -> Path:
    """minilm-l6 with a negative/positive head, saved as an lmforge classifier run (once; reruns reuse it)."""
    import torch

    from lmforge.artifacts import save_model
    from lmforge.config import DataConfig, ModelConfig, TaskConfig
    from lmforge.data.labels import LabelSpace
    from lmforge.models.build import load_tokenizer, resolve
    from lmforge.tasks import get_task

    run = folder / "minilm-sst2"
    if not (run / "model" / "lmforge.json").is_file():
        task, labels, base = TaskConfig(name="classification"), LabelSpace("single", ["negative", "positive"]), resolve("minilm-l6")
        torch.manual_seed(0)
        model = get_task(task).build_model(base, labels, ModelConfig())
        save_model(run / "model", model, load_tokenizer(base), task, labels, DataConfig(max_length=64), "minilm-l6")
    return run


def texts() -> list[str]:
    """SST-2 sentences from the shared data (synthetic ones where it is absent)."""
    path = SHARED / "sst2" / "dev.tsv"
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()[1:2001]
        return [line.split("\t")[0] for line in lines if line.strip()]
    return [f"the film number {i} was {'good' if i % 2 else 'bad'} and the actors were fine" for i in range(2000)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def wait_ready(process: subprocess.Popen, url: str, started: float, limit: float = 180) -> float:
    """Seconds from ``started`` until ``url/readyz`` answers 200."""
    while time.perf_counter() - started < limit:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url} was not ready in {limit} s")


def start_lmforge(run: Path, workers: int, keys: Path, *overrides: str) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    cmd = [sys.executable, "-m", "lmforge", "serve", str(run), f"auth.keys={keys}", "logging.access_log=false", f"server.port={port}",
           f"server.workers={workers}", *overrides]
    started = time.perf_counter()
    process = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    return process, url, wait_ready(process, url, started)


def start_naive(run: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--naive", str(run), "--port", str(port)], env=env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(process, url, time.perf_counter())
    return process, url


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def naive_server(run: str, port: int) -> None:
    """The baseline: FastAPI with one forward pass per request, called from uvicorn's thread pool."""
    import uvicorn
    from fastapi import FastAPI

    from lmforge import artifacts

    model = artifacts.load(run)
    model.predict(["warm up"])
    app = FastAPI()

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/v1/classify")
    def classify(body: dict[str, Any]) -> dict[str, Any]:
        return {"results": model.predict(body["texts"])}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def _load(url: str, headers: dict[str, str], sentences: list[str], concurrency: int, count: int, seconds: float) -> dict[str, Any]:
    codes: collections.Counter[int] = collections.Counter()
    latencies: list[float] = []
    sent = [0]
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as client:

        async def user() -> None:
            while sent[0] < count and time.perf_counter() < deadline:
                i = sent[0]
                sent[0] += 1
                start = time.perf_counter()
                try:
                    r = await client.post(url + "/v1/classify", json={"texts": [sentences[i % len(sentences)]]})
                    codes[r.status_code] += 1
                except httpx.TransportError:
                    codes[-1] += 1
                latencies.append(time.perf_counter() - start)

        began = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        wall = time.perf_counter() - began
    latencies.sort()
    ok = codes.get(200, 0)
    pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1) if latencies else None
    return {"concurrency": concurrency, "requests": sum(codes.values()), "rps": round(ok / wall, 1), "p50_ms": pick(0.5),
            "p99_ms": pick(0.99), "codes": {str(k): v for k, v in sorted(codes.items())}}


def load(url: str, headers: dict[str, str], sentences: list[str], concurrency: int, count: int, seconds: float) -> dict[str, Any]:
    """Send ``count`` requests (at most ``seconds``) from ``concurrency`` clients; rps of 200s, p50/p99, status codes."""
    result = asyncio.run(_load(url, headers, sentences, concurrency, count, seconds))
    log(f"{url} c={concurrency}: {result['rps']} req/s, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, {result['codes']}")
    return result


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            children = []
        todo += [int(c) for c in children]
    return pids


def memory_mb(pid: int) -> dict[str, float]:
    """PSS and RSS (MB) summed over ``pid`` and its descendants."""
    pss = rss = 0
    for p in _tree(pid):
        try:
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines()[1:])
        except OSError:
            continue
        pss += int(fields["Pss"].split()[0])
        rss += int(fields["Rss"].split()[0])
    return {"pss_mb": round(pss / 1024, 1), "rss_sum_mb": round(rss / 1024, 1), "processes": len(_tree(pid))}


def make_key(path: Path) -> str:
    from lmforge.serving.auth import KeyStore

    path.unlink(missing_ok=True)
    return KeyStore(path).create("bench", rate_per_minute=0)[1]


def measure(run: Path, quick: bool) -> dict[str, Any]:
    home = bench_home("serve_load")
    keys = home / "keys.json"
    headers = {"Authorization": f"Bearer {make_key(keys)}"}
    sentences = texts()
    count = {1: 100, 8: 400, 32: 800, 64: 800} if not quick else {1: 20, 8: 40, 32: 64, 64: 64}
    seconds = 30.0 if not quick else 5.0
    ours, naive = {}, {}
    process, url, ready_s = start_lmforge(run, 1, keys)
    log(f"lmforge serve ready in {ready_s:.1f} s")
    load(url, headers, sentences, 8, 40, 10)  # warm-up
    for c in LEVELS:
        ours[c] = load(url, headers, sentences, c, count[c], seconds)
    one = memory_mb(process.pid)
    stop(process)
    process, url = start_naive(run)
    load(url, {}, sentences, 8, 40, 10)
    for c in LEVELS:
        naive[c] = load(url, {}, sentences, c, count[c], seconds)
    stop(process)
    process, url, _ = start_lmforge(run, 4, keys)
    load(url, headers, sentences, 16, 200 if not quick else 32, 20)  # every worker serves, so each touches what it uses
    four = memory_mb(process.pid)
    stop(process)
    process, url, _ = start_lmforge(run, 1, keys, "batching.queue_size=16")
    overload = load(url, headers, sentences, 128, 1000 if not quick else 200, seconds)
    stop(process)
    return {"ours": ours, "naive": naive, "one": one, "four": four, "overload": overload, "ready_s": ready_s}


def summarize(m: dict[str, Any]) -> dict[str, Any]:
    """The JSON line: the issue's keys first, then the details."""
    ours, naive, overload = m["ours"], m["naive"], m["overload"]
    five = lambda codes, skip=(): sum(v for k, v in codes.items() if k.startswith("5") and k not in skip)
    errors = sum(five(r["codes"]) for r in ours.values()) + five(overload["codes"], ("503",))
    shed = sum(overload["codes"].get(k, 0) for k in ("429", "503"))
    other = sum(v for k, v in overload["codes"].items() if k not in ("200", "429", "503"))
    return {
        "lmforge_rps_c32": ours[32]["rps"], "naive_rps_c32": naive[32]["rps"], "ratio_c32": round(ours[32]["rps"] / max(naive[32]["rps"], 1e-9), 2),
        "p99_ms_c32": ours[32]["p99_ms"], "errors_5xx": errors, "shed_429_503": shed, "rss_1_worker_mb": m["one"]["pss_mb"],
        "rss_4_workers_mb": m["four"]["pss_mb"], "ready_s": round(m["ready_s"], 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}",
        "memory_ratio_4_to_1": round(m["four"]["pss_mb"] / m["one"]["pss_mb"], 2), "rss_sum_1_worker_mb": m["one"]["rss_sum_mb"],
        "rss_sum_4_workers_mb": m["four"]["rss_sum_mb"], "overload_other_codes": other,
        "levels": {str(c): {"lmforge": ours[c], "naive": naive[c]} for c in LEVELS}, "overload": overload,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few requests per level (a smoke run)")
    parser.add_argument("--naive", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive:
        naive_server(args.naive, args.port)
        return
    setup_logging()
    run = build_run(bench_home("serve_load"))
    result = summarize(measure(run, args.quick))
    emit(result, None if args.quick else REPO / "benchmarks" / "results" / "serve_load.json")


if __name__ == "__main__":
    main()
