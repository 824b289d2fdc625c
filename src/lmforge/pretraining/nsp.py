"""Next-sentence prediction pairs, sampled as BERT's ``create_pretraining_data.py`` does.

Segments (sentences) of a document are gathered until they reach a target length (the
segment budget: usually the full sequence, sometimes shorter), then split at a random point
into A and B. Half the time B is replaced by segments from a random other document, and the
segments left unused go back to be used by the next pair. A chunk of one segment that ends its
document has no next segment and must take a random B; with short documents that happens
often, so the free choices lean towards real next segments to keep the two classes balanced.
"""

from __future__ import annotations

import logging
from array import array

import numpy as np
import torch

from lmforge.pretraining.masking import Masker
from lmforge.pretraining.packing import Batch, finish_batch, pad_rows
from lmforge.pretraining.store import TokenStore

log = logging.getLogger("lmforge.pretrain")


class PairPlan:
    """Sentence pairs of one epoch: segment ranges ``[a0, a1)`` and ``[b0, b1)``, and whether B is random."""

    def __init__(self) -> None:
        self.a0, self.a1, self.b0, self.b1, self.random = (array("q") for _ in range(5))
        self.randoms = 0

    def add(self, a: tuple[int, int], b: tuple[int, int], is_random: bool) -> None:
        """Append one pair."""
        for column, value in zip((self.a0, self.a1, self.b0, self.b1, self.random), (*a, *b, int(is_random)), strict=True):
            column.append(value)
        self.randoms += int(is_random)

    def random_probability(self) -> float:
        """Chance that a free choice takes a random B: 0.5, less when forced random pairs outnumber the rest."""
        excess = self.randoms - 0.5 * len(self)
        return min(1.0, max(0.0, 0.5 - excess))

    def __len__(self) -> int:
        return len(self.a0)


