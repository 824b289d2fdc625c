"""The customer-service assistant (apps/support): intents, out-of-scope detection, scripted dialogues and turn latency.

    PYTHONPATH=src python benchmarks/support_bot.py [--test FILE] [--config apps/support/config.yaml] [--passes 3] [key=value ...]

- intent accuracy and macro-F1 on ``--test`` (any BANKING77-format CSV), by default the stratified 20% the
  application holds out of ``banking77/train.csv`` (seed 0); the TF-IDF + logistic regression baseline on the
  same rows beside it (in ``support_bot_details.json``);
- out-of-scope AUROC: a second run trained without 10 intents; the test rows of those intents are the
  unknown requests, scored by the calibrated top probability;
- the scripted dialogues (apps/support/src/lmforge_support/dialogues/scripted.yaml) through HTTP on a local
  server: slot-filling success (the stub action ran with the expected details), handoff F1 per dialogue,
  and p99 turn latency over ``--passes`` passes.

Trains the application's runs first when they are missing (run it under the CPU lock). Ends with one JSON
line: intent_accuracy, intent_macro_f1, oos_auroc, dialogue_success, handoff_f1, turn_p99_ms, machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
import yaml
from _common import REPO, emit, log, setup_logging
from lmforge_support import evaluation, intents
from lmforge_support.cli import build_app
from lmforge_support.config import PACKAGE_DIR, load_config
from sklearn.metrics import f1_score

import lmforge
from lmforge.serving.auth import create_key

DIALOGUES = PACKAGE_DIR / "dialogues" / "scripted.yaml"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_dialogue(client: httpx.Client, dialogue: dict[str, Any], latencies: list[float]) -> list[dict[str, Any]]:
    """Every reply of one scripted dialogue in a new conversation."""
    conv = client.post("/v1/support/conversations", json={}).json()["conversation_id"]
    replies = []
    for i, text in enumerate(dialogue["turns"]):
        start = time.perf_counter()
        r = client.post(f"/v1/support/conversations/{conv}/messages", json={"text": text, "message_id": f"{dialogue['id']}-{i}"})
        latencies.append((time.perf_counter() - start) * 1000)
        r.raise_for_status()
        replies.append(r.json())
    return replies


def judge(dialogue: dict[str, Any], replies: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the dialogue reached its expected outcome, and whether it went to a person."""
    handed = any(r.get("handoff") for r in replies)
    action = dialogue.get("action")
    if action and action != "none":
        confirm = next((r["text"].lower() for r in replies if r["kind"] == "confirm"), "")
        ok = any(r["kind"] == "action" and r["intent"] == action for r in replies) and \
            all(str(v).lower() in confirm for v in dialogue.get("contains", []))
    elif dialogue.get("answer") and dialogue["answer"] != "none":
        ok = replies[0]["intent"] == dialogue["answer"] and not handed
    else:
        ok = handed == dialogue["handoff"]
    return {"id": dialogue["id"], "ok": bool(ok), "handoff": handed, "expected_handoff": bool(dialogue["handoff"]),
            "slot": bool(action and action != "none"), "kinds": [r["kind"] for r in replies]}


