"""Stream unlabeled corpora one document at a time: text files, folders, tables and zoo corpora.

Nothing here holds more than one document in memory, so a corpus larger than memory can be
read. A document is a list of lines (paragraphs or sentences); in text files a document is one
line, or a run of lines ended by a blank line, as the caller asks.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pyarrow.parquet as pq
from tqdm.auto import tqdm

from lmforge import zoo
from lmforge.data.sources import FORMATS, detect_format
from lmforge.errors import DataError

log = logging.getLogger("lmforge.data")
T = TypeVar("T")

# Files a folder contributes besides the table formats: plain text under common names.
TEXT_SUFFIXES = {".txt", ".text", ".md", ".rst", ""}
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|(?<=[.])\s+(?=\S)")
csv.field_size_limit(2**31 - 1)


@dataclass(frozen=True)
class CorpusFile:
    """One file of a corpus and how to read it.

    Attributes:
        path: The file.
        format: ``txt``, ``csv``, ``tsv``, ``jsonl`` or ``parquet``.
    """

    path: Path
    format: str


def corpus_files(sources: list[str], fmt: str = "auto") -> list[CorpusFile]:
    """The files of ``sources`` (files, folders searched recursively, zoo corpora), in a stable order.

    Args:
        sources: Paths or zoo dataset names.
        fmt: ``auto`` (by extension, text for files without a known one) or a fixed format.
    """
    files: list[CorpusFile] = []
    for source in sources:
        path = zoo.resolve_dataset(source)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path))
                           and (p.suffix.lower() in FORMATS or p.suffix.lower() in TEXT_SUFFIXES))
            if not found:
                raise DataError(f"folder {path} holds no text files (.txt, .csv, .tsv, .jsonl, .parquet); "
                                "point data.train at the files")
            files += [CorpusFile(p, _format(p, fmt)) for p in found]
        else:
            files.append(CorpusFile(path, _format(path, fmt)))
    return files


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if path.suffix.lower() in TEXT_SUFFIXES and path.suffix.lower() not in FORMATS:
        return "txt"
    return detect_format(path, fmt)


def _decode(raw: bytes, path: Path, number: int, encoding: str) -> str:
    """Line ``number`` of ``path`` as text; a UTF-8 byte-order mark opening the file is dropped."""
    if number == 1:
        raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        raise DataError(f"{path}, line {number}: bytes that are not valid {encoding}; "
                        "re-save the file as UTF-8 or set data.encoding") from None
    except LookupError:
        raise DataError(f"data.encoding {encoding!r} is not a known text encoding") from None


def _text_documents(file: CorpusFile, blank_line: bool, encoding: str, progress: Callable[[int], None]) -> Iterator[list[str]]:
    """Documents of a plain-text file: each line, or blank-line-separated runs of lines."""
    doc: list[str] = []
    with file.path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            progress(len(raw))
            line = _decode(raw, file.path, number, encoding).strip()
            if not blank_line:
                if line:
                    yield [line]
            elif line:
                doc.append(line)
            elif doc:
                yield doc
                doc = []
    if doc:
        yield doc


def _cell_lines(value: object) -> list[str]:
    if value is None or (isinstance(value, float) and value != value):
        return []
    return [line.strip() for line in str(value).splitlines() if line.strip()]


def pick_column(file: CorpusFile, wanted: Sequence[str], columns: Sequence[str]) -> str:
    """The first of the ``wanted`` text columns that ``file`` has."""
    for column in wanted:
        if column in columns:
            return column
    names = "', '".join(wanted)
    raise DataError(f"{file.path} has no column '{names}' (columns: {', '.join(columns) or '(none)'}); "
                    "set data.text_column to the right one (a list tries each name in turn)")


def _delimited_documents(file: CorpusFile, wanted: Sequence[str], encoding: str) -> Iterator[list[str]]:
    with file.path.open("r", encoding="utf-8-sig" if encoding.lower() == "utf-8" else encoding, newline="") as f:
        # Tab-separated files do not quote: a stray '"' in a review must not swallow the rows after it.
        tsv = file.format == "tsv"
        reader = csv.DictReader(f, delimiter="\t" if tsv else ",", quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
        fields = [c.strip() for c in reader.fieldnames or []]
        key = (reader.fieldnames or [])[fields.index(pick_column(file, wanted, fields))]
        try:
            for row in reader:
                if lines := _cell_lines(row.get(key)):
                    yield lines
        except UnicodeDecodeError:
            raise DataError(f"{file.path}, line {reader.line_num + 1}: bytes that are not valid {encoding}; "
                            "re-save the file as UTF-8 or set data.encoding") from None


def _jsonl_documents(file: CorpusFile, wanted: Sequence[str], encoding: str) -> Iterator[list[str]]:
    with file.path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            text = _decode(raw, file.path, number, encoding).strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{file.path}, line {number}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{file.path}, line {number}: expected a JSON object per line")
            if lines := _cell_lines(obj[pick_column(file, wanted, list(obj))]):
                yield lines


def _parquet_documents(file: CorpusFile, wanted: Sequence[str]) -> Iterator[list[str]]:
    pf = pq.ParquetFile(file.path)
    column = pick_column(file, wanted, pf.schema_arrow.names)
    for batch in pf.iter_batches(columns=[column], batch_size=4096):
        for value in batch.column(0).to_pylist():
            if lines := _cell_lines(value):
                yield lines


def read_documents(files: list[CorpusFile], documents: str = "line", text_column: str | Sequence[str] = "text",
                   encoding: str = "utf-8", normalize: Callable[[str], str] | None = None,
                   desc: str | None = "reading corpus") -> Iterator[list[str]]:
    """Every document of ``files`` as a list of normalized, non-empty lines.

    Args:
        files: From :func:`corpus_files`.
        documents: For text files, ``line`` (one document per line) or ``blank_line``
            (documents are runs of lines separated by blank lines).
        text_column: Column (or JSON field) holding the text in tables, or several names tried in turn;
            each row is a document.
        encoding: Text encoding.
        normalize: Applied to every line (Unicode form, case, whitespace).
        desc: Progress-bar label; None for no bar.
    """
    wanted = [text_column] if isinstance(text_column, str) else list(text_column)
    total = sum(f.path.stat().st_size for f in files)
    with tqdm(total=total, desc=desc, unit="B", unit_scale=True, disable=desc is None or total < 32 << 20, leave=False) as bar:
        for file in files:
            start = bar.n
            if file.format == "txt":
                docs = _text_documents(file, documents == "blank_line", encoding, bar.update)
            elif file.format in ("csv", "tsv"):
                docs = _delimited_documents(file, wanted, encoding)
            elif file.format == "jsonl":
                docs = _jsonl_documents(file, wanted, encoding)
            else:
                docs = _parquet_documents(file, wanted)
            for doc in docs:
                lines = [clean for line in doc if (clean := normalize(line) if normalize else line)]
                if lines:
                    yield lines
            bar.update(max(0, start + file.path.stat().st_size - bar.n))


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter), without reading ahead further."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def split_sentences(line: str) -> list[str]:
    """Cut a line after sentence-ending punctuation (Chinese and Western), for sentence-pair sampling."""
    return [s.strip() for s in _SENTENCE_END.split(line) if s and s.strip()]