def _random_b(store: TokenStore, doc: int, budget: int, lengths: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """Segments from a random other document, from a random start, until ``budget`` tokens."""
    other = doc
    for _ in range(10):
        other = int(rng.integers(store.num_docs))
        if other != doc:
            break
    first, last = store.doc_segments(other)
    start = int(rng.integers(first, last))
    end, total = start, 0
    while end < last and total < budget:
        total += int(lengths[end])
        end += 1
    return start, end


def _doc_pairs(store: TokenStore, doc: int, max_tokens: int, short_prob: float, lengths: np.ndarray,
               rng: np.random.Generator, plan: PairPlan) -> None:
    """BERT's pair sampling over one document."""
    first, last = store.doc_segments(doc)
    target = max_tokens if rng.random() >= short_prob else int(rng.integers(2, max_tokens + 1))
    chunk: list[int] = []
    size, i = 0, first
    while i < last:
        chunk.append(i)
        size += int(lengths[i])
        if i == last - 1 or size >= target:
            a_len = 1 if len(chunk) < 2 else int(rng.integers(1, len(chunk)))
            a = (chunk[0], chunk[0] + a_len)
            has_next = len(chunk) > 1 or i + 1 < last
            if not has_next or rng.random() < plan.random_probability():
                a_tokens = int(lengths[a[0]:a[1]].sum())
                plan.add(a, _random_b(store, doc, max(1, target - a_tokens), lengths, rng), True)
                i -= len(chunk) - a_len  # the unused segments start the next pair
            elif len(chunk) > 1:
                plan.add(a, (a[1], chunk[-1] + 1), False)
            else:
                plan.add(a, (i + 1, i + 2), False)  # a single long segment: its successor is B
                i += 1
            chunk, size = [], 0
        i += 1


def plan_pairs(store: TokenStore, max_length: int, seed: int, epoch: int, short_prob: float = 0.1) -> PairPlan:
    """All sentence pairs of ``epoch`` (fresh pairings every epoch, like BERT's dupe factor)."""
    rng = np.random.default_rng([seed, epoch, 7])
    lengths = np.asarray(store.seg_end - store.seg_start)
    plan = PairPlan()
    for doc in range(store.num_docs):
        _doc_pairs(store, doc, max_length - 3, short_prob, lengths, rng, plan)
    share = plan.randoms / max(1, len(plan))
    if share > 0.6 and epoch == 0:
        log.warning("%.0f%% of sentence pairs are random: most documents have a single sentence, so next-sentence "
                    "prediction learns little; give documents of several sentences (data.documents=blank_line)", 100 * share)
    return plan


def trim_pair(la: int, lb: int, max_tokens: int, rng: np.random.Generator) -> tuple[tuple[int, int], tuple[int, int]]:
    """Tokens to cut from the (front, back) of A and of B so that both fit ``max_tokens``.

    As in BERT, the longer side loses tokens, each from the front or the back at random.
    """
    cut_a = cut_b = 0
    while la - cut_a + lb - cut_b > max_tokens:
        excess = la - cut_a + lb - cut_b - max_tokens
        if la - cut_a > lb - cut_b:
            cut_a += min(excess, la - cut_a - (lb - cut_b))
        else:
            cut_b += min(excess, max(1, lb - cut_b - (la - cut_a)))
    front_a, front_b = int(rng.binomial(cut_a, 0.5)), int(rng.binomial(cut_b, 0.5))
    return (front_a, cut_a - front_a), (front_b, cut_b - front_b)


class PairSequences:
    """Turns pair indices of a :class:`PairPlan` into ``[CLS] A [SEP] B [SEP]`` batches with MLM and NSP labels.

    Args:
        store: The tokens.
        plan: The epoch's pairs.
        max_length: Tokens per sequence.
        ids: Token ids of ``cls``, ``sep`` and ``pad``.
        masker: Masks the pairs for the MLM objective.
    """

    def __init__(self, store: TokenStore, plan: PairPlan, max_length: int, ids: dict[str, int], masker: Masker) -> None:
        self.store, self.plan, self.max_length, self.ids, self.masker = store, plan, max_length, ids, masker

    def __len__(self) -> int:
        return len(self.plan)

    def _span(self, s0: int, s1: int, cut: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        start, end = int(self.store.seg_start[s0]) + cut[0], int(self.store.seg_end[s1 - 1]) - cut[1]
        starts = self.store.starts[start:end] if self.store.starts is not None else np.ones(end - start, np.uint8)
        return np.asarray(self.store.ids[start:end], dtype=np.int64), np.asarray(starts, dtype=bool)

    def _pair(self, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = self.plan
        la = int(self.store.seg_end[p.a1[k] - 1] - self.store.seg_start[p.a0[k]])
        lb = int(self.store.seg_end[p.b1[k] - 1] - self.store.seg_start[p.b0[k]])
        cut_a, cut_b = trim_pair(la, lb, self.max_length - 3, rng)
        (a, sa), (b, sb) = self._span(p.a0[k], p.a1[k], cut_a), self._span(p.b0[k], p.b1[k], cut_b)
        cls, sep = self.ids["cls"], self.ids["sep"]
        ids = np.concatenate([[cls], a, [sep], b, [sep]])
        starts = np.concatenate([[True], sa, [True], sb, [True]])
        types = np.concatenate([np.zeros(len(a) + 2, np.int64), np.ones(len(b) + 1, np.int64)])
        return ids, starts, types

    def __call__(self, index: np.ndarray, rng: np.random.Generator) -> Batch:
        ids_rows, start_rows, type_rows = zip(*(self._pair(int(k), rng) for k in index), strict=True)
        ids, lengths = pad_rows(list(ids_rows), self.ids["pad"], None)
        starts, _ = pad_rows(list(start_rows), 1, None)
        types, _ = pad_rows(list(type_rows), 0, None)
        inputs, labels = self.masker(ids, starts, rng)
        batch = finish_batch(inputs, lengths, labels)
        batch["token_type_ids"] = torch.from_numpy(types)
        # 0: B follows A in its document, 1: B is random (the labels BertForPreTraining expects).
        batch["next_sentence_label"] = torch.from_numpy(np.array([self.plan.random[int(k)] for k in index], dtype=np.int64))
        return batch
