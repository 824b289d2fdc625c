"""The prompting methods by name: how each builds a classifier from k examples (or none).

Zero-shot: ``cloze`` (masked LM), ``similarity`` (sentence encoder), ``likelihood`` (decoder),
``generate`` (instruct model's chat, constrained to the labels). Few-shot: ``icl`` (in-context
demonstrations), ``pet`` (prompt-based fine-tuning of the MLM), ``setfit`` (contrastive encoder
tuning + logistic regression), ``head`` (standard fine-tuning with a new head, the baseline), and ``pet_decoder`` (prompt-based
fine-tuning of a decoder, read at the label word's position).
"""

from __future__ import annotations

import copy
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.models.build import resolve
from lmforge.prompting.classifiers import (
    Calibrated,
    DecoderClassifier,
    GenerateClassifier,
    SimilarityClassifier,
    model_ref,
)
from lmforge.prompting.config import PromptConfig
from lmforge.prompting.decoder import CausalScorer, has_chat_template, load_decoder
from lmforge.prompting.encoders import SentenceEncoder
from lmforge.prompting.icl import Demonstrations
from lmforge.prompting.mlm import Cloze, load_mlm
from lmforge.prompting.templates import Template, TemplateSet, chat_wrapped
from lmforge.prompting.training import train_head, train_pet, train_setfit
from lmforge.prompting.verbalizers import CONTENT_FREE, Verbalizer, content_free_probs
from lmforge.registry import Registry

log = logging.getLogger("lmforge.prompting")

# Each method's template and the slots it needs, with an example for the error message.
NEEDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "cloze": ("cloze", ("text", "mask"), "{text} It was {mask}."),
    "pet": ("cloze", ("text", "mask"), "{text} It was {mask}."),
    "similarity": ("description", ("label",), "It was {label}."),
    "likelihood": ("prompt", ("text", "label"), "Review: {text}\nSentiment: {label}"),
    "icl": ("prompt", ("text", "label"), "Review: {text}\nSentiment: {label}"),
    "pet_decoder": ("prompt", ("text", "label"), "Review: {text}\nSentiment: {label}"),
    "generate": ("instruction", ("text",), "What is the sentiment of this review?\n\n{text}"),
}


@dataclass
class Context:
    """What every method may use; models are loaded once and shared across seeds and methods.

    Attributes:
        cfg: The prompt config.
        labels: The label space.
        verbalizer: Label words and names.
        templates: The templates in force (built-in, with the user's overrides).
        device: Where models run.
        work_dir: Scratch space for training runs.
    """

    cfg: PromptConfig
    labels: LabelSpace
    verbalizer: Verbalizer
    templates: TemplateSet
    device: str
    work_dir: Path
    _loaded: dict[str, Any] = field(default_factory=dict)

    def source(self, role: str) -> str:
        """The loadable location of the ``encoder``, ``mlm`` or ``decoder`` model."""
        return resolve(getattr(self.cfg.models, role))

    def ref(self, role: str) -> str:
        """How an artifact refers to the ``role`` model."""
        return model_ref(getattr(self.cfg.models, role), self.source(role))

    def encoder(self) -> SentenceEncoder:
        """The shared sentence encoder (its embedding cache spans methods and seeds)."""
        if "encoder" not in self._loaded:
            self._loaded["encoder"] = SentenceEncoder(self.source("encoder"), self.device, self.cfg.data.max_length)
        return self._loaded["encoder"]

    def decoder(self) -> CausalScorer:
        """The shared decoder."""
        if "decoder" not in self._loaded:
            self._loaded["decoder"] = CausalScorer(*load_decoder(self.source("decoder"), self.device))
        return self._loaded["decoder"]

    def mlm(self) -> tuple[Any, Any]:
        """The masked LM as loaded (callers that train it take a copy)."""
        if "mlm" not in self._loaded:
            self._loaded["mlm"] = load_mlm(self.source("mlm"), self.device)
        return self._loaded["mlm"]

    def template(self, method: str) -> Template:
        """The parsed template ``method`` uses, checked for the slots it needs."""
        name, slots, example = NEEDS[method]
        template = self.templates.parsed(name).require(slots, method, example)
        return template.require_last("label", method) if name == "prompt" else template

    def decoder_prompt(self, method: str) -> Template:
        """The prompt template of ``method``, as a chat in the decoder's chat template when ``prompt.chat`` says so."""
        template, mode, tokenizer = self.template(method), self.cfg.prompt.chat, self.decoder().tokenizer
        if mode is False or (mode == "auto" and not has_chat_template(tokenizer)):
            return template
        return chat_wrapped(template, tokenizer, self.templates.system)  # raises for true without a chat template

    def choices(self) -> Template:
        """The line that offers ``generate`` the label names, checked for its ``{label}`` slot."""
        return self.templates.parsed("choices").require(("label",), "generate", "Answer with one of: {label}.")


