"""Launching fine-tunes from the studio: a form's fields become the YAML ``lmforge finetune`` takes, run as a subprocess.

The studio never trains in its own process: each launch is ``python -m lmforge finetune job.yaml``
with its output in ``job.log``, so a crash or a stop leaves the studio running, and the same YAML
can be run again from a shell. Progress is read back from the log (the training progress bar).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lmforge import config as config_mod
from lmforge.config import FinetuneConfig
from lmforge.errors import ConfigError

# "training:  45%|####5     | 9/20 [00:03<00:04, 2.9step/s]": the training loop's progress bar.
_PROGRESS = re.compile(r"training:\s*(\d+)%\|[^|]*\|\s*(\d+)/(\d+)")
TAIL_LINES = 40
STOP_GRACE_S = 15.0


def config_tree(fields: dict[str, Any], overrides: list[str] | None = None) -> dict[str, Any]:
    """The config mapping of a form: dotted keys (``train.epochs``) with their values, then ``key=value`` overrides.

    Empty fields are left out, so the YAML holds only what the person chose; values typed as text are
    read as YAML scalars (``3`` is a number, ``true`` a boolean), as on the command line.

    Raises:
        ConfigError: The result is not a valid fine-tuning config (one sentence naming the key).
    """
    tree: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        text = value.strip() if isinstance(value, str) else value
        config_mod.set_key(tree, key, yaml.safe_load(text) if isinstance(text, str) else text)
    config_mod.apply_overrides(tree, [o.strip() for o in overrides or [] if o.strip()])
    config_mod.build(FinetuneConfig, tree, "the launch form")
    return tree


def config_yaml(tree: dict[str, Any]) -> str:
    """The YAML text of a config mapping, sections in the order the CLI documents them."""
    order = ["data", "model", "task", "tuning", "train", "output"]
    ordered = {k: tree[k] for k in order if k in tree} | {k: v for k, v in tree.items() if k not in order}
    return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True)


def _interruptible() -> None:
    """In the job's process before it starts: Ctrl-C's signal back to its default. A studio started in the background by a
    shell (``lmforge studio &``) has SIGINT ignored, which children inherit, and then "stop" could only kill the job
    without its checkpoint."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Job:
    """One launched fine-tune.

    Attributes:
        id: The job's name (``YYYYmmdd-HHMMSS-<run name>``).
        folder: Where its ``config.yaml`` and ``job.log`` are.
        run_dir: The run directory its config names (None when it holds ``{time}``).
        process: The ``lmforge finetune`` process.
        started: When it started (epoch seconds).
        stopped: Whether a person asked it to stop.
    """

    id: str
    folder: Path
    run_dir: Path | None
    process: subprocess.Popen
    started: float = field(default_factory=time.time)
    stopped: bool = False

    def state(self) -> str:
        """``running``, ``completed``, ``stopped`` or ``failed``."""
        code = self.process.poll()
        if code is None:
            return "running"
        if self.stopped:
            return "stopped"
        return "completed" if code == 0 else "failed"


def log_tail(text: str, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a log, each progress-bar line shown as its latest state (after its last carriage return)."""
    # split("\n"), not splitlines(): a progress bar redraws itself with carriage returns inside one line.
    rows = [line.rstrip("\r").split("\r")[-1] for line in text.rstrip("\n").split("\n")]
    return rows[-lines:]


def progress(text: str) -> dict[str, Any] | None:
    """The latest training progress in a log: ``{"step", "total", "fraction"}``, or None before training starts."""
    found = _PROGRESS.findall(text)
    if not found:
        return None
    _, step, total = found[-1]
    return {"step": int(step), "total": int(total), "fraction": int(step) / max(int(total), 1)}


class Launcher:
    """Starts, watches and stops ``lmforge finetune`` processes.

    Args:
        jobs_dir: Where each job's folder (config and log) is written.
        cwd: The directory relative paths in configs are read from (the studio's working directory).
        python: The interpreter that runs lmforge (this one by default).
    """

    def __init__(self, jobs_dir: Path, cwd: Path | None = None, python: str = sys.executable) -> None:
        self.jobs_dir, self.cwd, self.python = Path(jobs_dir), cwd or Path.cwd(), python
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, tree: dict[str, Any]) -> Job:
        """Write ``tree`` as the job's ``config.yaml`` and start fine-tuning it."""
        cfg = config_mod.build(FinetuneConfig, tree, "the launch form")
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", cfg.output.name) or "run"
        with self._lock:
            job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
            while job_id in self.jobs or (self.jobs_dir / job_id).exists():
                job_id += "-1"
            folder = self.jobs_dir / job_id
            folder.mkdir(parents=True)
            (folder / "config.yaml").write_text(config_yaml(tree), encoding="utf-8")
            run_dir = None if "{time}" in cfg.output.dir else (self.cwd / cfg.output.dir.format(name=cfg.output.name)).resolve()
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            with (folder / "job.log").open("wb") as log:
                process = subprocess.Popen([self.python, "-m", "lmforge", "finetune", str(folder / "config.yaml")], cwd=self.cwd,
                                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                           start_new_session=True, preexec_fn=_interruptible)
            job = self.jobs[job_id] = Job(job_id, folder, run_dir, process)
        return job

    def get(self, job_id: str) -> Job:
        """The job named ``job_id``.

        Raises:
            ConfigError: No job of that name was started by this studio.
        """
        job = self.jobs.get(job_id)
        if job is None:
            raise ConfigError(f"no job named {job_id!r} was launched from this studio; the launch page lists the jobs")
        return job

    def status(self, job_id: str) -> dict[str, Any]:
        """The job's state, progress, return code and the tail of its log."""
        job = self.get(job_id)
        state = job.state()
        try:
            text = (job.folder / "job.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        return {"id": job.id, "state": state, "returncode": job.process.poll(), "progress": progress(text),
                "log": log_tail(text), "run_dir": str(job.run_dir) if job.run_dir else None,
                "config": (job.folder / "config.yaml").read_text(encoding="utf-8"), "seconds": round(time.time() - job.started, 1)}

    def stop(self, job_id: str) -> dict[str, Any]:
        """Ask the job to stop as Ctrl-C would (it saves a checkpoint it can resume from); killed if still running after a grace period."""
        job = self.get(job_id)
        if job.process.poll() is None:
            job.stopped = True
            job.process.send_signal(signal.SIGINT)
            threading.Thread(target=self._reap, args=(job,), daemon=True).start()
        return self.status(job_id)

    def _reap(self, job: Job) -> None:
        try:
            job.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            job.process.kill()
            job.process.wait()

    def list(self) -> list[dict[str, Any]]:
        """Every job of this studio, newest first: id, state and run directory."""
        rows = [{"id": j.id, "state": j.state(), "run_dir": str(j.run_dir) if j.run_dir else None} for j in self.jobs.values()]
        return sorted(rows, key=lambda r: r["id"], reverse=True)

    def close(self) -> None:
        """Stop every running job (the studio is shutting down)."""
        for job in self.jobs.values():
            if job.process.poll() is None:
                job.stopped = True
                job.process.send_signal(signal.SIGINT)
        for job in self.jobs.values():
            self._reap(job)
