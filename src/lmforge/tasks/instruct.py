"""Chat tasks on causal LMs: instruction following, and classification by writing the label.

``instruct``: rows of instruction (``data.text_column``, optional input in
``data.text_pair_column``) and response (``data.label_column``); the model learns to write
the response after the chat-template prompt, with the loss on the response tokens only.
Validation reports the response loss and perplexity; prediction generates responses.

``label_generation``: a classification task where the assistant answers with the label name.
Prediction scores every label name after the prompt and picks the likeliest, so answers are
always valid labels and come with probabilities; the metrics are the classification ones.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from lmforge.config import DataConfig, ModelConfig, TaskConfig
from lmforge.data.dataset import Split
from lmforge.data.examples import Examples
from lmforge.data.labels import LabelSpace
from lmforge.errors import ConfigError
from lmforge.models.build import from_pretrained, model_kwargs
from lmforge.tasks import chat
from lmforge.tasks.base import TASKS
from lmforge.tasks.classification import ClassificationTask

LABEL_PROMPT = "Classify the text as one of: {labels}. Answer with the label only.\n\nText: {text}"
PAIR_LABEL_PROMPT = ("Classify the pair of texts as one of: {labels}. Answer with the label only.\n\n"
                     "Text 1: {text}\nText 2: {pair}")


def causal_lm(source: str, cfg: ModelConfig) -> nn.Module:
    """The checkpoint as a causal LM, with a padding id set for batching."""
    model = from_pretrained(AutoModelForCausalLM, source, **model_kwargs(source, cfg))
    if model.config.pad_token_id is None and model.config.eos_token_id is not None:
        eos = model.config.eos_token_id
        model.config.pad_token_id = eos[0] if isinstance(eos, list) else eos
    return model


def fill(template: str, text: str, pair: str | None, labels: list[str]) -> str:
    """The user message: ``template`` with {text}, {pair} and {labels} filled in."""
    try:
        return template.format(text=text, pair=pair or "", labels=", ".join(labels))
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"task.prompt {template!r} is not a valid template ({exc}); use {{text}}, {{pair}} "
                          "and {labels}, and double other braces") from None


class _ChatTask:
    """Causal-LM model building, batching and loss shared by the chat tasks."""

    auto_model: ClassVar[str] = "AutoModelForCausalLM"

    def __init__(self, cfg: TaskConfig) -> None:
        self.cfg = cfg

    def build_model(self, source: str, labels: LabelSpace, cfg: ModelConfig) -> nn.Module:
        """The pretrained causal LM; its own output layer writes the answers."""
        return causal_lm(source, cfg)

    def collate(self, split: Split, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Sequences with labels on the answer tokens only."""
        return chat.collate(split, index)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        """Mean cross-entropy of the answer tokens (the model shifts labels itself)."""
        outputs = model(**batch)
        return outputs.loss, outputs

    def prompts(self, examples: Examples, template: str, labels: list[str], tokenizer: Any) -> list[str]:
        """Rendered prompt texts of every example."""
        pairs = examples.pairs or [None] * len(examples)
        return [chat.render(tokenizer, fill(template, t, p, labels), self.cfg.system_prompt, None)[0]
                for t, p in zip(examples.texts, pairs, strict=True)]

    def answers(self, texts: list[str], tokenizer: Any) -> list[str]:
        """Answer texts as the chat template ends them."""
        return [chat.render(tokenizer, "x", self.cfg.system_prompt, t)[1] for t in texts]


