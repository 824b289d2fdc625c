"""Kind ``ensemble``: several trained runs answering as one (logit mean or majority vote), or a model soup.

The members stay in their own folders, referenced by relative path, each loaded by its own
kind's loader, so members may come from different base models. A soup is saved as one plain
classifier with the members' averaged weights.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import save_file

from lmforge.artifacts.adapter import load_adapter
from lmforge.artifacts.base import ARTIFACTS, META_FILE, Scored, legacy_kind, model_dir, read_meta, write_meta
from lmforge.artifacts.classifier import TaskModel, load_classifier
from lmforge.config import DataConfig
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.errors import LmforgeError
from lmforge.training.ensembles import COMBINE, combine_logits, load_state, soup


@dataclass
class EnsemblePredictor(Scored):
    """Several fine-tuned models answering as one; made by :func:`lmforge.load` for ``"kind": "ensemble"``.

    Attributes:
        path: The ensemble's folder.
        members: The members' predictors.
        how: ``mean`` or ``vote``.
    """

    path: Path
    members: list[TaskModel]
    how: str
    kind: str = "ensemble"

    @property
    def task(self) -> Any:
        """The members' task."""
        return self.members[0].task

    @property
    def labels(self) -> LabelSpace:
        """The members' label space."""
        return self.members[0].labels

    @property
    def data(self) -> DataConfig:
        """Text settings (normalization, columns, max length) of the first member."""
        return self.members[0].data

    @property
    def tokenizer(self) -> Any:
        """The first member's tokenizer."""
        return self.members[0].tokenizer

    def combine(self, member_logits: list[np.ndarray]) -> np.ndarray:
        """The ensemble's logits from the members' logits."""
        return combine_logits(member_logits, self.how, self.labels.kind, getattr(self.task.cfg, "threshold", 0.5))

    def member_logits(self, examples: Examples, batch_size: int = 64) -> list[np.ndarray]:
        """Each member's logits for ``examples`` (each member tokenizes with its own tokenizer)."""
        return [m.scores(examples, None, batch_size) for m in self.members]

    def scores(self, examples: Examples, targets: np.ndarray | None = None, batch_size: int = 64) -> np.ndarray:
        """The ensemble's logits for cleaned ``examples``."""
        return self.combine(self.member_logits(examples, batch_size))


# The artifact kinds a member may be: a fine-tuned model, or a base model with a saved adapter (LoRA,
# IA3...) and head; both load as a TaskModel with logits, so members may come from different base models.
MEMBER_LOADERS = {"classifier": load_classifier, "adapter": load_adapter}


@ARTIFACTS.register("ensemble")
def load_ensemble(path: Path, meta: dict[str, Any], device: str) -> EnsemblePredictor:
    """Loader of the ``ensemble`` kind: each member by its own kind's loader."""
    members = []
    for member in meta["members"]:
        folder = (path / member).resolve()
        if not (folder / META_FILE).is_file():
            raise LmforgeError(f"ensemble {path}: member {folder} is missing; the ensemble folder must keep its members")
        member_meta = read_meta(folder)
        members.append(MEMBER_LOADERS[legacy_kind(member_meta)](folder, member_meta, device))
    return EnsemblePredictor(path, members, meta["combine"])


def _check_members(metas: list[dict[str, Any]], folders: list[Path], combine: str) -> None:
    for meta, folder in zip(metas, folders, strict=True):  # the first member too: it may itself be an ensemble
        kind = legacy_kind(meta)
        if kind not in MEMBER_LOADERS:
            raise LmforgeError(f"{folder} is a {kind} artifact; ensemble members must be fine-tuned models or adapters")
        if combine == "soup" and kind != "classifier":
            raise LmforgeError(f"{folder} is an {kind} artifact; a soup averages full models' weights "
                               "(merge the adapter first with `lmforge merge`, or combine by mean or vote)")
        if meta["labels"] != metas[0]["labels"] or meta["task"] != metas[0]["task"]:
            raise LmforgeError(f"{folder} has other labels or another task than {folders[0]}; "
                               "ensemble members must be trained on the same labels (set data.labels)")


def assemble(runs: Sequence[str | Path], out: str | Path, combine: str = "mean", overwrite: bool = False) -> Path:
    """Save trained runs as one ensemble artifact under ``out/model`` and return ``out``.

    Args:
        runs: Run directories (or model folders) of the members.
        out: The ensemble's run directory.
        combine: ``mean``, ``vote`` (members referenced by relative path, so keep ``out`` and the
            members together) or ``soup`` (one model with the members' averaged weights).
        overwrite: Replace an existing ensemble in ``out``.
    """
    folders = [model_dir(r).resolve() for r in runs]
    metas = [read_meta(f) for f in folders]
    _check_members(metas, folders, combine)
    target = Path(out) / "model"
    if (target / META_FILE).is_file() and not overwrite:
        raise LmforgeError(f"{target} already holds a model; pass overwrite=True or choose another folder")
    shutil.rmtree(target, ignore_errors=True)
    if combine == "soup":
        return _save_soup(folders, metas[0], target).parent
    if combine not in COMBINE:
        raise LmforgeError(f"unknown ensemble combination {combine!r}; choose mean, vote or soup")
    first = metas[0]
    write_meta(target, "ensemble", first["base_model"], LabelSpace.from_dict(first["labels"]), first["data"], task=first["task"],
               combine=combine, members=[os.path.relpath(f, target) for f in folders])
    return target.parent


def _save_soup(folders: list[Path], meta: dict[str, Any], target: Path) -> Path:
    # The first member's files (config, tokenizer) without its weights or lmforge.json, then the averaged weights.
    shutil.copytree(folders[0], target, ignore=shutil.ignore_patterns("*.safetensors", "*.safetensors.index.json", META_FILE))
    save_file(soup([load_state(f) for f in folders]), str(target / "model.safetensors"), metadata={"format": "pt"})
    extra = {k: v for k, v in meta.items() if k not in ("kind", "lmforge_version", "base_model", "labels", "data")}
    return write_meta(target, "classifier", meta["base_model"], LabelSpace.from_dict(meta["labels"]), meta["data"], **extra,
                      soup_of=[str(f) for f in folders])
