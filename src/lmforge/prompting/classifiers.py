"""The classifiers the prompting methods produce: each maps texts to label log-scores (N, C).

Every classifier has ``label_scores(texts, pairs)`` and ``save(out)``, which writes its files and
returns the method-specific fields of ``lmforge.json``; ``load(path, meta, device)`` rebuilds it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from lmforge import zoo
from lmforge.config import DataConfig
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.data.pipeline import to_split
from lmforge.models.build import resolve
from lmforge.prompting.decoder import CausalScorer, Prefix, chat_prompt, load_decoder, word_logprobs
from lmforge.prompting.encoders import SentenceEncoder
from lmforge.prompting.icl import Demonstrations
from lmforge.prompting.setfit import LinearHead
from lmforge.prompting.templates import Template, fit_slots
from lmforge.prompting.verbalizers import Verbalizer, calibrate
from lmforge.tasks.base import infer_logits

SIMILARITY_SCALE = 20.0  # cosine -> logit scale, as sentence-transformers' contrastive losses use


class Classifier(Protocol):
    """What every method yields."""

    def label_scores(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        """Label log-scores (N, C); their softmax is the predicted distribution."""

    def save(self, out: Path) -> dict[str, Any] | None:
        """Write the classifier's files to ``out``; return its ``lmforge.json`` fields (None: it wrote a complete artifact)."""


def model_ref(name: str, source: str) -> str:
    """How a saved artifact names a model it does not copy: the zoo name, or an absolute folder."""
    if name in zoo.ZOO or not Path(source).exists():
        return name if name in zoo.ZOO else source
    return str(Path(source).resolve())


def resolve_ref(path: Path, ref: str) -> str:
    """A model reference of ``lmforge.json``: relative to the artifact folder when it is inside it."""
    inside = path / ref
    return str(inside) if not Path(ref).is_absolute() and inside.is_dir() else resolve(ref)


class SimilarityClassifier:
    """Zero-shot: cosine between a text's embedding and each label's description embedding, times a scale."""

    def __init__(self, encoder: SentenceEncoder, descriptions: list[list[str]], ref: str) -> None:
        self.encoder, self.descriptions, self.ref = encoder, descriptions, ref
        vecs = [encoder.embed(d, desc="embedding labels").mean(0) for d in descriptions]
        self.label_vecs = np.stack([v / max(np.linalg.norm(v), 1e-12) for v in vecs])  # (C, D)

    def label_scores(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        return SIMILARITY_SCALE * self.encoder.embed(texts, pairs) @ self.label_vecs.T

    def save(self, out: Path) -> dict[str, Any]:
        return {"model": self.ref, "descriptions": self.descriptions}

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any], device: str) -> SimilarityClassifier:
        source = resolve_ref(path, meta["model"])
        return cls(SentenceEncoder(source, device, meta["data"]["max_length"]), meta["descriptions"], meta["model"])


