"""In-context demonstrations: which labeled examples go into the prompt, within a token budget.

``random``: one seeded, class-balanced set of demonstrations shared by every query, so the
decoder runs it once and reuses its key/value cache. ``similar``: for each query, the labeled
examples closest to it in a sentence encoder's embedding space, the closest placed last (next to
the query), as in KATE (Liu et al. 2022).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lmforge.prompting.templates import Template, fit_slots


@dataclass
class Demonstrations:
    """Labeled examples rendered as filled-in prompts.

    Attributes:
        texts: Example texts.
        pairs: Second texts, or None.
        targets: Label ids.
        rendered: Each example rendered through the prompt template with its label word.
        costs: Tokens of each rendered example plus the separator.
        separator: Text between demonstrations (and before the query).
        max_tokens: Budget of all demonstrations together.
    """

    texts: list[str]
    pairs: list[str] | None
    targets: np.ndarray
    rendered: list[str]
    costs: np.ndarray
    separator: str
    max_tokens: int

    @classmethod
    def build(cls, tokenizer: Any, template: Template, words: list[str], texts: list[str], pairs: list[str] | None,
              targets: np.ndarray, separator: str, max_tokens: int, max_length: int) -> Demonstrations:
        """Render every example with ``words[label]`` in the ``{label}`` slot, each cut to ``max_length`` tokens."""
        rendered = []
        for i, text in enumerate(texts):
            label = words[int(targets[i])]
            values = fit_slots(tokenizer, template, text, pairs[i] if pairs else None, max_length, label=label)
            rendered.append(template.render(**values))
        sep = len(tokenizer(separator, add_special_tokens=False)["input_ids"])
        costs = np.asarray([len(tokenizer(r, add_special_tokens=False)["input_ids"]) + sep for r in rendered])
        return cls(list(texts), list(pairs) if pairs else None, np.asarray(targets), rendered, costs, separator, max_tokens)

    def _within_budget(self, order: list[int]) -> list[int]:
        """The longest start of ``order`` whose demonstrations fit the token budget."""
        total, kept = 0, []
        for i in order:
            if total + self.costs[i] > self.max_tokens:
                break
            total += int(self.costs[i])
            kept.append(i)
        return kept

    def shared(self, seed: int) -> list[int]:
        """A seeded, class-balanced choice within budget, in a seeded order."""
        rng = np.random.default_rng(seed)
        by_class = [list(rng.permutation(np.flatnonzero(self.targets == c))) for c in np.unique(self.targets)]
        rounds = max((len(m) for m in by_class), default=0)
        order = []
        for r in range(rounds):
            group = [int(m[r]) for m in by_class if r < len(m)]
            order += [group[j] for j in rng.permutation(len(group))]
        kept = self._within_budget(order)
        return [kept[j] for j in rng.permutation(len(kept))]

    def nearest(self, query_vecs: np.ndarray, pool_vecs: np.ndarray) -> list[list[int]]:
        """Per query: the most similar examples within budget, ordered least to most similar."""
        sims = query_vecs @ pool_vecs.T  # (Q, N)
        out = []
        for row in sims:
            kept = self._within_budget(list(np.argsort(-row, kind="stable")))
            out.append(kept[::-1])
        return out

    def text(self, index: list[int]) -> str:
        """The demonstrations at ``index`` joined, ending with a separator before the query."""
        return "".join(self.rendered[i] + self.separator for i in index)

    def records(self, labels: list[str]) -> list[dict[str, Any]]:
        """The examples as JSON-ready rows (for saving with an artifact)."""
        rows = []
        for i, text in enumerate(self.texts):
            row = {"text": text, "label": labels[int(self.targets[i])]}
            if self.pairs is not None:
                row["text_pair"] = self.pairs[i]
            rows.append(row)
        return rows
