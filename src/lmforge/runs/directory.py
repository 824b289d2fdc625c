"""Run directories: where a recipe writes, its log file, its resolved config, and lmforge's caches.

Every recipe opens its run through :func:`open_run` (training recipes, with an accelerator) or
:func:`run_folder` (the others), so each run directory looks the same: ``config.yaml`` (the
resolved config), ``train.log`` (the whole log) and what the recipe adds.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from accelerate.utils import broadcast_object_list
from pydantic import BaseModel

from lmforge import config as config_mod
from lmforge import zoo
from lmforge.config import OutputConfig, TrainConfig
from lmforge.errors import LmforgeError
from lmforge.logs import setup_logging
from lmforge.training.loop import make_accelerator

log = logging.getLogger("lmforge")

__all__ = ["add_file_log", "cache_dir", "open_run", "run_directory", "run_folder", "save_config", "setup_logging",
           "token_cache_dir"]


def run_directory(out: OutputConfig, resume: bool) -> Path:
    """The run directory named by ``out``; refuses to overwrite a finished run by accident."""
    path = Path(out.dir.format(name=out.name, time=time.strftime("%Y%m%d-%H%M%S")))
    if path.exists() and any(path.iterdir()) and not (resume or out.overwrite):
        raise LmforgeError(f"run directory {path} already exists; pass --resume to continue it, "
                           "set output.overwrite=true to replace it, or choose another output.name")
    if out.overwrite and not resume and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def add_file_log(run_dir: Path) -> logging.Handler:
    """Mirror lmforge's log into ``run_dir/train.log``, debug lines (the resolved config) included."""
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger("lmforge")
    root.addHandler(handler)
    # The file gets the full story even when the console is quiet; console handlers keep their own level.
    root.setLevel(logging.DEBUG)
    return handler


def save_config(run_dir: Path, cfg: BaseModel) -> Path:
    """Write the resolved config (every default filled in) to ``config.yaml`` and into the log."""
    text = config_mod.dump(cfg)
    path = run_dir / "config.yaml"
    path.write_text(text, encoding="utf-8")
    log.debug("resolved config:\n%s", text)
    log.info("resolved config: %s", path)
    return path


@contextlib.contextmanager
def run_folder(output: OutputConfig, cfg: BaseModel | None = None, resume: bool = False) -> Iterator[Path]:
    """The run directory of a recipe that trains no single loop (prompting, ensembles), with its log mirrored."""
    run_dir = run_directory(output, resume)
    handler = add_file_log(run_dir)
    try:
        if cfg is not None:
            save_config(run_dir, cfg)
        yield run_dir
    finally:
        logging.getLogger("lmforge").removeHandler(handler)
        handler.close()


def _shared_run_directory(out: OutputConfig, resume: bool, acc: Any) -> Path:
    """The main process picks the run directory; the others are told, so all write to one place."""
    paths = [str(run_directory(out, resume)) if acc.is_main_process else None]
    if acc.num_processes > 1:
        broadcast_object_list(paths)
    return Path(paths[0])


@contextlib.contextmanager
def open_run(output: OutputConfig, train: TrainConfig, resume: bool, cfg: BaseModel | None = None) -> Iterator[tuple[Any, Path]]:
    """The accelerator and run directory of a training recipe, with the log mirrored and the resolved config saved."""
    acc = make_accelerator(train)
    run_dir = _shared_run_directory(output, resume, acc)
    handler = add_file_log(run_dir) if acc.is_main_process else None
    try:
        if cfg is not None and acc.is_main_process:
            save_config(run_dir, cfg)
        yield acc, run_dir
    finally:
        if handler:
            logging.getLogger("lmforge").removeHandler(handler)
            handler.close()


def token_cache_dir() -> Path:
    """Where tokenized data is cached."""
    return zoo.home() / "cache" / "tokens"


def cache_dir(*parts: str) -> Path:
    """A cache folder under lmforge's home (``LMFORGE_HOME``), e.g. ``cache_dir("pretrain")``."""
    return zoo.home().joinpath("cache", *parts)
