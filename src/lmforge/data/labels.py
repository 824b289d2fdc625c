"""Label spaces: infer or take label names, and encode raw label values into arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

from lmforge.data.examples import Examples
from lmforge.data.sources import BadRows

Kind = Literal["single", "multi", "regression", "text", "tags", "span"]


def label_text(value: Any) -> str:
    """Canonical text of a raw label value: ``1``, ``1.0`` and ``"1"`` are all ``"1"``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _is_int_text(text: str) -> bool:
    return text.lstrip("-").isdigit()


@dataclass
class LabelSpace:
    """The labels of a task and how raw values map to ids.

    Attributes:
        kind: ``single`` (one label per example), ``multi`` (a set per example), ``regression``,
            ``text`` (a free-text target such as an instruction's response, kept in the examples),
            ``tags`` (a label per word, e.g. BIO entity tags) or ``span`` (an answer span in a context).
        names: Label names in id order (empty for regression).
        separator: Separator of several labels written in one cell (multi-label).
    """

    kind: Kind
    names: list[str] = field(default_factory=list)
    separator: str = ","

    @property
    def num_labels(self) -> int:
        """Outputs of the task head."""
        return {"regression": 1, "text": 0, "span": 2}.get(self.kind, len(self.names))

    @classmethod
    def infer(cls, examples: Examples, kind: Kind, names: Sequence[str] | None = None, separator: str = ",") -> LabelSpace:
        """Take ``names`` if given, else collect them from the training examples."""
        if kind in ("regression", "text") or names:
            return cls(kind, list(names or []), separator)
        seen: dict[str, None] = {}
        for value in examples.labels or []:
            for item in cls(kind, [], separator).items(value):
                seen[item] = None
        numeric = all(map(_is_int_text, seen))
        return cls(kind, sorted(seen, key=int if numeric else None), separator)

    def items(self, value: Any) -> list[str]:
        """The label texts of one raw value (several for multi-label cells)."""
        if self.kind == "multi":
            parts = value if isinstance(value, (list, tuple)) else str(value).split(self.separator)
            return [label_text(p) for p in parts if label_text(p)]
        return [label_text(value)]

    @cached_property
    def _index(self) -> tuple[dict[str, int], dict[str, int]]:
        return {n: i for i, n in enumerate(self.names)}, {n.casefold(): i for i, n in enumerate(self.names)}

    def lookup(self, text: str) -> int | None:
        """The id of a label text; integer texts index the names when no name is an integer."""
        index, folded = self._index
        if text in index:
            return index[text]
        if text.casefold() in folded:
            return folded[text.casefold()]
        if _is_int_text(text) and not any(map(_is_int_text, self.names)) and 0 <= int(text) < len(self.names):
            return int(text)
        return None

    def encode(self, examples: Examples, bad: BadRows) -> tuple[Examples, np.ndarray]:
        """Encode the examples' labels; rows with unusable labels are reported to ``bad`` and dropped.

        Free-text targets stay in ``examples.labels``; the returned array only numbers the rows.
        """
        if self.kind == "text":
            return examples, np.arange(len(examples), dtype=np.int64)
        keep, rows = [], []
        for i, (value, line) in enumerate(zip(examples.labels or [], examples.lines)):
            encoded = self._encode_one(value, examples.where(line), bad)
            if encoded is not None:
                keep.append(i)
                rows.append(encoded)
        dtype = np.int64 if self.kind == "single" else np.float32
        shape = (0, self.num_labels) if self.kind == "multi" else (0,)
        array = np.asarray(rows, dtype=dtype) if rows else np.zeros(shape, dtype=dtype)
        return (examples if len(keep) == len(examples) else examples.subset(keep)), array

    def _encode_one(self, value: Any, where: str, bad: BadRows) -> Any:
        if self.kind == "regression":
            try:
                return float(value)
            except (TypeError, ValueError):
                bad.report(f"{where}: label {value!r} is not a number; regression needs numeric labels")
                return None
        ids = []
        for text in self.items(value):
            found = self.lookup(text)
            if found is None:
                known = ", ".join(self.names[:20]) + (" ..." if len(self.names) > 20 else "")
                bad.report(f"{where}: unknown label {text!r} (known: {known}); fix the row or add it to data.labels")
                return None
            ids.append(found)
        if self.kind == "single":
            return ids[0]
        row = np.zeros(self.num_labels, dtype=np.float32)
        row[ids] = 1.0
        return row

    def to_dict(self) -> dict[str, Any]:
        """JSON form saved with the model."""
        return {"kind": self.kind, "names": self.names, "separator": self.separator}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelSpace:
        """Inverse of :meth:`to_dict`."""
        return cls(data["kind"], list(data.get("names", [])), data.get("separator", ","))
