"""Kind ``encoder``: a pretrained encoder (a masked-LM pretraining run, or a zoo sentence encoder).

It has no task head, so it does not classify; it embeds texts (mean or CLS pooling, as the
checkpoint's sentence-transformers config says, unit length) and, when it kept its masked-LM
head, fills in masked words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModel, AutoModelForMaskedLM

from lmforge.artifacts.base import ARTIFACTS, ArtifactBase
from lmforge.data.batching import eval_batches
from lmforge.devices import inference_precision
from lmforge.errors import LmforgeError
from lmforge.models.build import from_pretrained, load_tokenizer, quiet_transformers
from lmforge.prompting.encoders import pool, pooling_mode

DEFAULT_MAX_LENGTH = 256


@dataclass
class EncoderModel(ArtifactBase):
    """A pretrained encoder: embeddings, and fill-mask when its masked-LM head is there."""

    path: Path
    encoder: nn.Module
    tokenizer: Any
    mlm: nn.Module | None = None
    max_length: int = DEFAULT_MAX_LENGTH
    kind: str = "encoder"
    mode: str = field(default="mean")

    @property
    def capabilities(self) -> tuple[str, ...]:  # type: ignore[override]
        """Embed; fill-mask and predict (of masked words) when the masked-LM head was kept."""
        return ("embed",) + (("fill_mask", "predict") if self.mlm is not None else ())

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Unit vectors (N, D) of ``texts`` in input order, length-sorted batches inside."""
        if not texts:
            return np.zeros((0, int(self.encoder.config.hidden_size)), dtype=np.float32)
        device = next(self.encoder.parameters()).device
        out = np.zeros((len(texts), int(self.encoder.config.hidden_size)), dtype=np.float32)
        batches = eval_batches(np.asarray([len(t) for t in texts]), batch_size)
        with torch.inference_mode():
            for index in tqdm(batches, desc="embedding", unit="batch", disable=len(batches) < 10, leave=False):
                enc = self.tokenizer([texts[i] for i in index], padding=True, truncation=True, max_length=self.max_length,
                                     return_tensors="pt").to(device)
                with inference_precision(device):
                    hidden = self.encoder(**enc).last_hidden_state  # (B, T, D)
                out[index] = pool(hidden, enc["attention_mask"], self.mode).float().cpu().numpy()
        return out

    def fill_mask(self, texts: list[str] | str, top_k: int = 5) -> list[dict[str, Any]]:
        """The ``top_k`` likeliest words at each mask token of each text, with probabilities."""
        if self.mlm is None:
            raise LmforgeError(f"{self.path} has no masked-LM head (it was saved without one); it can only embed text")
        texts = [texts] if isinstance(texts, str) else list(texts)
        mask = self.tokenizer.mask_token
        rows = []
        device = next(self.mlm.parameters()).device
        for text in texts:
            if mask not in text:
                raise LmforgeError(f"{self.path} is a pretrained encoder without a task head: put {mask} in the text to "
                                   "fill it in, call embed() for vectors, or fine-tune it (lmforge finetune model.name=RUN)")
            enc = self.tokenizer(text, truncation=True, max_length=self.max_length, return_tensors="pt").to(device)
            with torch.inference_mode(), inference_precision(device):
                probs = self.mlm(**enc).logits[0].float().softmax(-1)  # (T, V)
            where = (enc["input_ids"][0] == self.tokenizer.mask_token_id).nonzero()[:, 0].tolist()
            fills = []
            for pos in where:
                p, ids = probs[pos].topk(top_k)
                fills.append([{"token": self.tokenizer.decode([i]).strip(), "score": round(float(s), 6)}
                              for s, i in zip(p.tolist(), ids.tolist(), strict=True)])
            rows.append({"text": text, "masks": fills})
        return rows

    def predict(self, texts: list[str] | str, pairs: list[str] | None = None, top_k: int = 5,
                batch_size: int = 64) -> list[dict[str, Any]]:
        """Fill-mask predictions (the only predictions an encoder without a task head makes)."""
        return self.fill_mask(texts, top_k)

    def evaluate(self, source: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Refused: there is no task to measure."""
        raise LmforgeError(f"{self.path} is a pretrained encoder with no task head, so there is nothing to evaluate; "
                           "fine-tune it first (lmforge finetune with model.name set to this run)")


def _masked_lm(source: str) -> nn.Module | None:
    """The model with its masked-LM head, or None when the checkpoint has no such head."""
    try:
        with quiet_transformers():
            model, info = AutoModelForMaskedLM.from_pretrained(source, output_loading_info=True)
    except (OSError, ValueError):
        return None
    return None if info.get("missing_keys") else model


@ARTIFACTS.register("encoder")
def load_encoder(path: Path, meta: dict[str, Any], device: str) -> EncoderModel:
    """Loader of the ``encoder`` kind."""
    source = str(path)
    mlm = _masked_lm(source)
    encoder = mlm.base_model if mlm is not None else from_pretrained(AutoModel, source)
    max_length = (meta.get("data") or {}).get("max_length") or DEFAULT_MAX_LENGTH
    artifact = EncoderModel(path, encoder.to(device).eval(), load_tokenizer(source), mlm.to(device).eval() if mlm else None,
                            max_length, mode=pooling_mode(source))
    return artifact
