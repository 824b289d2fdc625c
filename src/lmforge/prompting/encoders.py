"""Sentence encoders: a transformer, mean (or CLS) pooling and L2 normalization, with an embedding cache.

``minilm-l6`` (all-MiniLM-L6-v2) is such an encoder: its sentence-transformers folder says mean
pooling then normalization, and that is what :class:`SentenceEncoder` does with any checkpoint
(CLS pooling when the folder's ``1_Pooling/config.json`` asks for it).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModel

from lmforge.data.batching import eval_batches
from lmforge.models.build import from_pretrained, load_tokenizer

log = logging.getLogger("lmforge.prompting")
_ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")


def pooling_mode(source: str) -> str:
    """``cls`` or ``mean``, as the checkpoint's sentence-transformers pooling config says (``mean`` when absent)."""
    path = Path(source) / "1_Pooling" / "config.json"
    if path.is_file():
        cfg = json.loads(path.read_text(encoding="utf-8"))
        if cfg.get("pooling_mode_cls_token") and not cfg.get("pooling_mode_mean_tokens"):
            return "cls"
    return "mean"


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Unit-length sentence vectors (B, D) from token states (B, T, D) and the attention mask (B, T)."""
    if mode == "cls":
        vec = hidden[:, 0]
    else:
        m = mask.unsqueeze(-1).to(hidden.dtype)
        vec = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return F.normalize(vec, dim=-1)


class SentenceEncoder:
    """Embeds texts (or text pairs) as unit vectors; remembers what it has embedded.

    Args:
        source: A loadable model folder (see :func:`lmforge.models.build.resolve`).
        device: Where to run.
        max_length: Longest input in tokens.
        batch_size: Texts per forward pass.
    """

    def __init__(self, source: str, device: str = "cpu", max_length: int = 128, batch_size: int = 64) -> None:
        self.source, self.device, self.max_length, self.batch_size = source, device, max_length, batch_size
        self.tokenizer = load_tokenizer(source)
        self.model: nn.Module = from_pretrained(AutoModel, source).to(device).eval()
        self.mode = pooling_mode(source)
        self._cache: dict[tuple[str, str | None], np.ndarray] = {}

    def batch(self, texts: list[str], pairs: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Tokenized, padded model inputs on the encoder's device."""
        enc = self.tokenizer(texts, pairs, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items()}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Unit vectors (B, D) of a tokenized batch, with gradients when the model is training."""
        hidden = self.model(**batch).last_hidden_state  # (B, T, D)
        return pool(hidden, batch["attention_mask"], self.mode)

    def embed(self, texts: list[str], pairs: list[str] | None = None, desc: str = "embedding") -> np.ndarray:
        """Unit vectors (N, D) of ``texts`` in input order; texts seen before come from the cache."""
        keys = list(zip(texts, pairs if pairs is not None else [None] * len(texts), strict=True))
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if todo:
            self._embed_new(todo, desc)
        return np.stack([self._cache[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)

    def _embed_new(self, keys: list[tuple[str, str | None]], desc: str) -> None:
        lengths = np.asarray([len(t) + len(p or "") for t, p in keys])
        batches = eval_batches(lengths, self.batch_size)
        self.model.eval()
        with torch.inference_mode():
            for index in tqdm(batches, desc=desc, unit="batch", disable=len(batches) < 10, leave=False):
                texts = [keys[i][0] for i in index]
                pairs = [keys[i][1] or "" for i in index] if keys[index[0]][1] is not None else None
                vectors = self.forward(self.batch(texts, pairs)).float().cpu().numpy()
                for i, vec in zip(index, vectors, strict=True):
                    self._cache[keys[i]] = vec

    def save(self, out: Path) -> None:
        """Write the encoder as a Hugging Face folder with its sentence-transformers pooling config."""
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        src = Path(self.source)
        for name in _ST_FILES:
            if (src / name).is_file():
                shutil.copy(src / name, out / name)
        for folder in ("1_Pooling", "2_Normalize"):
            if (src / folder).is_dir():
                shutil.copytree(src / folder, out / folder, dirs_exist_ok=True)

    def clear_cache(self) -> None:
        """Forget cached vectors (after the weights change)."""
        self._cache.clear()
