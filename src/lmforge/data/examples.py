"""Turn a table's rows into validated examples: texts, optional pairs, raw labels, source lines."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lmforge.data.sources import BadRows, Table
from lmforge.errors import DataError


@dataclass
class Examples:
    """Parallel lists of one split; ``lines`` point back into ``path`` for error messages."""

    path: Path
    texts: list[str]
    pairs: list[str] | None
    labels: list[Any] | None
    lines: list[int]
    groups: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: Sequence[int]) -> Examples:
        """The examples at ``index``, in that order."""
        pick = lambda xs: None if xs is None else [xs[i] for i in index]  # noqa: E731
        return replace(self, texts=pick(self.texts), pairs=pick(self.pairs), labels=pick(self.labels), lines=pick(self.lines),
                       groups=pick(self.groups))

    def where(self, line: int) -> str:
        """``file, line N`` for messages."""
        return f"{self.path}, line {line}"


def is_missing(value: Any) -> bool:
    """True for None, empty strings and NaN, the ways a file leaves a cell blank."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _require_columns(table: Table, columns: dict[str, str | None], need: set[str]) -> None:
    for option, column in columns.items():
        if column is not None and option in need and column not in table.columns:
            have = ", ".join(table.columns) or "(none)"
            raise DataError(f"{table.path} has no column '{column}' (columns: {have}); set data.{option} to the right one")


def extract(table: Table, text_column: str, text_pair_column: str | None, label_column: str | None,
            normalize: Callable[[str], str], bad: BadRows, group_column: str | None = None) -> Examples:
    """Validate each row of ``table`` and keep its text, pair text, raw label and (with ``group_column``) group.

    A label column that is absent is allowed only when ``label_column`` is None (unlabeled data).
    """
    columns = {"text_column": text_column, "text_pair_column": text_pair_column, "label_column": label_column,
               "split.group_by": group_column}
    _require_columns(table, columns, {"text_column", "text_pair_column", "label_column", "split.group_by"})
    texts, pairs, labels, lines, groups = [], [], [], [], []
    for row, line in zip(table.rows, table.lines):
        where = f"{table.path}, line {line}"
        text = row.get(text_column)
        text = "" if is_missing(text) else normalize(str(text))
        if not text:
            bad.report(f"{where}: empty text in column '{text_column}'; fill it in or delete the row")
            continue
        pair = None
        if text_pair_column is not None:
            raw_pair = row.get(text_pair_column)
            pair = "" if is_missing(raw_pair) else normalize(str(raw_pair))
            if not pair:
                bad.report(f"{where}: empty text in column '{text_pair_column}'; fill it in or delete the row")
                continue
        label = row.get(label_column) if label_column else None
        if label_column and is_missing(label):
            bad.report(f"{where}: missing label in column '{label_column}'; add the label or delete the row")
            continue
        texts.append(text)
        pairs.append(pair)
        labels.append(label)
        lines.append(line)
        groups.append(str(row.get(group_column)) if group_column else "")
    return Examples(table.path, texts, pairs if text_pair_column else None, labels if label_column else None, lines,
                    groups if group_column else None)