@TASKS.register("instruct")
class InstructTask(_ChatTask):
    """Instruction following with the loss on response tokens only."""

    name: ClassVar[str] = "instruct"
    default_metric: ClassVar[str] = "loss"

    def label_space(self, train: Examples, data: DataConfig) -> LabelSpace:
        """Responses are free text."""
        return LabelSpace("text")

    def make_split(self, name: str, examples: Examples, targets: np.ndarray | None, tokenizer: Any,
                   data: DataConfig, labels: LabelSpace) -> chat.ChatSplit:
        """Prompt (instruction, and input when given) followed by the response."""
        template = self.cfg.prompt or ("{text}\n\n{pair}" if examples.pairs is not None else "{text}")
        prompts = self.prompts(examples, template, [], tokenizer)
        answers = self.answers([str(r) for r in examples.labels], tokenizer) if examples.labels is not None else None
        return chat.chat_split(name, examples, targets, tokenizer, prompts, answers, data.max_length)

    def infer(self, model: nn.Module, split: Split, batch_size: int) -> np.ndarray:
        """(N, 2): summed response NLL and response tokens per example."""
        return chat.answer_nll(model, split, batch_size)

    def metrics(self, logits: np.ndarray, targets: np.ndarray, labels: LabelSpace) -> dict[str, Any]:
        """Mean NLL per response token (``loss``), perplexity, and the tokens counted."""
        tokens = float(logits[:, 1].sum())
        loss = float(logits[:, 0].sum() / max(tokens, 1.0))
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "response_tokens": int(tokens)}

    def postprocess(self, logits: np.ndarray, labels: LabelSpace, top_k: int = 1) -> list[dict[str, Any]]:
        """Per-example response loss (the answers themselves come from :meth:`generate`)."""
        return [{"response_loss": round(float(n / max(c, 1.0)), 6)} for n, c in logits]

    def generate(self, model: nn.Module, tokenizer: Any, split: Split, batch_size: int) -> list[dict[str, Any]]:
        """Greedy responses, at most ``task.max_new_tokens`` tokens each."""
        return [{"response": r} for r in chat.generate(model, tokenizer, split, batch_size, self.cfg.max_new_tokens)]


@TASKS.register("label_generation")
class LabelGenerationTask(_ChatTask):
    """Single-label classification where the assistant answers with the label name."""

    name: ClassVar[str] = "label_generation"
    default_metric: ClassVar[str] = "accuracy"

    def __init__(self, cfg: TaskConfig) -> None:
        if cfg.multi_label:
            raise ConfigError("task label_generation answers with one label; use task.name=classification for multi-label data")
        super().__init__(cfg)
        self.scores = ClassificationTask(cfg)  # metrics and postprocessing of label scores

    def label_space(self, train: Examples, data: DataConfig) -> LabelSpace:
        """Label names from ``data.labels`` or the training data; they are what the model writes."""
        return self.scores.label_space(train, data)

    def make_split(self, name: str, examples: Examples, targets: np.ndarray | None, tokenizer: Any,
                   data: DataConfig, labels: LabelSpace) -> chat.ChatSplit:
        """Prompt listing the labels, followed by the gold label name when known."""
        default = PAIR_LABEL_PROMPT if examples.pairs is not None else LABEL_PROMPT
        prompts = self.prompts(examples, self.cfg.prompt or default, labels.names, tokenizer)
        candidates = self.answers(labels.names, tokenizer)  # rendered once per label, not once per example
        gold = [candidates[int(t)] for t in targets] if targets is not None else None
        return chat.chat_split(name, examples, targets, tokenizer, prompts, gold, data.max_length, candidates=candidates)

    def infer(self, model: nn.Module, split: Split, batch_size: int) -> np.ndarray:
        """(N, C): log-probability of each label's answer after the prompt."""
        return chat.score_candidates(model, split, batch_size)

    def metrics(self, logits: np.ndarray, targets: np.ndarray, labels: LabelSpace) -> dict[str, Any]:
        """Classification metrics of the label scores."""
        return self.scores.metrics(logits, targets, labels)

    def postprocess(self, logits: np.ndarray, labels: LabelSpace, top_k: int = 1) -> list[dict[str, Any]]:
        """Label, probabilities (normalized over the labels) and the top-k labels."""
        return self.scores.postprocess(logits, labels, top_k)
