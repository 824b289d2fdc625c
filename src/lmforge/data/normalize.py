"""Text normalization: Unicode form, whitespace, case, full-width to half-width."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

_SPACES = re.compile(r"\s+")
# Full-width ASCII variants sit at a fixed offset from ASCII; U+3000 is the ideographic space.
_HALFWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def to_halfwidth(text: str) -> str:
    """Map full-width ASCII letters, digits, punctuation and the ideographic space to half-width."""
    return text.translate(_HALFWIDTH)


def make_normalizer(form: str = "nfkc", lowercase: bool = False, fullwidth_to_halfwidth: bool = False) -> Callable[[str], str]:
    """Build the text normalizer a run applies to every text, at training and prediction time.

    Args:
        form: ``nfkc``, ``nfc`` or ``none``.
        lowercase: Lowercase the text.
        fullwidth_to_halfwidth: Map full-width forms to half-width (NFKC already does this).
    """

    def normalize(text: str) -> str:
        if form != "none":
            text = unicodedata.normalize(form.upper(), text)
        if fullwidth_to_halfwidth:
            text = to_halfwidth(text)
        if lowercase:
            text = text.lower()
        return _SPACES.sub(" ", text).strip()

    return normalize
