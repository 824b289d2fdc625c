"""Decoder scoring: the log-probability of label words after a prompt, batched, with a shared prefix cached.

Everything a decoder method does reduces to one question: how likely is each continuation after
its context? :class:`CausalScorer` answers it in length-sorted batches. A prefix shared by every
row (in-context demonstrations) is run once; its key/value cache is reused by every batch, so
each query costs only its own tokens.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, DynamicCache

from lmforge.data.batching import eval_batches
from lmforge.errors import ConfigError
from lmforge.models.build import from_pretrained, load_tokenizer
from lmforge.models.chat import has_chat_template, render
from lmforge.prompting.lmhead import split_head

log = logging.getLogger("lmforge.prompting")


def load_decoder(source: str, device: str = "cpu") -> tuple[nn.Module, Any]:
    """A causal LM and its tokenizer, in eval mode."""
    model = from_pretrained(AutoModelForCausalLM, source)
    return model.to(device).eval(), load_tokenizer(source)


@dataclass
class Prefix:
    """Tokens shared by every row, and their per-layer key/value tensors (1, H, P, D)."""

    ids: list[int]
    kv: list[tuple[torch.Tensor, torch.Tensor]]


class CausalScorer:
    """Log-probabilities of continuations under a causal LM.

    Args:
        model: The decoder.
        tokenizer: Its tokenizer.
        batch_size: Rows per forward pass.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, batch_size: int = 16) -> None:
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.device = next(model.parameters()).device
        # The head runs only at the positions that are read (see lmhead.py).
        self.trunk, self.head = split_head(model) or (model, None)
        # transformers renamed ``past_key_values`` to ``cache`` during 5.x; take whichever this model has.
        self.cache_arg = "cache" if "cache" in inspect.signature(self.trunk.forward).parameters else "past_key_values"

    def encode(self, text: str, first: bool = False) -> list[int]:
        """Token ids of ``text``; special tokens (a BOS) only when it starts the sequence."""
        return self.tokenizer(text, add_special_tokens=first)["input_ids"]

    def prefix(self, ids: list[int]) -> Prefix | None:
        """Run ``ids`` once and keep their key/value cache (None for an empty prefix)."""
        if not ids:
            return None
        with torch.inference_mode():
            out = self.trunk(input_ids=torch.tensor([ids], device=self.device), use_cache=True)
        cache = getattr(out, "cache", None) or out.past_key_values
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        return Prefix(list(ids), kv)

    def _cache(self, prefix: Prefix, batch: int) -> Any:
        # expand() makes views; the cache concatenates new keys onto them, leaving the prefix intact.
        data = [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in prefix.kv]
        return DynamicCache(ddp_cache_data=data, config=self.model.config)

    def _forward(self, prefix: Prefix | None, rows: list[list[int]]) -> torch.Tensor:
        """Hidden states (B, T, H) of right-padded ``rows`` that follow ``prefix`` (logits when the head is not split off)."""
        p = len(prefix.ids) if prefix else 0
        width = max(len(r) for r in rows)
        pad_id = int(self.tokenizer.pad_token_id)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), p + width), dtype=torch.long)
        mask[:, :p] = 1
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row)
            mask[i, p:p + len(row)] = 1
        positions = torch.arange(p, p + width).expand(len(rows), -1)
        kwargs: dict[str, Any] = {self.cache_arg: self._cache(prefix, len(rows))} if prefix else {}
        out = self.trunk(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                         position_ids=positions.to(self.device), use_cache=bool(prefix), **kwargs)
        return out.logits if self.head is None else out.last_hidden_state

    def log_probs(self, states: torch.Tensor) -> torch.Tensor:
        """Token log-probabilities (L, V) from :meth:`_forward` states (L, H or V) of one row."""
        logits = states if self.head is None else self.head(states)
        return logits.float().log_softmax(-1)

    def run(self, prefix: Prefix | None, rows: list[list[int]], read: Callable[[torch.Tensor, int], Any],
            desc: str = "scoring") -> list[Any]:
        """``read(states_of_row, row_index)`` for every row, in input order (see :meth:`log_probs`)."""
        results: list[Any] = [None] * len(rows)
        batches = eval_batches(np.asarray([len(r) for r in rows]), self.batch_size)
        with torch.inference_mode():
            for index in tqdm(batches, desc=desc, unit="batch", disable=len(batches) < 10, leave=False):
                logits = self._forward(prefix, [rows[i] for i in index])
                for j, i in enumerate(index):
                    results[i] = read(logits[j], int(i))
        return results

    def next_token(self, prefix: Prefix | None, contexts: list[list[int]], token_ids: list[int]) -> np.ndarray:
        """Log-probs (N, K) of ``token_ids`` right after each context."""
        ids = torch.tensor(token_ids, device=self.device)

        def read(states: torch.Tensor, i: int) -> np.ndarray:
            last = len(contexts[i]) - 1
            return self.log_probs(states[last:last + 1])[0, ids].cpu().numpy()

        return np.stack(self.run(prefix, contexts, read))

    def continuation(self, prefix: Prefix | None, contexts: list[list[int]], conts: list[list[int]]) -> list[np.ndarray]:
        """Per-token log-probs of each continuation after its context."""
        rows = [c + t for c, t in zip(contexts, conts, strict=True)]

        def read(states: torch.Tensor, i: int) -> np.ndarray:
            start = len(contexts[i]) - 1
            steps = self.log_probs(states[start:start + len(conts[i])])  # (L, V)
            target = torch.tensor(conts[i], device=steps.device)
            return steps.gather(1, target[:, None])[:, 0].cpu().numpy()

        return self.run(prefix, rows, read)


def word_logprobs(scorer: CausalScorer, prefix: Prefix | None, contexts: list[list[int]], word_ids: Sequence[list[int]],
                  policy: str) -> np.ndarray:
    """Word log-scores (N, W) after each context: the mean of a word's token log-probs, or its first token's.

    When every word is a single token (or only first tokens count), one row per context gives all
    words at once; otherwise each (context, word) pair is one row.
    """
    if policy == "first" or all(len(w) == 1 for w in word_ids):
        return scorer.next_token(prefix, contexts, [w[0] for w in word_ids])
    rows_ctx = [c for c in contexts for _ in word_ids]
    rows_word = [list(w) for _ in contexts for w in word_ids]
    scores = scorer.continuation(prefix, rows_ctx, rows_word)
    return np.asarray([float(np.mean(s)) for s in scores]).reshape(len(contexts), len(word_ids))


def chat_prompt(tokenizer: Any, message: str, system: str = "",
                hint: str = "the generate method needs an instruct model: set models.decoder to one (e.g. smollm2-135m)") -> str:
    """``message`` as the user turn of the tokenizer's chat template (after a ``system`` turn when
    given), ready for the assistant's answer; ``hint`` ends the error when there is no chat template."""
    if not has_chat_template(tokenizer):
        raise ConfigError(f"the decoder has no chat template; {hint}")
    return render(tokenizer, message, system or None)[0]
