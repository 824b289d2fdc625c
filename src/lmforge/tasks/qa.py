"""Extractive question answering: the answer is a span of the context, found by start and end scores per token.

Files are SQuAD JSON (v1.1, v2.0) or JSONL (see :mod:`lmforge.data.squad`). A context longer than one window
(``data.max_length`` tokens with the question) is cut into windows that overlap by ``task.stride`` tokens,
and the best span across the windows wins; with ``task.null_answers`` (SQuAD 2.0) "no answer" may win.
Contexts are used as given (not normalized), so answers are exact substrings with their offsets.
Scores are exact match and F1: SQuAD's normalized token F1 for English, CMRC 2018's character F1 for Chinese.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForQuestionAnswering

from lmforge.config import DataConfig, ModelConfig, TaskConfig
from lmforge.data.batching import eval_batches
from lmforge.data.dataset import Split
from lmforge.data.labels import LabelSpace
from lmforge.data.normalize import make_normalizer
from lmforge.data.squad import QAExamples, QAFeatures, best_answers, qa_features, read_squad, split_by_article
from lmforge.data.tokenize import Encoded, Ragged
from lmforge.errors import ConfigError, DataError, LmforgeError
from lmforge.evaluation.span_baselines import lexical_answers
from lmforge.evaluation.spans import qa_metrics
from lmforge.models.build import from_pretrained, model_kwargs
from lmforge.tasks.base import TASKS
from lmforge.tasks.token import grouped_splits, own_positions

log = logging.getLogger("lmforge.data")


@dataclass
class QASplit(Split):
    """Questions and their windows: ``encoded`` and :attr:`lengths` are per window, ``examples`` per question."""

    features: QAFeatures = field(default_factory=lambda: QAFeatures([], [], None, [], [], []))


@TASKS.register("qa")
class QATask:
    """Extractive QA: start and end logits per token, the best span across a context's windows."""

    name: ClassVar[str] = "qa"
    default_metric: ClassVar[str] = "f1"
    auto_model: ClassVar[str] = "AutoModelForQuestionAnswering"

    def __init__(self, cfg: TaskConfig) -> None:
        self.cfg = cfg

    def read(self, source: str, data: DataConfig) -> QAExamples:
        """A SQuAD JSON or JSONL file read with the data settings."""
        fmt = {"auto": "auto", "squad": "squad", "jsonl": "jsonl"}.get(data.format)
        if fmt is None:
            raise ConfigError(f"data.format={data.format} is not a QA format; use auto, squad or jsonl for qa")
        return read_squad(source, fmt, data.encoding, data.on_bad_rows)

    def label_space(self, train: QAExamples, data: DataConfig) -> LabelSpace:
        """Answers are spans: no label names."""
        return LabelSpace("span")

    def labeled_splits(self, data: DataConfig) -> tuple[dict[str, tuple[QAExamples, np.ndarray]], LabelSpace]:
        """Train/validation(/test) questions; validation held out by article when no file is given."""
        if data.augment.ops:
            raise ConfigError("data.augment is not supported for qa (it would move the answers); remove data.augment.ops")
        splits = grouped_splits(data, lambda s: self.read(s, data), split_by_article)
        for name, examples in splits.items():
            self._check_answers(examples, name)
        log.info("data: %s", ", ".join(f"{name} {len(ex)} questions" for name, ex in splits.items()))
        return {name: (ex, np.arange(len(ex), dtype=np.int64)) for name, ex in splits.items()}, LabelSpace("span")

    def _check_answers(self, examples: QAExamples, name: str) -> None:
        if examples.answers is None:
            raise DataError(f"{examples.path} has no answers; the {name} data of a qa run needs 'answers' for every question")
        unanswerable = sum(1 for refs in examples.answers if not refs)
        if unanswerable and not self.cfg.null_answers:
            log.warning("%s: %d questions have no answer (SQuAD 2.0); set task.null_answers=true so the model may answer "
                        "with nothing", examples.path, unanswerable)

    def read_labeled(self, source: str, data: DataConfig, labels: LabelSpace) -> tuple[QAExamples, np.ndarray]:
        """A file with answers, for evaluation."""
        examples = self.read(source, data)
        self._check_answers(examples, "evaluation")
        return examples, np.arange(len(examples), dtype=np.int64)

    def read_inputs(self, source: str, data: DataConfig) -> QAExamples:
        """Questions with their contexts from a SQuAD JSON or JSONL file (answers, if any, are ignored)."""
        return self.read(source, data)

    def inputs(self, texts: Sequence[str], pairs: Sequence[str] | None, data: DataConfig) -> QAExamples:
        """Questions (``texts``) with their contexts (``pairs``)."""
        if pairs is None or len(pairs) != len(texts):
            raise LmforgeError("question answering needs a context for every question (pass the contexts as pairs)")
        empty = next((i for i, (q, c) in enumerate(zip(texts, pairs)) if not q.strip() or not c.strip()), None)
        if empty is not None:
            raise LmforgeError(f"question {empty + 1} or its context is empty; give both")
        n = len(texts)
        return QAExamples(Path("<input>"), [str(i + 1) for i in range(n)], [""] * n, list(pairs), list(texts), None,
                          list(range(1, n + 1)))

    def build_model(self, source: str, labels: LabelSpace, cfg: ModelConfig) -> nn.Module:
        """The checkpoint with a span head (start and end logits per token)."""
        model = from_pretrained(AutoModelForQuestionAnswering, source, **model_kwargs(source, cfg))
        if model.config.pad_token_id is None and getattr(model.config, "eos_token_id", None) is not None:
            eos = model.config.eos_token_id
            model.config.pad_token_id = eos[0] if isinstance(eos, list) else eos
        return model

    def make_split(self, name: str, examples: QAExamples, targets: np.ndarray | None, tokenizer: Any,
                   data: DataConfig, labels: LabelSpace) -> QASplit:
        """Windows of (question, context); training windows carry the answer's first and last token."""
        normalize = make_normalizer(data.normalize, data.lowercase, data.fullwidth_to_halfwidth)
        questions = [normalize(q) or q for q in examples.questions]
        answers = examples.first_answers() if targets is not None and examples.answers is not None else None
        try:
            features = qa_features(tokenizer, questions, examples.contexts, data.max_length, self.cfg.stride, answers)
        except LmforgeError as exc:
            raise ConfigError(f"{examples.path}: {exc} (data.max_length, task.stride)") from None
        types = Ragged.from_lists(features.token_type_ids) if features.token_type_ids is not None else None
        encoded = Encoded(Ragged.from_lists(features.input_ids), types)
        log.info("%s: %d questions in %d windows of up to %d tokens", name, len(examples), len(features), data.max_length)
        return QASplit(name, examples, encoded, targets, int(tokenizer.pad_token_id), features)

    def collate(self, split: QASplit, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Padded windows plus ``start_positions`` and ``end_positions`` when training."""
        batch = split.inputs(index)
        if split.features.start_positions is not None:
            batch["start_positions"] = torch.tensor([split.features.start_positions[i] for i in index])
            batch["end_positions"] = torch.tensor([split.features.end_positions[i] for i in index])
        return batch

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        """Mean cross-entropy of the start and end positions (as transformers computes it, on the input's own positions)."""
        outputs = model(**{k: v for k, v in batch.items() if k not in ("start_positions", "end_positions")})
        length = batch["input_ids"].shape[1]
        first, last = own_positions(outputs.start_logits, length).float(), own_positions(outputs.end_logits, length).float()  # (B, T)
        loss = (F.cross_entropy(first, batch["start_positions"]) + F.cross_entropy(last, batch["end_positions"])) / 2
        return loss, outputs

    def infer(self, model: nn.Module, split: QASplit, batch_size: int) -> np.ndarray:
        """(N, 3): start and end character of each question's best answer in its context (-1 for none) and its score."""
        device = next(model.parameters()).device
        starts: list[np.ndarray] = [np.zeros(0)] * len(split.features)
        ends: list[np.ndarray] = [np.zeros(0)] * len(split.features)
        with torch.inference_mode():
            for index in eval_batches(split.lengths, batch_size):
                batch = {k: v.to(device) for k, v in split.inputs(index).items()}
                outputs, length = model(**batch), batch["input_ids"].shape[1]
                first = own_positions(outputs.start_logits, length).float().cpu().numpy()  # (B, T)
                last = own_positions(outputs.end_logits, length).float().cpu().numpy()
                for j, k in enumerate(index):
                    starts[k], ends[k] = first[j], last[j]
        found = best_answers(starts, ends, split.features, split.examples.contexts, self.cfg.max_answer_length,
                             self.cfg.n_best, self.cfg.null_answers)
        return np.asarray([[a["start"], a["end"], np.nan if a["score"] is None else a["score"]] for a in found],
                          dtype=np.float64).reshape(-1, 3)

    @staticmethod
    def answer_texts(outputs: np.ndarray, contexts: Sequence[str]) -> list[str]:
        """The answer text of each row of :meth:`infer`'s output ("" for no answer)."""
        return [c[int(s):int(e)] if s >= 0 else "" for (s, e, _), c in zip(outputs, contexts)]

    def split_metrics(self, outputs: np.ndarray, split: QASplit, labels: LabelSpace) -> dict[str, Any]:
        """Exact match and F1 against every reference answer (SQuAD or CMRC convention), and the share answered."""
        examples: QAExamples = split.examples
        if examples.answers is None:
            raise DataError(f"{examples.path} has no answers to score against")
        predicted = self.answer_texts(outputs, examples.contexts)
        result = qa_metrics(predicted, [[a.text for a in refs] for refs in examples.answers], self.cfg.language)
        return {**result, "answered": sum(1 for p in predicted if p) / max(len(predicted), 1)}

    def metrics(self, outputs: np.ndarray, targets: np.ndarray, labels: LabelSpace) -> dict[str, Any]:
        """QA metrics need the contexts and references: see :meth:`split_metrics`."""
        raise LmforgeError("qa metrics are computed from the split (contexts and references); call split_metrics")

    def postprocess(self, outputs: np.ndarray, labels: LabelSpace, top_k: int = 1) -> list[dict[str, Any]]:
        """Answer offsets and scores, without text (:meth:`predictions` adds the answers)."""
        return [{"start": int(s), "end": int(e), "score": None if np.isnan(v) else round(float(v), 6)} for s, e, v in outputs]

    def predictions(self, outputs: np.ndarray, split: QASplit, labels: LabelSpace, top_k: int = 1) -> list[dict[str, Any]]:
        """Per question: its id, the question, the answer with its character offsets in the context, and its score."""
        examples: QAExamples = split.examples
        texts = self.answer_texts(outputs, examples.contexts)
        results = []
        for i, (item, text) in enumerate(zip(self.postprocess(outputs, labels), texts)):
            row = {"id": examples.ids[i], "question": examples.questions[i], "answer": text, **item}
            if examples.answers is not None:
                row["gold"] = [a.text for a in examples.answers[i]]
            results.append(row)
        return results

    def baseline(self, splits: dict[str, QASplit], labels: LabelSpace) -> dict[str, dict[str, Any]]:
        """The sliding-window lexical-overlap answer picker, scored on validation and test."""
        out = {}
        for name in ("validation", "test"):
            if name in splits and splits[name].examples.answers is not None:
                held: QAExamples = splits[name].examples
                picked = lexical_answers(held.questions, held.contexts)
                out[f"{name} (lexical baseline)"] = qa_metrics([p["text"] for p in picked],
                                                               [[a.text for a in refs] for refs in held.answers], self.cfg.language)
        return out
