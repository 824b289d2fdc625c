"""Kinds ``prompt`` and ``setfit``: saved prompting classifiers, loaded for predict and evaluate.

A zero-shot or in-context artifact stores its templates, label words, calibration and
demonstrations, and refers to the model it prompts (a zoo name or a folder) instead of copying
it. A fine-tuned one (pet) stores the model in ``model/``; a SetFit one stores the tuned encoder
in ``encoder/`` (a plain Hugging Face / sentence-transformers folder) and the logistic-regression
head in ``head.safetensors``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.artifacts.base import ARTIFACTS, Scored, write_meta
from lmforge.artifacts.classifier import save_model
from lmforge.config import DataConfig, TaskConfig
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.errors import LmforgeError
from lmforge.prompting.classifiers import (
    Calibrated,
    DecoderClassifier,
    GenerateClassifier,
    HeadClassifier,
    SetFitClassifier,
    SimilarityClassifier,
    load_decoder_scorer,
    resolve_ref,
)
from lmforge.prompting.decoder import load_decoder
from lmforge.prompting.encoders import SentenceEncoder
from lmforge.prompting.icl import Demonstrations
from lmforge.prompting.mlm import Cloze, load_mlm
from lmforge.prompting.templates import Template
from lmforge.prompting.verbalizers import Verbalizer
from lmforge.tasks import get_task


def save_artifact(out: Path, clf: Any, method: str, labels: LabelSpace, data: DataConfig, verbalizer: Verbalizer,
                  base_model: str, **fields: Any) -> Path:
    """Write ``clf`` to ``out`` as an artifact that ``lmforge predict`` and ``lmforge evaluate`` accept.

    A fine-tuned head (the standard baseline) is saved as the ``classifier`` kind it is.
    """
    if isinstance(clf, HeadClassifier):
        return save_model(out, clf.model, clf.tokenizer, TaskConfig(), clf.labels, clf.data, clf.base_model)
    own = clf.save(out)
    kind = "setfit" if method == "setfit" else "prompt"
    words = {"names": verbalizer.names, "words": verbalizer.words, "multi_token": verbalizer.multi_token}
    return write_meta(out, kind, base_model, labels, data, method=method, verbalizer=words, **own, **fields)


@dataclass
class PromptPredictor(Scored):
    """A prompting classifier with predict and evaluate, like :class:`~lmforge.artifacts.classifier.TaskModel`."""

    path: Path
    classifier: Any
    labels: LabelSpace
    data: DataConfig
    kind: str = "prompt"

    def __post_init__(self) -> None:
        self.task = get_task(TaskConfig())

    def scores(self, examples: Examples, targets: np.ndarray | None = None, batch_size: int = 64) -> np.ndarray:
        """Label log-scores (N, C) of cleaned examples."""
        return self.classifier.label_scores(examples.texts, examples.pairs)


def verbalizer_of(meta: dict[str, Any]) -> Verbalizer:
    """The verbalizer saved in ``meta``."""
    words = meta["verbalizer"]
    return Verbalizer(meta["labels"]["names"], words["names"], words["words"], words["multi_token"])


def _demonstrations(path: Path, meta: dict[str, Any], scorer: Any, template: Template, verbalizer: Verbalizer) -> Demonstrations:
    rows = [json.loads(line) for line in (path / "demonstrations.jsonl").read_text(encoding="utf-8").splitlines() if line]
    index = {name: i for i, name in enumerate(verbalizer.labels)}
    pairs = [r["text_pair"] for r in rows] if rows and "text_pair" in rows[0] else None
    icl = meta["icl"]
    return Demonstrations.build(scorer.tokenizer, template, [w[0] for w in verbalizer.words], [r["text"] for r in rows], pairs,
                                np.asarray([index[r["label"]] for r in rows]), icl["separator"], icl["max_tokens"],
                                meta["data"]["max_length"])


def _decoder_classifier(path: Path, meta: dict[str, Any], device: str, verbalizer: Verbalizer) -> DecoderClassifier:
    scorer = load_decoder_scorer(path, meta, device)
    template = Template.parse(meta["template"], "lmforge.json template")
    max_length = meta["data"]["max_length"]
    if "icl" not in meta:
        return DecoderClassifier(scorer, template, verbalizer, max_length, ref=meta["model"])
    icl = meta["icl"]
    encoder = SentenceEncoder(resolve_ref(path, icl["encoder"]), device, max_length) if icl["selection"] == "similar" else None
    demos = _demonstrations(path, meta, scorer, template, verbalizer)
    return DecoderClassifier(scorer, template, verbalizer, max_length, demos, icl["selection"], icl["seed"], encoder,
                             ref=meta["model"], encoder_ref=icl["encoder"])


def _classifier(path: Path, meta: dict[str, Any], device: str) -> Any:
    method, verbalizer = meta["method"], verbalizer_of(meta)
    max_length = meta["data"]["max_length"]
    if method == "similarity":
        return SimilarityClassifier.load(path, meta, device)
    if method in ("cloze", "pet", "pet_decoder"):
        load = load_decoder if method == "pet_decoder" else load_mlm
        model, tokenizer = load(resolve_ref(path, meta["model"]), device)
        return Cloze(model, tokenizer, Template.parse(meta["template"], "lmforge.json template"), verbalizer, max_length,
                     ref=meta["model"])
    if method in ("likelihood", "icl"):
        return _decoder_classifier(path, meta, device, verbalizer)
    if method == "generate":
        return GenerateClassifier(load_decoder_scorer(path, meta, device), Template.parse(meta["instruction"]),
                                  Template.parse(meta["choices"]), meta["names"], max_length, ref=meta["model"])
    raise LmforgeError(f"{path}: unknown prompting method {method!r} in lmforge.json; was it saved by a newer lmforge?")


@ARTIFACTS.register("prompt")
def load_prompt(path: Path, meta: dict[str, Any], device: str) -> PromptPredictor:
    """Loader of the ``prompt`` artifact kind."""
    clf = _classifier(path, meta, device)
    if meta.get("calibration"):
        clf = Calibrated(clf, np.asarray(meta["calibration"]))
    return PromptPredictor(path, clf, LabelSpace.from_dict(meta["labels"]), DataConfig(**meta["data"]))


@ARTIFACTS.register("setfit")
def load_setfit(path: Path, meta: dict[str, Any], device: str) -> PromptPredictor:
    """Loader of the ``setfit`` artifact kind."""
    clf = SetFitClassifier.load(path, meta, device)
    return PromptPredictor(path, clf, LabelSpace.from_dict(meta["labels"]), DataConfig(**meta["data"]))