def dialogues_through_http(cfg: Any, run: Path, passes: int) -> tuple[list[dict[str, Any]], list[float]]:
    """Serve the application on a free port and play every scripted dialogue ``passes`` times."""
    scripted = yaml.safe_load(DIALOGUES.read_text(encoding="utf-8"))["dialogues"]
    home = Path(tempfile.mkdtemp(prefix="support_bench_"))
    key = create_key(home / "keys.json", "bench", endpoints=("support",), rate=0)
    port = free_port()
    cfg = cfg.model_copy(update={"store": cfg.store.model_copy(update={"url": f"sqlite:///{home}/bench.db"}),
                                 "service": cfg.service.model_copy(update={"keys": str(home / "keys.json"), "port": port})})
    app = build_app(cfg, {"intents": str(run / "model"), "encoder": cfg.kb.encoder})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    results, latencies = [], []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            for p in range(passes):
                for dialogue in scripted:
                    verdict = judge(dialogue, run_dialogue(client, dialogue, latencies))
                    if p == 0:
                        results.append(verdict)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    return results, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "apps" / "support" / "config.yaml"), help="the application's config")
    parser.add_argument("--test", help="BANKING77-format CSV to score (default: the application's held-out 20%%)")
    parser.add_argument("--passes", type=int, default=3, help="passes over the scripted dialogues for the latency figures")
    parser.add_argument("overrides", nargs="*", help="key.sub=value settings over the config (intents.data=PATH)")
    args = parser.parse_args()
    setup_logging()
    cfg = load_config(args.config, args.overrides)
    run = intents.train(cfg.intents, cfg.home)
    encoder = lmforge.load(cfg.kb.encoder)  # the knowledge base's encoder, which the scope detector shares in the app
    model = intents.IntentModel.open(cfg, run, embed=encoder.embed)
    rows = intents.read_rows(args.test) if args.test else intents.read_rows(cfg.home / "splits" / "intents" / "test.csv")
    figures = evaluation.intent_figures(model, rows)
    log(f"intents on {figures['rows']} rows: {json.dumps(figures)}")
    all_rows = intents.read_rows(cfg.intents.data)
    held = intents.held_out_intents([y for _, y in all_rows], cfg.intents.oos_intents, cfg.intents.seed)
    oos_model = intents.IntentModel.open(cfg, intents.train(cfg.intents, cfg.home, "intents_oos", held, cfg.intents.oos_epochs),
                                         embed=encoder.embed)
    oos_rows = rows if args.test else intents.split_rows(all_rows, cfg.intents)[2]
    oos = evaluation.oos_auroc(oos_model, oos_rows)
    log(f"out of scope ({len(held)} intents held out: {', '.join(held)}): {json.dumps(oos)}")
    verdicts, latencies = dialogues_through_http(cfg, run, args.passes)
    slot = [v for v in verdicts if v["slot"]]
    handoff_f1 = f1_score([v["expected_handoff"] for v in verdicts], [v["handoff"] for v in verdicts])
    for v in verdicts:
        if not v["ok"] or v["handoff"] != v["expected_handoff"]:
            log(f"dialogue {v['id']}: ok={v['ok']} handoff={v['handoff']} (expected {v['expected_handoff']}) {v['kinds']}")
    machine = f"{os.cpu_count()} CPU cores shared with other jobs ({platform.machine()}), torch CPU, {platform.python_version()}"
    result = {"intent_accuracy": round(figures["mixed"]["accuracy"], 4), "intent_macro_f1": round(figures["mixed"]["macro_f1"], 4),
              "oos_auroc": round(oos.get("scope", oos["max_prob"]), 4),
              "dialogue_success": round(sum(v["ok"] for v in slot) / len(slot), 4),
              "handoff_f1": round(float(handoff_f1), 4), "turn_p99_ms": round(float(np.percentile(latencies, 99)), 1),
              "machine": machine}
    details = {"test": args.test or "held-out 20% of banking77/train.csv (stratified, seed 0)", "intents": figures, "oos": oos,
               "oos_held_out": held, "dialogues": len(verdicts), "slot_dialogues": len(slot),
               "all_dialogue_success": round(sum(v["ok"] for v in verdicts) / len(verdicts), 4),
               "turn_p50_ms": round(float(np.percentile(latencies, 50)), 1), "turns_timed": len(latencies), "verdicts": verdicts}
    out = REPO / "benchmarks" / "results"
    if not args.test:
        out.mkdir(parents=True, exist_ok=True)
        (out / "support_bot_details.json").write_text(json.dumps(details, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    emit(result, out / "support_bot.json" if not args.test else None)


if __name__ == "__main__":
    main()
