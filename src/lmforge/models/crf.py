"""A linear-chain CRF layer over per-word tag scores: negative log-likelihood for training, Viterbi for decoding.

It sits on top of a token-classification head (``model.crf``), so it is saved with the model's
weights and trained with the head. Transitions that IOB2 forbids (``O`` -> ``I-X``, ``B-X`` -> ``I-Y``)
can be ruled out, so decoded tag sequences are always well formed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

FORBIDDEN = -1e4  # added to the score of a forbidden transition: never chosen, still finite in bf16 sums


def iob2_allowed(names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Allowed transitions (L, L) and allowed first tags (L,) of IOB2 label ``names``: ``I-X`` only after ``B-X`` or ``I-X``."""
    kinds = [(n[:2], n[2:]) if n[:2] in ("B-", "I-") else ("O", "") for n in names]
    allowed = torch.ones(len(names), len(names), dtype=torch.bool)
    for j, (prefix, kind) in enumerate(kinds):
        if prefix == "I-":
            allowed[:, j] = torch.tensor([k == kind and p in ("B-", "I-") for p, k in kinds])
    start = torch.tensor([prefix != "I-" for prefix, _ in kinds])
    return allowed, start


class CRF(nn.Module):
    """Linear-chain CRF with learned start, end and transition scores.

    Args:
        num_tags: Tags (the head's outputs).
        names: IOB2 label names; when given, transitions IOB2 forbids are ruled out.
    """

    def __init__(self, num_tags: int, names: Sequence[str] | None = None) -> None:
        super().__init__()
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # [from, to]
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        allowed, first = iob2_allowed(names) if names else (torch.ones(num_tags, num_tags, dtype=torch.bool),
                                                            torch.ones(num_tags, dtype=torch.bool))
        self.register_buffer("penalty", torch.where(allowed, 0.0, FORBIDDEN), persistent=False)
        self.register_buffer("start_penalty", torch.where(first, 0.0, FORBIDDEN), persistent=False)

    def forward(self, emissions: torch.Tensor, mask: torch.Tensor, tags: torch.Tensor | None = None) -> torch.Tensor:
        """Mean negative log-likelihood of ``tags`` when given, else the best tag sequences.

        Args:
            emissions: (B, W, L) tag scores per word.
            mask: (B, W) true for real words; every row starts with at least one.
            tags: (B, W) gold tag ids (anything at masked positions).

        Returns:
            A scalar loss, or (B, W) best tag ids (0 at masked positions).
        """
        emissions = emissions.float()
        if tags is None:
            return self.decode(emissions, mask)
        return (self._log_partition(emissions, mask) - self._score(emissions, mask, tags)).mean()

    def _scores(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transitions + self.penalty, self.start + self.start_penalty

    def _score(self, emissions: torch.Tensor, mask: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """(B,) score of the given tag paths."""
        transitions, start = self._scores()
        tags = tags.clamp(min=0)
        maskf = mask.float()
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, W)
        steps = transitions[tags[:, :-1], tags[:, 1:]] * maskf[:, 1:]  # (B, W-1)
        last = tags.gather(1, (mask.sum(1) - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        return start[tags[:, 0]] + (emit * maskf).sum(1) + steps.sum(1) + self.end[last]

    def _log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) log of the summed scores of every path (forward algorithm)."""
        transitions, start = self._scores()
        alpha = start + emissions[:, 0]  # (B, L)
        for w in range(1, emissions.shape[1]):
            step = torch.logsumexp(alpha.unsqueeze(2) + transitions + emissions[:, w].unsqueeze(1), dim=1)
            alpha = torch.where(mask[:, w].unsqueeze(1), step, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, W) Viterbi-best tag ids; positions past each row's length are 0."""
        transitions, start = self._scores()
        score = start + emissions[:, 0]  # (B, L)
        back = []
        for w in range(1, emissions.shape[1]):
            best, arg = (score.unsqueeze(2) + transitions).max(dim=1)  # (B, L): best previous tag for each tag
            keep = mask[:, w].unsqueeze(1)
            score = torch.where(keep, best + emissions[:, w], score)
            back.append(torch.where(keep, arg, torch.arange(score.shape[1], device=arg.device).expand_as(arg)))
        tag = (score + self.end).argmax(dim=1)  # (B,)
        path = [tag]
        for arg in reversed(back):
            tag = arg.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        out = torch.stack(path[::-1], dim=1)
        return torch.where(mask, out, torch.zeros_like(out))
