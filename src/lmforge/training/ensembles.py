"""Ensembles of fine-tuned models: combining their outputs, and averaging their weights (model soup).

Members' raw outputs (logits) are combined per example:

* ``mean``: the average of the members' logits (for regression, of their predicted values).
* ``vote``: majority vote of the members' predicted labels; the ensemble's scores are the vote
  shares, ties broken by the mean probability. Multi-label votes run per label.

A model soup (Wortsman et al., 2022) averages the weights of members fine-tuned from one
checkpoint with one head initialization, giving a single model at the cost of one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmforge.artifact import ARTIFACTS, META_FILE, Predictor, Scored, load, model_dir, read_meta
from lmforge.config import DataConfig
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.errors import LmforgeError

COMBINE = ("mean", "vote")
_TIE = 1e-3  # weight of the mean probability beside the vote share: breaks ties, never overturns a vote


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: np.ndarray | float) -> np.ndarray:
    return np.log(p) - np.log1p(-np.asarray(p))


def combine_logits(logits: Sequence[np.ndarray], how: str = "mean", kind: str = "single",
                   threshold: float = 0.5) -> np.ndarray:
    """One (N, C) array of ensemble logits from the members' (N, C) logits.

    Args:
        logits: One array per member, all of shape (N, C).
        how: ``mean`` (logit averaging) or ``vote`` (majority vote).
        kind: ``single`` (softmax classes), ``multi`` (sigmoid labels) or ``regression``.
        threshold: Probability at which a multi-label member votes for a label.

    Returns:
        Logits whose softmax (single) or sigmoid (multi) gives the ensemble's probabilities;
        for ``vote`` these are the vote shares (with the tie-break folded in).
    """
    if not logits:
        raise LmforgeError("an ensemble needs at least one member")
    stack = np.stack([np.asarray(x, dtype=np.float64) for x in logits])  # (M, N, C)
    if how == "mean" or kind == "regression":
        return stack.mean(axis=0).astype(np.float32)
    if how != "vote":
        raise LmforgeError(f"unknown ensemble combination {how!r}; choose one of {', '.join(COMBINE)}")
    if kind == "multi":
        probs = _sigmoid(stack)
        # A label passes when more than half the members vote for it; the mean probability only decides ties.
        score = np.clip((probs >= threshold).mean(axis=0) + _TIE * (probs.mean(axis=0) - threshold), 1e-6, 1 - 1e-6)
        # Shift so that sigmoid(logit) >= threshold exactly when score >= 0.5.
        return (_logit(score) + _logit(threshold)).astype(np.float32)
    probs = _softmax(stack)  # (M, N, C)
    votes = np.eye(stack.shape[-1])[probs.argmax(axis=-1)].mean(axis=0)  # (N, C) vote shares
    score = votes + _TIE * probs.mean(axis=0)
    return np.log(score / score.sum(axis=-1, keepdims=True)).astype(np.float32)


def soup(state_dicts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the members' floating-point weights (integer buffers from the first member).

    Raises:
        LmforgeError: The members do not share their parameter names and shapes.
    """
    if not state_dicts:
        raise LmforgeError("a model soup needs at least one member")
    first = state_dicts[0]
    for i, other in enumerate(state_dicts[1:], 1):
        if other.keys() != first.keys() or any(other[k].shape != first[k].shape for k in first):
            raise LmforgeError(f"soup member {i} does not have the architecture of member 0; soups need members "
                               "fine-tuned from one checkpoint")
    out = {}
    for key, value in first.items():
        if value.is_floating_point():
            out[key] = torch.stack([sd[key].float() for sd in state_dicts]).mean(0).to(value.dtype)
        else:
            out[key] = value.clone()
    return out


def load_state(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of a saved Hugging Face model folder (safetensors)."""
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise LmforgeError(f"{folder} holds no .safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


@dataclass
class EnsemblePredictor(Scored):
    """Several fine-tuned models answering as one; made by :func:`lmforge.load` for ``"kind": "ensemble"``.

    Attributes:
        path: The ensemble's folder.
        members: The members' predictors.
        how: ``mean`` or ``vote``.
    """

    path: Path
    members: list[Predictor]
    how: str

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


@ARTIFACTS.register("ensemble")
def _load_ensemble(path: Path, meta: dict[str, Any], device: str) -> EnsemblePredictor:
    members = []
    for member in meta["members"]:
        folder = (path / member).resolve()
        if not (folder / META_FILE).is_file():
            raise LmforgeError(f"ensemble {path}: member {folder} is missing; the ensemble folder must keep its members")
        members.append(load(folder, device))  # each member by its own kind's loader
    return EnsemblePredictor(path, members, meta["combine"])


# The artifact kinds a member may be: a fine-tuned model, or a base model with a saved adapter (LoRA,
# IA3...) and head; both load as a Predictor with logits, so members may come from different base models.
MEMBER_KINDS = ("model", "adapter")


def _check_members(metas: list[dict[str, Any]], folders: list[Path], combine: str) -> None:
    for meta, folder in zip(metas, folders, strict=True):  # the first member too: it may itself be an ensemble
        kind = meta.get("kind", "model")
        if kind not in MEMBER_KINDS:
            raise LmforgeError(f"{folder} is a {kind} artifact; ensemble members must be fine-tuned models or adapters")
        if combine == "soup" and kind != "model":
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
    target.mkdir(parents=True)
    meta = {**{k: metas[0][k] for k in ("task", "labels", "data", "base_model")}, "kind": "ensemble",
            "combine": combine, "members": [os.path.relpath(f, target) for f in folders]}
    (target / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    return target.parent


def _save_soup(folders: list[Path], meta: dict[str, Any], target: Path) -> Path:
    from safetensors.torch import save_file

    shutil.copytree(folders[0], target, ignore=shutil.ignore_patterns("*.safetensors", "*.safetensors.index.json"))
    save_file(soup([load_state(f) for f in folders]), str(target / "model.safetensors"), metadata={"format": "pt"})
    meta = {**meta, "soup_of": [str(f) for f in folders]}
    (target / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    return target
