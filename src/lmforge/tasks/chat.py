"""What chat tasks share: prompts through the tokenizer's chat template, answers as targets.

Every example becomes one token sequence, prompt then answer; the loss covers the answer
tokens only. Scoring (the log-probability of given answers) and greedy generation work on
any causal LM, peft-wrapped ones included.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from lmforge.data.batching import eval_batches
from lmforge.data.dataset import Split
from lmforge.data.examples import Examples
from lmforge.data.tokenize import Encoded, Ragged
from lmforge.devices import inference_precision
from lmforge.generation import Generator
from lmforge.models.chat import render

log = logging.getLogger("lmforge.data")
IGNORE = -100  # label id that the loss skips
LOGIT_BUDGET = 2**26  # floats of (batch, time, vocab) logits held at once when scoring


@dataclass
class ChatSplit(Split):
    """A split of prompt+answer sequences.

    Attributes:
        prompt_lengths: Tokens of each example's prompt; the rest of its sequence is the answer.
        candidates: Token ids of every possible answer (label generation), in label order.
        stop_ids: Token ids that end a generated answer.
    """

    prompt_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    candidates: list[np.ndarray] = field(default_factory=list)
    stop_ids: list[int] = field(default_factory=list)




def _ids(tokenizer: Any, texts: Sequence[str], special: bool) -> list[list[int]]:
    return tokenizer(list(texts), add_special_tokens=special)["input_ids"] if texts else []


def fit_length(prompt: list[int], answer: list[int], max_length: int) -> tuple[list[int], list[int]]:
    """Cut a prompt+answer pair to ``max_length`` tokens, keeping at least half of it for the answer.

    The answer loses its end first; a long prompt loses its beginning, so the part just
    before the answer (the question itself, the assistant header) stays.
    """
    if len(prompt) + len(answer) <= max_length:
        return prompt, answer
    answer = answer[:max(max_length - len(prompt), max_length // 2)]
    room = max_length - len(answer)
    return (prompt[-room:] if room > 0 else []), answer


def encode(tokenizer: Any, prompts: list[str], answers: list[str] | None, max_length: int) -> tuple[Ragged, np.ndarray, int]:
    """Token ids of prompt+answer sequences, the prompt lengths, and how many sequences were cut."""
    special = not getattr(tokenizer, "chat_template", None)  # templates write their own BOS
    prompt_ids = _ids(tokenizer, prompts, special)
    answer_ids = _ids(tokenizer, answers, False) if answers is not None else [[] for _ in prompts]
    rows, lengths, cut = [], [], 0
    for p, a in zip(prompt_ids, answer_ids, strict=True):
        fp, fa = fit_length(p, a, max_length)
        cut += (len(fp), len(fa)) != (len(p), len(a))
        rows.append(fp + fa)
        lengths.append(len(fp))
    return Ragged.from_lists(rows), np.asarray(lengths, dtype=np.int64), cut


def stop_ids(tokenizer: Any) -> list[int]:
    """EOS and the token that ends an assistant turn in the chat template (``<|im_end|>``...)."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    suffix = render(tokenizer, "x", None, "")[1]
    first = _ids(tokenizer, [suffix], False)[0][:1] if suffix else []
    return sorted(ids | set(first))


def chat_split(name: str, examples: Examples, targets: np.ndarray | None, tokenizer: Any, prompts: list[str],
               answers: list[str] | None, max_length: int, candidates: list[str] | None = None) -> ChatSplit:
    """A :class:`ChatSplit` of rendered ``prompts`` and ``answers`` (answer texts as :func:`render` gives them)."""
    ids, prompt_lengths, cut = encode(tokenizer, prompts, answers, max_length)
    if cut:
        log.info("%s: %d of %d examples were cut to max_length=%d tokens", name, cut, len(prompts), max_length)
    cands = [np.asarray(c, dtype=np.int64) for c in _ids(tokenizer, candidates, False)] if candidates else []
    return ChatSplit(name, examples, Encoded(ids, None), targets, int(tokenizer.pad_token_id),
                     prompt_lengths=prompt_lengths, candidates=cands, stop_ids=stop_ids(tokenizer))


