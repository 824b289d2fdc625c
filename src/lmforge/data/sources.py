"""Read CSV, TSV, JSONL, Parquet and plain-text files into rows that remember their line."""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from lmforge.errors import DataError
from lmforge.zoo import resolve_dataset

FIELD_LIMIT = 256 << 20  # characters in one CSV/TSV cell

log = logging.getLogger("lmforge.data")

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
           ".parquet": "parquet", ".pq": "parquet", ".txt": "txt", ".text": "txt"}
FASTTEXT_PREFIX = "__label__"


@dataclass
class Table:
    """Rows of one file; ``lines[i]`` is where row ``i`` starts (1-based; the row index for Parquet)."""

    path: Path
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int]
    skipped: int = 0
    problems: list[str] = field(default_factory=list)


class BadRows:
    """Either raises on the first bad row or counts bad rows to skip, as ``on_bad_rows`` says."""

    def __init__(self, policy: str = "error") -> None:
        self.policy = policy
        self.count = 0
        self.examples: list[str] = []

    def report(self, message: str) -> None:
        """Raise ``message`` as a DataError, or record it when skipping."""
        if self.policy != "skip":
            raise DataError(message + "; or set data.on_bad_rows=skip")
        self.count += 1
        if len(self.examples) < 3:
            self.examples.append(message)

    def summary(self, path: Path) -> None:
        """Log how many rows of ``path`` were skipped, with the first reasons."""
        if self.count:
            log.warning("skipped %d bad rows of %s, e.g. %s", self.count, path, " | ".join(self.examples))


def detect_format(path: Path, fmt: str = "auto") -> str:
    """The format of ``path``: the given one, or the one its extension names."""
    if fmt != "auto":
        return fmt
    suffixes = [s for s in path.suffixes if s in FORMATS]
    if not suffixes:
        raise DataError(f"{path}: cannot tell the format from the extension; set data.format to one of csv, tsv, jsonl, parquet, txt")
    return FORMATS[suffixes[-1]]


def decode(path: Path, encoding: str, bad: BadRows) -> str:
    """Decode the whole file, pointing at the line of the first undecodable byte."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig" if encoding.lower().replace("_", "-") == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        if bad.policy != "skip":
            line = raw.count(b"\n", 0, exc.start) + 1
            bad.report(f"{path}, line {line}: bytes that are not valid {encoding}; re-save the file as UTF-8 or set data.encoding")
    except LookupError:
        raise DataError(f"data.encoding {encoding!r} is not a known text encoding") from None
    kept = []
    for number, chunk in enumerate(raw.split(b"\n"), 1):
        try:
            kept.append(chunk.decode(encoding))
        except UnicodeDecodeError:
            bad.report(f"{path}, line {number}: bytes that are not valid {encoding}")
            kept.append("")
    return "\n".join(kept)


def _read_delimited(path: Path, text: str, delimiter: str, bad: BadRows) -> Table:
    # Python's csv module stops at 128 KB per cell by default; a long document in one cell is still
    # an example (tokenization truncates it to data.max_length), so the limit is far above that.
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = [c.strip() for c in (reader.fieldnames or [])]
    rows, lines, start = [], [], 2
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            bad.report(f"{path}, line {start}: unreadable {'CSV' if delimiter == ',' else 'TSV'} row ({exc})")
            start = reader.line_num + 1
            continue
        if any(v not in (None, "") for v in row.values()):
            rows.append({(k or "").strip(): v for k, v in row.items()})
            lines.append(start)
        start = reader.line_num + 1
    return Table(path, columns, rows, lines)


def _read_jsonl(path: Path, text: str, bad: BadRows) -> Table:
    rows, lines, columns = [], [], {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.report(f"{path}, line {number}: not valid JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            bad.report(f"{path}, line {number}: expected a JSON object per line")
            continue
        columns.update(dict.fromkeys(obj))
        rows.append(obj)
        lines.append(number)
    return Table(path, list(columns), rows, lines)


def _read_txt(path: Path, text: str) -> Table:
    """One example per line; fastText-style ``__label__x text`` lines also carry a label."""
    rows, lines = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        labels, words = [], line.split()
        while words and words[0].startswith(FASTTEXT_PREFIX):
            labels.append(words.pop(0)[len(FASTTEXT_PREFIX):])
        row: dict[str, Any] = {"text": " ".join(words) if labels else line.strip()}
        if labels:
            row["label"] = labels[0] if len(labels) == 1 else labels
        rows.append(row)
        lines.append(number)
    columns = ["text", "label"] if any("label" in r for r in rows) else ["text"]
    return Table(path, columns, rows, lines)


def _read_parquet(path: Path) -> Table:
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    columns = list(rows[0]) if rows else []
    return Table(path, columns, rows, list(range(1, len(rows) + 1)))


def read_table(path: str | Path, fmt: str = "auto", encoding: str = "utf-8", on_bad_rows: str = "error") -> Table:
    """Read one data file into a :class:`Table`.

    Args:
        path: The file.
        fmt: ``auto`` (by extension) or one of csv, tsv, jsonl, parquet, txt.
        encoding: Text encoding of non-Parquet files.
        on_bad_rows: ``error`` or ``skip``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} not found")
    fmt = detect_format(path, fmt)
    bad = BadRows(on_bad_rows)
    if fmt == "parquet":
        table = _read_parquet(path)
    else:
        text = decode(path, encoding, bad)
        if fmt in ("csv", "tsv"):
            table = _read_delimited(path, text, "," if fmt == "csv" else "\t", bad)
        elif fmt == "jsonl":
            table = _read_jsonl(path, text, bad)
        else:
            table = _read_txt(path, text)
    if not table.rows:
        raise DataError(f"{path} holds no rows; give a file with a header line and at least one example")
    table.skipped = bad.count
    table.problems = bad.examples
    return table


def read_texts(source: str | Path, column: str | None, label_column: str | None = None) -> tuple[list[str], list[str] | None]:
    """The texts of a file (and its labels when the label column is there): the named column, ``text`` or the first one."""
    table = read_table(resolve_dataset(str(source)))
    name = column or ("text" if "text" in table.columns else table.columns[0])
    if name not in table.columns:
        raise DataError(f"{source} has no column '{name}' (columns: {', '.join(table.columns)}); pass --text-column NAME")
    keep = [i for i, r in enumerate(table.rows) if str(r.get(name) or "").strip()]
    if not keep:
        raise DataError(f"{source}: column '{name}' holds no text")
    texts = [str(table.rows[i][name]) for i in keep]
    if not label_column or label_column not in table.columns:
        return texts, None
    return texts, [str(table.rows[i][label_column]) for i in keep]