@dataclass(frozen=True)
class Method:
    """A prompting method.

    Attributes:
        name: Registry name.
        few_shot: Needs k > 0 labeled examples per class (else zero-shot only).
        decoder: Runs a decoder per query, so it is evaluated on the seeded subset.
        calibratable: Produces LM probabilities that contextual calibration can correct.
        role: The model it starts from: ``encoder``, ``mlm`` or ``decoder`` (see ``models``).
        build: ``(ctx, examples, targets, seed) -> classifier``; examples are None for zero-shot.
    """

    name: str
    few_shot: bool
    decoder: bool
    calibratable: bool
    role: str
    build: Callable[[Context, Examples | None, np.ndarray | None, int], Any]


METHODS: Registry[Method] = Registry("prompting method")


def calibrated(ctx: Context, clf: Any) -> Calibrated:
    """``clf`` corrected by its label distribution on the content-free inputs."""
    texts = list(CONTENT_FREE)
    pairs = list(CONTENT_FREE) if ctx.cfg.data.text_pair_column else None
    p_cf = content_free_probs(clf.label_scores(texts, pairs))
    shown = ", ".join(f"{n}={p:.3f}" for n, p in zip(ctx.labels.names[:10], p_cf[:10], strict=True))
    log.info("calibration: content-free label distribution %s", shown)
    return Calibrated(clf, p_cf)


def _similarity(ctx: Context, examples: Examples | None, targets: np.ndarray | None, seed: int) -> Any:
    template = ctx.template("similarity")
    descriptions = [[template.render(label=w) for w in words] for words in ctx.verbalizer.words]
    return SimilarityClassifier(ctx.encoder(), descriptions, ctx.ref("encoder"))


def _cloze(ctx: Context, examples: Examples | None, targets: np.ndarray | None, seed: int) -> Any:
    model, tokenizer = ctx.mlm()
    return Cloze(model, tokenizer, ctx.template("cloze"), ctx.verbalizer, ctx.cfg.data.max_length, ref=ctx.ref("mlm"))


def _likelihood(ctx: Context, examples: Examples | None, targets: np.ndarray | None, seed: int) -> Any:
    return DecoderClassifier(ctx.decoder(), ctx.decoder_prompt("likelihood"), ctx.verbalizer, ctx.cfg.data.max_length,
                             ref=ctx.ref("decoder"))


def _generate(ctx: Context, examples: Examples | None, targets: np.ndarray | None, seed: int) -> Any:
    return GenerateClassifier(ctx.decoder(), ctx.template("generate"), ctx.choices(), ctx.verbalizer.names,
                              ctx.cfg.data.max_length, ref=ctx.ref("decoder"))


def _icl(ctx: Context, examples: Examples | None, targets: np.ndarray | None, seed: int) -> Any:
    assert examples is not None and targets is not None
    template, scorer, icl = ctx.template("icl"), ctx.decoder(), ctx.cfg.icl
    first_words = [words[0] for words in ctx.verbalizer.words]
    demos = Demonstrations.build(scorer.tokenizer, template, first_words, examples.texts, examples.pairs, targets,
                                 icl.separator, icl.max_tokens, ctx.cfg.data.max_length)
    similar = icl.selection == "similar"
    return DecoderClassifier(scorer, template, ctx.verbalizer, ctx.cfg.data.max_length, demos, icl.selection, seed,
                             ctx.encoder() if similar else None, ref=ctx.ref("decoder"),
                             encoder_ref=ctx.ref("encoder") if similar else None)