def collate(split: ChatSplit, index: np.ndarray) -> dict[str, torch.Tensor]:
    """Right-padded sequences with ``labels`` that cover the answer tokens only."""
    batch = split.inputs(index)
    labels = batch["input_ids"].clone()  # (B, T)
    prompt = torch.arange(labels.shape[1])[None, :] < torch.from_numpy(split.prompt_lengths[index])[:, None]
    labels[prompt | (batch["attention_mask"] == 0)] = IGNORE
    batch["labels"] = labels
    return batch


def _pad(rows: list[np.ndarray], pad_id: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span], mask[i, span] = row, 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def sequence_logprobs(model: nn.Module, rows: list[np.ndarray], starts: list[int], pad_id: int) -> np.ndarray:
    """Summed log-probability of ``row[start:]`` given ``row[:start]``, for every row (right-padded batches)."""
    device = next(model.parameters()).device
    vocab = model.get_output_embeddings().weight.shape[0] if hasattr(model, "get_output_embeddings") else 1
    width = max(len(r) for r in rows)
    chunk = max(1, LOGIT_BUDGET // max(1, width * vocab))
    out = np.zeros(len(rows), dtype=np.float64)
    for lo in range(0, len(rows), chunk):
        ids, mask = _pad(rows[lo:lo + chunk], pad_id)
        with inference_precision(device):
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        logits = logits[:, -ids.shape[1]:].float()  # prompt methods put virtual tokens first
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None].to(device))[..., 0].cpu()
        pos = torch.arange(1, ids.shape[1])[None, :]
        start = torch.tensor(starts[lo:lo + chunk])[:, None]
        keep = (pos >= start) & (mask[:, 1:] == 1)
        out[lo:lo + len(ids)] = (logp * keep).sum(-1).double().numpy()
    return out


def answer_nll(model: nn.Module, split: ChatSplit, batch_size: int) -> np.ndarray:
    """(N, 2): summed negative log-likelihood of each example's answer tokens, and their number."""
    ids = split.encoded.input_ids
    out = np.zeros((len(split), 2), dtype=np.float32)
    with torch.inference_mode():
        for index in eval_batches(split.lengths, batch_size):
            starts = [int(split.prompt_lengths[i]) for i in index]
            out[index, 0] = -sequence_logprobs(model, [ids[i] for i in index], starts, split.pad_id)
            out[index, 1] = [len(ids[i]) - s for i, s in zip(index, starts, strict=True)]
    return out


def score_candidates(model: nn.Module, split: ChatSplit, batch_size: int) -> np.ndarray:
    """(N, C): log-probability of every candidate answer after each example's prompt."""
    ids = split.encoded.input_ids
    out = np.zeros((len(split), len(split.candidates)), dtype=np.float32)
    with torch.inference_mode():
        for index in eval_batches(split.prompt_lengths, batch_size):
            prompts = [ids[i][:split.prompt_lengths[i]] for i in index]
            for c, cand in enumerate(split.candidates):
                rows = [np.concatenate([p, cand]) for p in prompts]
                out[index, c] = sequence_logprobs(model, rows, [len(p) for p in prompts], split.pad_id)
    return out


def generate(model: nn.Module, tokenizer: Any, split: ChatSplit, batch_size: int, max_new_tokens: int) -> list[str]:
    """Greedy answers to each example's prompt, in input order (decoded by :class:`~lmforge.generation.Generator`)."""
    ids = split.encoded.input_ids
    generator = Generator(model, tokenizer)
    opts = generator.options(max_new_tokens=max_new_tokens)
    answers = [""] * len(split)
    for index in eval_batches(split.prompt_lengths, batch_size):
        prompts = [ids[i][:split.prompt_lengths[i]].tolist() for i in index]
        for i, text in zip(index, generator.generate_ids(prompts, opts, eos_ids=split.stop_ids), strict=True):
            answers[i] = text.strip()
    return answers
