"""Kind ``generator``: a causal language model (a pretraining run, a chat-tuned run, or a zoo decoder).

It generates (greedy or sampled, streamed, chat templates), scores text (per-token
log-probabilities) and measures perplexity on a file. A chat-tuned run also keeps its task, so
``predict`` answers instructions the way it was trained to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from lmforge.artifacts.base import ARTIFACTS, ArtifactBase
from lmforge.artifacts.classifier import TaskModel, load_classifier
from lmforge.data.sources import read_texts
from lmforge.devices import inference_precision
from lmforge.generation import GenerateConfig, Generator
from lmforge.models.build import from_pretrained, load_tokenizer


@dataclass
class LanguageModel(ArtifactBase):
    """A causal LM without a task: generate, score, perplexity."""

    path: Path
    model: nn.Module
    tokenizer: Any
    kind: str = "generator"
    capabilities: ClassVar[tuple[str, ...]] = ("generate", "predict", "score", "evaluate")

    def __post_init__(self) -> None:
        self.generator = Generator(self.model, self.tokenizer)

    def generate(self, prompts: str | Sequence[str], options: GenerateConfig | dict[str, Any] | None = None,
                 **overrides: Any) -> str | list[str]:
        """Continue ``prompts`` (see :meth:`lmforge.generation.Generator.generate` for the options and streaming)."""
        return self.generator.generate(prompts, options, **overrides)

    def predict(self, texts: list[str] | str, pairs: list[str] | None = None, top_k: int = 1,
                batch_size: int = 8) -> list[dict[str, Any]]:
        """Greedy continuations of ``texts``: what ``lmforge predict`` shows for a language model."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        outputs = self.generator.generate(texts, batch_size=batch_size) if texts else []
        return [{"text": t, "generated": o} for t, o in zip(texts, outputs, strict=True)]

    def score(self, texts: list[str]) -> list[dict[str, Any]]:
        """Per-token log-probabilities of each text under the model (the first token has none)."""
        rows = []
        device = next(self.model.parameters()).device
        with torch.inference_mode(), inference_precision(device):
            for text in texts:
                ids = self.tokenizer(text, return_tensors="pt")["input_ids"].to(device)  # (1, T)
                logp = torch.log_softmax(self.model(input_ids=ids).logits[0, :-1].float(), dim=-1)  # (T-1, V)
                picked = logp.gather(1, ids[0, 1:, None])[:, 0].cpu().numpy()
                tokens = self.tokenizer.convert_ids_to_tokens(ids[0].tolist())
                rows.append({"text": text, "tokens": tokens, "logprobs": [None] + [round(float(x), 4) for x in picked]})
        return rows

    def evaluate(self, source: str | Path, text_column: str | None = None, label_column: str | None = None,
                 batch_size: int = 8, **data_overrides: Any) -> dict[str, Any]:
        """Mean negative log-likelihood per token and perplexity of the texts of a file."""
        texts, _ = read_texts(source, text_column)
        total, count = 0.0, 0
        for row in self.score(texts):
            values = [v for v in row["logprobs"] if v is not None]
            total, count = total - float(np.sum(values)), count + len(values)
        loss = total / max(count, 1)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": count, "num_examples": len(texts)}


@ARTIFACTS.register("generator")
def load_generator(path: Path, meta: dict[str, Any], device: str) -> TaskModel | LanguageModel:
    """Loader of the ``generator`` kind: a chat-tuned run keeps its task; a pretrained one is a plain language model."""
    if "task" in meta:
        return load_classifier(path, meta, device)
    model = from_pretrained(AutoModelForCausalLM, str(path)).to(device).eval()
    return LanguageModel(path, model, load_tokenizer(str(path)))

