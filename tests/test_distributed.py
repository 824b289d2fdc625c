"""DDP (torchrun, gloo on CPU) gives the single-process losses for the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import sys
import lmforge
sys.path.insert(0, {tests!r})
from forge_testing import tiny_config
cfg = tiny_config({model!r}, {data!r}, {run!r}, train={{"max_steps": 6, "batch_size": 16}},
                  model={{"dropout": 0.0, "attention_dropout": 0.0}})
print(lmforge.finetune(cfg).status)
"""


def _losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["split"] == "train"]


def _run(tmp_path: Path, tiny_bert: Path, toy_csv: Path, name: str, launcher: list[str]) -> Path:
    run = tmp_path / name
    script = tmp_path / f"{name}.py"
    tests = str(Path(__file__).parent)
    script.write_text(SCRIPT.format(tests=tests, model=str(tiny_bert), data=str(toy_csv), run=str(run)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*launcher, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "completed" in proc.stdout
    processes = 1 if len(launcher) == 1 else 2
    assert f"{processes} process(es)" in (run / "train.log").read_text()
    return run


LAUNCHERS = {
    "torchrun": ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533"],
    # accelerate's --multi_gpu launcher is its torchrun launcher; with no GPU each process trains on CPU
    # over gloo (its --cpu flag, in contrast, starts a single process).
    "accelerate": ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29534"],
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_ddp_matches_single_process(launcher: str, tiny_bert: Path, toy_csv: Path, tmp_path: Path) -> None:
    single = _run(tmp_path, tiny_bert, toy_csv, "single", [sys.executable])
    ddp = _run(tmp_path, tiny_bert, toy_csv, "ddp", [sys.executable, *LAUNCHERS[launcher]])
    assert len(_losses(single)) == 6
    assert _losses(ddp) == pytest.approx(_losses(single), abs=2e-5)
    assert (ddp / "model" / "model.safetensors").is_file()
