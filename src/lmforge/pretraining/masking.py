"""Masked-LM masking in numpy, batch at a time: 15% of tokens, 80/10/10, optionally whole words.

Masking happens when a batch is made (dynamic masking, as RoBERTa does), from a generator
seeded by the batch's position in the run, so a resumed run masks exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE = -100


@dataclass
class Masker:
    """Choose the tokens masked LM predicts, and corrupt them.

    Attributes:
        mask_id: The mask token.
        vocab_size: Random replacements are drawn from ``[0, vocab_size)``.
        special_ids: Tokens never chosen (CLS, SEP, padding...).
        probability: Share of the non-special tokens of each sequence to predict.
        mask_replace: Share of chosen tokens replaced by ``mask_id``.
        random_replace: Share of chosen tokens replaced by a random token; the rest keep their value.
        whole_word: Choose whole words (all their tokens) instead of single tokens.
    """

    mask_id: int
    vocab_size: int
    special_ids: np.ndarray
    probability: float = 0.15
    mask_replace: float = 0.8
    random_replace: float = 0.1
    whole_word: bool = True

    def choose(self, ids: np.ndarray, starts: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """Boolean (B, T) of the tokens to predict.

        Words are picked in random order until a row's budget (``probability`` of its non-special
        tokens, at least one) is used up; a word that would overshoot ends the picking, except that
        every row gets at least its first pick.

        Args:
            ids: Token ids, (B, T).
            starts: True where a token begins a word, (B, T); None treats every token as a word.
            rng: The batch's random generator.
        """
        special = np.isin(ids, self.special_ids)
        word_start = np.ones_like(special) if starts is None or not self.whole_word else starts.astype(bool) | special
        word_start[:, 1:] |= special[:, :-1]
        word_start[:, 0] = True
        flat_start = word_start.ravel()
        word_of_token = np.cumsum(flat_start) - 1
        n_words = int(word_of_token[-1]) + 1 if word_of_token.size else 0
        word_row = np.flatnonzero(flat_start) // ids.shape[1]
        word_len = np.bincount(word_of_token, minlength=n_words)
        word_special = np.bincount(word_of_token, weights=special.ravel(), minlength=n_words) > 0
        budget = np.maximum(1, np.rint(self.probability * (~special).sum(axis=1))).astype(np.int64)
        order = np.lexsort((np.where(word_special, np.inf, rng.random(n_words)), word_row))
        lengths = np.where(word_special[order], 0, word_len[order])
        rows = word_row[order]
        cum = np.cumsum(lengths)
        row_first = np.searchsorted(rows, np.arange(ids.shape[0]), side="left")
        before = np.where(row_first > 0, cum[np.maximum(row_first - 1, 0)], 0)
        in_row = cum - before[rows]
        first_pick = np.zeros(n_words, dtype=bool)
        first_pick[row_first] = True  # every row has a word: its first token always starts one
        picked = ((in_row <= budget[rows]) | first_pick) & ~word_special[order]
        chosen_word = np.zeros(n_words, dtype=bool)
        chosen_word[order[picked]] = True
        return chosen_word[word_of_token].reshape(ids.shape) & ~special

    def __call__(self, ids: np.ndarray, starts: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Corrupted inputs and labels (the original id where predicted, -100 elsewhere), both (B, T)."""
        chosen = self.choose(ids, starts, rng)
        labels = np.where(chosen, ids, IGNORE)
        draw = rng.random(ids.shape)
        to_mask = chosen & (draw < self.mask_replace)
        to_random = chosen & (draw >= self.mask_replace) & (draw < self.mask_replace + self.random_replace)
        inputs = ids.copy()
        inputs[to_mask] = self.mask_id
        inputs[to_random] = rng.integers(0, self.vocab_size, size=int(to_random.sum()))
        return inputs, labels
