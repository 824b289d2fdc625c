"""``lmforge merge``: fold a LoRA (or IA3, BitFit) run's update into the base weights.

The merged folder is a plain transformers model with lmforge's metadata: it loads with
``AutoModelFor*.from_pretrained`` and with :func:`lmforge.load`, and runs at the base
model's speed (no adapter layers left).
"""

from __future__ import annotations

from pathlib import Path

from lmforge.artifacts import legacy_kind, load, model_dir, read_meta, save_model
from lmforge.config import TaskConfig
from lmforge.errors import LmforgeError
from lmforge.tuning import merge_tuned, parse_options


def merge(run: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Merge the adapter of ``run`` into its base model and save the result to ``out``.

    Args:
        run: An adapter run directory (or its ``model`` folder).
        out: Folder for the merged model.
        overwrite: Allow writing into a non-empty ``out``.
    """
    path, out = model_dir(run), Path(out)
    meta = read_meta(path)
    if legacy_kind(meta) != "adapter":
        raise LmforgeError(f"{path} is a {legacy_kind(meta)} artifact, not an adapter; there is no adapter to merge")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise LmforgeError(f"{out} exists and is not empty; choose another --out or pass --overwrite")
    predictor = load(path, device="cpu")
    merged = merge_tuned(predictor.model, parse_options(meta["tuning"]))
    return save_model(out, merged, predictor.tokenizer, TaskConfig(**meta["task"]), predictor.labels, predictor.data,
                      meta["base_model"], merged_from={"run": str(path.resolve()), "tuning": meta["tuning"]})
