"""Split text into the units augmentation and perturbation act on: words, Chinese words (jieba), characters."""

from __future__ import annotations

import logging
import re
from functools import cache
from typing import Any

from lmforge.errors import LmforgeError

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")


def is_chinese(text: str, share: float = 0.3) -> bool:
    """True when at least ``share`` of the non-space characters are CJK ideographs or CJK punctuation."""
    chars = [c for c in text if not c.isspace()]
    return bool(chars) and sum(1 for c in chars if _CJK.match(c)) >= share * len(chars)


@cache
def load_jieba(purpose: str = "word-level operations on Chinese text", fix: str = "") -> Any:
    """The jieba module, quiet, imported once: the one Chinese word segmenter of the project.

    Args:
        purpose: What needs it, for the error message when jieba is missing.
        fix: An alternative to installing jieba, appended to that message.

    Raises:
        LmforgeError: jieba is not installed.
    """
    try:
        import jieba  # optional: lmforge[chinese]
    except ImportError:
        raise LmforgeError(f"{purpose} needs jieba: pip install 'lmforge[chinese]'{fix}") from None
    jieba.setLogLevel(logging.WARNING)
    return jieba


def segment(text: str, units: str = "auto") -> tuple[list[str], str]:
    """Split ``text`` into units and the string that joins them back.

    Args:
        text: The text.
        units: ``word`` (whitespace words; jieba words for Chinese), ``char`` (characters;
            spaces dropped for Chinese) or ``auto`` (= ``word``).

    Returns:
        (units, joiner) with ``joiner.join(units)`` equal to the text up to spacing.
    """
    chinese = is_chinese(text)
    if units == "char":
        return ([c for c in text if not c.isspace()], "") if chinese else (list(text), "")
    if chinese:
        return [w for w in load_jieba().lcut(text) if w.strip()], ""
    return text.split(), " "