def _pet(ctx: Context, examples: Examples | None, targets: np.ndarray | None, seed: int) -> Any:
    assert examples is not None and targets is not None
    model, tokenizer = ctx.mlm()
    cloze = Cloze(copy.deepcopy(model), tokenizer, ctx.template("pet"), ctx.verbalizer, ctx.cfg.data.max_length, ref="model")
    return train_pet(cloze, examples, targets, ctx.cfg.pet.train_config(seed), _scratch(ctx, "pet", seed))


def _pet_decoder(ctx: Context, examples: Examples | None, targets: np.ndarray | None, seed: int) -> Any:
    assert examples is not None and targets is not None
    scorer = ctx.decoder()
    model = copy.deepcopy(scorer.model)
    cloze = Cloze(model, scorer.tokenizer, ctx.decoder_prompt("pet_decoder"), ctx.verbalizer, ctx.cfg.data.max_length, ref="model")
    return train_pet(cloze, examples, targets, ctx.cfg.pet_decoder.train_config(seed), _scratch(ctx, "pet_decoder", seed))


def _setfit(ctx: Context, examples: Examples | None, targets: np.ndarray | None, seed: int) -> Any:
    assert examples is not None and targets is not None
    encoder = SentenceEncoder(ctx.source("encoder"), ctx.device, ctx.cfg.data.max_length)
    return train_setfit(encoder, examples, targets, len(ctx.labels.names), ctx.cfg.setfit, seed, _scratch(ctx, "setfit", seed))


def _head(ctx: Context, examples: Examples | None, targets: np.ndarray | None, seed: int) -> Any:
    assert examples is not None and targets is not None
    return train_head(ctx.source("encoder"), ctx.cfg.models.encoder, examples, targets, ctx.labels, ctx.cfg.data,
                      ctx.cfg.head.train_config(seed), _scratch(ctx, "head", seed), ctx.device)


def _scratch(ctx: Context, name: str, seed: int) -> Path:
    path = ctx.work_dir / f"{name}-seed{seed}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


for _method in (
    Method("cloze", few_shot=False, decoder=False, calibratable=True, role="mlm", build=_cloze),
    Method("similarity", few_shot=False, decoder=False, calibratable=True, role="encoder", build=_similarity),
    Method("likelihood", few_shot=False, decoder=True, calibratable=True, role="decoder", build=_likelihood),
    Method("generate", few_shot=False, decoder=True, calibratable=True, role="decoder", build=_generate),
    Method("icl", few_shot=True, decoder=True, calibratable=True, role="decoder", build=_icl),
    Method("pet", few_shot=True, decoder=False, calibratable=True, role="mlm", build=_pet),
    Method("pet_decoder", few_shot=True, decoder=True, calibratable=True, role="decoder", build=_pet_decoder),
    Method("setfit", few_shot=True, decoder=False, calibratable=False, role="encoder", build=_setfit),
    Method("head", few_shot=True, decoder=False, calibratable=False, role="encoder", build=_head),
):
    METHODS.add(_method.name, _method)


def build_variants(method: Method, ctx: Context, examples: Examples | None, targets: np.ndarray | None,
                   seed: int) -> list[tuple[str, Any]]:
    """``(name, classifier)`` of ``method``: as built, calibrated (``prompt.calibrate: true``), or both.

    With ``both``, the calibrated one is named ``<method>+cal``.
    """
    clf = method.build(ctx, examples, targets, seed)
    mode = ctx.cfg.prompt.calibrate
    if not method.calibratable or mode is False:
        return [(method.name, clf)]
    fixed = calibrated(ctx, clf)
    return [(method.name, fixed)] if mode is True else [(method.name, clf), (f"{method.name}+cal", fixed)]


def check_templates(ctx: Context, methods: list[str]) -> None:
    """Reject a template that lacks a slot a configured method needs, before any model is loaded."""
    for name in methods:
        if name in NEEDS:
            ctx.template(name)
    if "generate" in methods:
        ctx.choices()
