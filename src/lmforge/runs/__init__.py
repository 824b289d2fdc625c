"""Runs: run directories, their logs and resolved configs, caches, and the fine-tuning run recipes share."""

from lmforge.runs.directory import (
    add_file_log,
    cache_dir,
    open_run,
    run_directory,
    run_folder,
    save_config,
    setup_logging,
    token_cache_dir,
)
from lmforge.runs.finetune_run import FinetuneResult, finetune

__all__ = ["FinetuneResult", "add_file_log", "cache_dir", "finetune", "open_run", "run_directory", "run_folder",
           "save_config", "setup_logging", "token_cache_dir"]