class DecoderClassifier:
    """A decoder's log-probability of each label's words after the prompt, optionally after demonstrations.

    Args:
        scorer: The decoder.
        template: Prompt ending in ``{label}``.
        verbalizer: Label words; demonstrations show each label's first word.
        max_length: Longest query prompt in tokens.
        demos: In-context demonstrations, or None for zero-shot.
        selection: ``random`` (one shared, cached set) or ``similar`` (per query; needs ``encoder``).
        seed: Seed of the random choice and order of demonstrations.
        encoder: Sentence encoder for ``similar`` selection.
        ref: How the saved artifact names the decoder.
        encoder_ref: How it names the encoder.
    """

    def __init__(self, scorer: CausalScorer, template: Template, verbalizer: Verbalizer, max_length: int,
                 demos: Demonstrations | None = None, selection: str = "random", seed: int = 0,
                 encoder: SentenceEncoder | None = None, ref: str = "", encoder_ref: str | None = None) -> None:
        self.scorer, self.template, self.verbalizer, self.max_length = scorer, template, verbalizer, max_length
        self.ref, self.encoder_ref = ref, encoder_ref
        self.demos, self.selection, self.seed, self.encoder = demos, selection, seed, encoder
        self.leading = template.prefix("label")[-1:] == " "
        self.word_ids = verbalizer.token_ids(scorer.tokenizer, self.leading)
        self.shared: Prefix | None = None
        if demos is not None and selection == "random":
            self.shared = scorer.prefix(scorer.encode(demos.text(demos.shared(seed)), first=True))

    def query(self, text: str, pair: str | None) -> str:
        """The prompt of one text up to the label word (a space before the word goes with the word)."""
        values = fit_slots(self.scorer.tokenizer, self.template, text, pair, self.max_length, label="")
        prompt = self.template.prefix("label", **values)
        return prompt[:-1] if self.leading else prompt

    def contexts(self, texts: list[str], pairs: list[str] | None) -> list[list[int]]:
        """Token ids of each query's context (after the shared prefix, when there is one)."""
        queries = [self.query(t, pairs[i] if pairs else None) for i, t in enumerate(texts)]
        if self.demos is None:
            return [self.scorer.encode(q, first=True) for q in queries]
        if self.shared is not None:
            return [self.scorer.encode(q) for q in queries]
        assert self.encoder is not None
        chosen = self.demos.nearest(self.encoder.embed(texts, pairs), self.encoder.embed(self.demos.texts, self.demos.pairs))
        return [self.scorer.encode(self.demos.text(idx) + q, first=True) for idx, q in zip(chosen, queries, strict=True)]

    def label_scores(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        contexts = self.contexts(texts, pairs)
        words = word_logprobs(self.scorer, self.shared, contexts, self.word_ids, self.verbalizer.multi_token)
        return self.verbalizer.label_scores(torch.from_numpy(words)).numpy()

    def save(self, out: Path) -> dict[str, Any]:
        meta: dict[str, Any] = {"model": self.ref, "template": self.template.source}
        if self.demos is not None:
            out.mkdir(parents=True, exist_ok=True)
            rows = self.demos.records(self.verbalizer.labels)
            (out / "demonstrations.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                      encoding="utf-8")
            meta["icl"] = {"selection": self.selection, "seed": self.seed, "separator": self.demos.separator,
                           "max_tokens": self.demos.max_tokens, "encoder": self.encoder_ref}
        return meta


class GenerateClassifier:
    """Constrained generation with an instruct model's chat template.

    The user turn is the instruction plus a line offering the label names; the answer is
    constrained to those names (each as written or capitalized). The probability of generating
    each allowed answer is computed exactly, and the most probable label wins: constrained
    decoding over the label set, with no beam to miss the best answer.
    """

    def __init__(self, scorer: CausalScorer, instruction: Template, choices: Template, names: list[str], max_length: int,
                 ref: str = "") -> None:
        self.scorer, self.instruction, self.choices, self.names, self.max_length = scorer, instruction, choices, names, max_length
        self.ref = ref
        self.line = choices.render(label=", ".join(names))
        self.variants = [list(dict.fromkeys([n, n[:1].upper() + n[1:]])) for n in names]

    def label_scores(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        tok = self.scorer.tokenizer
        contexts = []
        for i, text in enumerate(texts):
            values = fit_slots(tok, self.instruction, text, pairs[i] if pairs else None, self.max_length)
            prompt = chat_prompt(tok, self.instruction.render(**values) + "\n" + self.line)
            contexts.append(self.scorer.encode(prompt))
        flat = [v for vs in self.variants for v in vs]
        ids = [self.scorer.encode(v) for v in flat]
        seq = word_logprobs(self.scorer, None, contexts, ids, "sum")  # (N, variants)
        owner = np.asarray([c for c, vs in enumerate(self.variants) for _ in vs])
        return np.stack([np.logaddexp.reduce(seq[:, owner == c], axis=1) for c in range(len(self.names))], axis=1)

    def save(self, out: Path) -> dict[str, Any]:
        return {"model": self.ref, "instruction": self.instruction.source, "choices": self.choices.source, "names": self.names}


class Calibrated:
    """A classifier whose label distribution is divided by its content-free one (see :func:`calibrate`)."""

    def __init__(self, inner: Any, p_cf: np.ndarray) -> None:
        self.inner, self.p_cf = inner, np.asarray(p_cf, dtype=np.float64)

    def label_scores(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        return calibrate(self.inner.label_scores(texts, pairs), self.p_cf)

    def save(self, out: Path) -> dict[str, Any] | None:
        meta = self.inner.save(out)
        return None if meta is None else {**meta, "calibration": [round(float(p), 8) for p in self.p_cf]}


def load_decoder_scorer(path: Path, meta: dict[str, Any], device: str) -> CausalScorer:
    """The decoder an artifact refers to."""
    model, tokenizer = load_decoder(resolve_ref(path, meta["model"]), device)
    return CausalScorer(model, tokenizer)


class SetFitClassifier:
    """A (contrastively tuned) sentence encoder with a logistic-regression head."""

    def __init__(self, encoder: SentenceEncoder, head: LinearHead) -> None:
        self.encoder, self.head = encoder, head

    def label_scores(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        return self.head.logits(self.encoder.embed(texts, pairs))

    def save(self, out: Path) -> dict[str, Any]:
        self.encoder.save(out / "encoder")
        self.head.save(out / "head.safetensors")
        return {"model": "encoder", "head": "head.safetensors"}

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any], device: str) -> SetFitClassifier:
        encoder = SentenceEncoder(str(path / meta["model"]), device, meta["data"]["max_length"])
        return cls(encoder, LinearHead.load(path / meta["head"]))


class HeadClassifier:
    """A fine-tuned sequence-classification model (the standard baseline); saved as a ``classifier`` artifact."""

    def __init__(self, model: Any, tokenizer: Any, labels: LabelSpace, data: DataConfig, base_model: str) -> None:
        self.model, self.tokenizer, self.labels, self.data, self.base_model = model, tokenizer, labels, data, base_model

    def label_scores(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        examples = Examples(Path("<input>"), texts, pairs, None, list(range(1, len(texts) + 1)))
        split = to_split("eval", examples, None, self.tokenizer, self.data, None)
        self.model.eval()
        logits = infer_logits(self.model, split, 64)
        return torch.from_numpy(logits).double().log_softmax(-1).numpy()
