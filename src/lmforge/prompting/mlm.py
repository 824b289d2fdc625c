"""Cloze prompting: cloze scoring (zero-shot) and PET / LM-BFF prompt-based fine-tuning.

The text goes into a template with a ``{mask}`` slot (``{text} It was {mask}.``); each label is
scored by the MLM head's log-probability of its verbalizer words at the mask. Fine-tuning trains
the whole model through the same template and verbalizer with cross-entropy over the labels, so
the pretrained head starts as a good classifier instead of a random one. A decoder is prompted
the same way with the prompt template, read at the next token after ``... {label}``'s prefix
(the ``pet-decoder`` method).

A checkpoint without an MLM head (``minilm-l6`` is a sentence encoder) gets one built on load:
the decoder is tied to the word embeddings and the transform starts as the identity. Its
zero-shot cloze scores are then weak; fine-tuning learns the head from the k examples.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForMaskedLM

from lmforge.data.batching import attention_mask, eval_batches, pad
from lmforge.data.tokenize import Ragged
from lmforge.errors import ConfigError
from lmforge.models.build import from_pretrained, load_tokenizer
from lmforge.prompting.lmhead import logits_at
from lmforge.prompting.templates import Template, fit_slots
from lmforge.prompting.verbalizers import Verbalizer, word_scores_at

log = logging.getLogger("lmforge.prompting")


def load_mlm(source: str, device: str = "cpu") -> tuple[nn.Module, Any]:
    """A masked LM and its tokenizer; a missing MLM head is built (tied decoder, identity transform)."""
    tokenizer = load_tokenizer(source)
    if tokenizer.mask_token is None:
        raise ConfigError(f"the tokenizer of {source} has no mask token, so it cannot fill a {{mask}} slot; "
                          "use a masked LM (BERT, RoBERTa...) for the cloze and pet methods")
    model, info = from_pretrained(AutoModelForMaskedLM, source, output_loading_info=True)
    missing = sorted(info.get("missing_keys", []))
    if missing:
        _init_missing_head(model, missing)
        log.warning("%s has no MLM head; one was built (decoder tied to the word embeddings, transform = identity). "
                    "Zero-shot cloze scores will be weak; pet fine-tuning learns the head from the examples.", source)
    return model.to(device).eval(), tokenizer


def _init_missing_head(model: nn.Module, missing: list[str]) -> None:
    """Identity for square weight matrices, ones for norm scales, zeros for the rest."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in missing:
            p = params.get(name)
            if p is None:
                continue
            if p.dim() == 2 and p.shape[0] == p.shape[1]:
                p.copy_(torch.eye(p.shape[0]))
            elif p.dim() == 1 and "norm" in name.lower() and name.endswith("weight"):
                p.fill_(1.0)
            elif p.dim() == 1:
                p.zero_()


@dataclass
class ClozeInputs:
    """Token ids of rendered prompts and the position whose prediction is read (the mask, or the last token)."""

    ids: Ragged
    position: np.ndarray


class Cloze:
    """A language model prompted through a template and read at one position through a verbalizer.

    Args:
        model: A masked LM (read at ``{mask}``) or a causal LM (read after the prompt, before ``{label}``).
        tokenizer: Its tokenizer.
        template: Template with ``{text}`` and ``{mask}``, or ending in ``{label}`` for a causal LM
            (and ``{text_pair}`` for pairs).
        verbalizer: Label words.
        max_length: Longest prompt in tokens; the text is cut to fit, never the template.
        batch_size: Prompts per forward pass.
        ref: How a saved artifact names the model; ``model`` saves the (fine-tuned) weights inside it.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, template: Template, verbalizer: Verbalizer, max_length: int = 128,
                 batch_size: int = 32, ref: str = "model") -> None:
        self.model, self.tokenizer, self.template, self.verbalizer = model, tokenizer, template, verbalizer
        self.max_length, self.batch_size, self.ref = max_length, batch_size, ref
        self.slot = "mask" if "mask" in template.slots else "label"
        self.leading = template.prefix(self.slot)[-1:].isspace()
        self.word_ids = verbalizer.token_ids(tokenizer, leading_space=self.leading)

    def encode(self, texts: list[str], pairs: list[str] | None = None) -> ClozeInputs:
        """Render, truncate and tokenize the prompts; find the position to read in each."""
        if self.slot == "label":
            return self._encode_causal(texts, pairs)
        rows, positions = [], []
        for i, text in enumerate(texts):
            ids, position = self._encode_masked(text, pairs[i] if pairs is not None else None)
            rows.append(ids)
            positions.append(position)
        return ClozeInputs(Ragged.from_lists(rows), np.asarray(positions, dtype=np.int64))

    def _encode_masked(self, text: str, pair: str | None) -> tuple[list[int], int]:
        """Token ids of one cloze prompt and the index of the template's mask in them."""
        mask_token, mask_id = self.tokenizer.mask_token, self.tokenizer.mask_token_id
        # Text cut by tokens can tokenize a little longer in context; leave more room until the mask fits.
        for room in (self.max_length, self.max_length - 8, self.max_length - 32):
            values = fit_slots(self.tokenizer, self.template, text, pair, room, mask=mask_token)
            ids = self.tokenizer(self.template.render(**values), truncation=True, max_length=self.max_length)["input_ids"]
            # Masks written in the text itself come before the template's when the text precedes it.
            nth = self.template.prefix("mask", **values).count(mask_token)
            found = [j for j, t in enumerate(ids) if t == mask_id]
            if len(found) > nth:
                return ids, found[nth]
        raise ConfigError(f"{self.template.where} {self.template.source!r} does not fit in data.max_length="
                          f"{self.max_length} tokens with its mask; raise data.max_length or shorten the template")

    def _encode_causal(self, texts: list[str], pairs: list[str] | None) -> ClozeInputs:
        """The prompt up to the label word (a space before it goes with the word); read at its last token."""
        rows = []
        for i, text in enumerate(texts):
            values = fit_slots(self.tokenizer, self.template, text, pairs[i] if pairs is not None else None,
                               self.max_length, label="")
            prompt = self.template.prefix("label", **values)
            rows.append(self.tokenizer(prompt[:-1] if self.leading else prompt)["input_ids"])
        return ClozeInputs(Ragged.from_lists(rows), np.asarray([len(r) - 1 for r in rows], dtype=np.int64))

    def batch(self, inputs: ClozeInputs, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Padded model inputs of rows ``index`` plus ``position``."""
        return {"input_ids": pad(inputs.ids, index, int(self.tokenizer.pad_token_id)),
                "attention_mask": attention_mask(inputs.ids, index), "position": torch.from_numpy(inputs.position[index])}

    def forward(self, batch: dict[str, torch.Tensor], model: nn.Module | None = None) -> torch.Tensor:
        """Label log-scores (B, C) of a batch, differentiable; ``model`` is the (wrapped) one being trained."""
        model = model or self.model
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        at_mask = logits_at(model, inputs, batch["position"])  # (B, V)
        words = word_scores_at(at_mask.float().log_softmax(-1), self.word_ids)  # (B, W)
        return self.verbalizer.label_scores(words)

    def label_scores(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        """Label log-scores (N, C) of ``texts``, in input order."""
        inputs = self.encode(texts, pairs)
        device = next(self.model.parameters()).device
        out = np.zeros((len(texts), len(self.verbalizer.labels)), dtype=np.float64)
        self.model.eval()
        with torch.inference_mode():
            for index in eval_batches(inputs.ids.lengths, self.batch_size):
                batch = {k: v.to(device) for k, v in self.batch(inputs, index).items()}
                out[index] = self.forward(batch).double().cpu().numpy()
        return out

    def save(self, out: Path) -> dict[str, Any]:
        """Write the fine-tuned model into ``out/model`` (when ``ref`` is ``model``); return the artifact fields."""
        if self.ref == "model":
            self.model.save_pretrained(out / "model")
            self.tokenizer.save_pretrained(out / "model")
        return {"model": self.ref, "template": self.template.source}


def pet_loss(cloze: Cloze) -> Any:
    """The training loss of prompt-based fine-tuning: cross-entropy over the verbalizer's label scores."""

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        scores = cloze.forward(batch, model)
        return F.cross_entropy(scores, batch["labels"]), scores

    return loss
