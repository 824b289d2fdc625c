"""Reading items from CSV and JSONL files and RSS/Atom feeds, and checking them before they are scored.

Every reader yields :class:`Raw` records and never raises on a bad record: a record that cannot be
read becomes a ``Raw`` with ``problem`` set, so the caller counts and logs it. :func:`check` turns a
``Raw`` into a :class:`Clean` item or a reason it was rejected, and notes what it repaired.
"""

from __future__ import annotations

import calendar
import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import feedparser
from lmforge.errors import DataError

from lmforge_monitor.config import IngestConfig

log = logging.getLogger("lmforge_monitor")
TEXT_KEYS = ("text", "body", "content", "summary")
TIME_KEYS = ("timestamp", "time", "published", "date", "created_at")


@dataclass
class Raw:
    """One record as read: fields (strings), where it came from, and a problem if it could not be read."""

    fields: dict[str, Any]
    where: str
    problem: str | None = None
    repairs: list[str] = field(default_factory=list)


@dataclass
class Clean:
    """A checked item: UTC epoch seconds, source, text (cut to the limit), optional title and URL."""

    ts: int
    source: str
    text: str
    title: str | None
    url: str | None
    where: str
    repairs: list[str] = field(default_factory=list)


def decode(data: bytes) -> tuple[str, bool]:
    """Text of ``data`` and whether it needed repair: UTF-8, else Windows-1252 (news feeds' usual other encoding)."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), True


def read_jsonl(path: Path, source: str | None = None) -> Iterator[Raw]:
    """One record per line; a line that is not a JSON object is a ``malformed`` record."""
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            text, repaired = decode(line)
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield Raw({}, where, f"malformed: {exc.msg}")
                continue
            if not isinstance(obj, dict):
                yield Raw({}, where, "malformed: not a JSON object")
                continue
            if source and not obj.get("source"):
                obj["source"] = source
            yield Raw(obj, where, repairs=["non_utf8"] if repaired else [])


def read_csv(path: Path, source: str | None = None) -> Iterator[Raw]:
    """One record per row of a CSV with a header (timestamp, source, text, optional title, url)."""
    data, repaired = decode(path.read_bytes())
    reader = csv.DictReader(io.StringIO(data, newline=""))
    if not reader.fieldnames or not any(k in reader.fieldnames for k in TEXT_KEYS):
        raise DataError(f"{path} line 1: no text column (found {reader.fieldnames}); name one column text")
    for row in reader:
        where = f"{path.name}:{reader.line_num}"
        if None in row:
            yield Raw({}, where, "malformed: more fields than the header")
            continue
        if source and not row.get("source"):
            row["source"] = source
        yield Raw(dict(row), where, repairs=["non_utf8"] if repaired else [])


def read_feed(location: str, source: str | None = None) -> Iterator[Raw]:
    """Entries of an RSS or Atom feed (file or URL); a feed that does not parse is one ``malformed`` record."""
    feed = feedparser.parse(location)
    name = source or feed.feed.get("title") or Path(location).name
    if feed.bozo and not feed.entries:
        yield Raw({}, location, f"malformed: {type(feed.bozo_exception).__name__}")
        return
    for i, entry in enumerate(feed.entries, 1):
        parsed = entry.get("published_parsed") or entry.get("updated_parsed")
        stamp = calendar.timegm(parsed) if parsed else None
        body = entry.get("summary") or ""
        title = entry.get("title") or ""
        text = f"{title}. {body}".strip(". ") if title and body and title not in body else (body or title)
        yield Raw({"timestamp": stamp, "source": name, "text": text, "title": title or None, "url": entry.get("link")},
                  f"{Path(location).name}#{i}")


def read_any(path: Path, source: str | None = None) -> Iterator[Raw]:
    """Records of a file, by its extension: .jsonl/.json lines, .csv, .xml/.rss/.atom feeds.

    Raises:
        DataError: The file is missing or of an unknown kind.
    """
    if not str(path).startswith(("http://", "https://")) and not path.is_file():
        raise DataError(f"{path} does not exist; give a .jsonl, .csv or RSS/Atom (.xml, .rss, .atom) file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return read_jsonl(path, source)
    if suffix == ".csv":
        return read_csv(path, source)
    if suffix in (".xml", ".rss", ".atom") or str(path).startswith(("http://", "https://")):
        return read_feed(str(path), source)
    raise DataError(f"{path}: unknown kind {suffix!r}; use .jsonl, .csv, or .xml/.rss/.atom for feeds")


def parse_time(value: Any) -> int | None:
    """UTC epoch seconds of a number (seconds, or milliseconds when large) or an ISO 8601 string; None when absent.

    Raises:
        ValueError: The value is present but not a time.
    """
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit()):
        seconds = float(value)
        return int(seconds / 1000 if seconds > 1e11 else seconds)
    stamp = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return int(stamp.timestamp())


def _first(fields: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((fields[k] for k in keys if fields.get(k) not in (None, "")), None)


def check(raw: Raw, cfg: IngestConfig, now: float) -> tuple[Clean | None, str | None, list[str]]:
    """``(item, None, repairs)`` for a usable record, ``(None, reason, repairs)`` for a rejected one.

    Reasons: ``malformed``, ``empty_text``, ``bad_timestamp``, ``missing_timestamp`` (when configured to skip),
    ``future_timestamp``. Repairs: ``non_utf8``, ``huge`` (cut to ``max_chars``), ``missing_timestamp`` (set to now).
    """
    repairs = list(raw.repairs)
    if raw.problem:
        return None, "malformed", repairs
    text = _first(raw.fields, TEXT_KEYS)
    if not isinstance(text, str) or not text.strip():
        return None, "empty_text", repairs
    text = text.strip()
    if len(text) > cfg.max_chars:
        text, repairs = text[:cfg.max_chars], [*repairs, "huge"]
    try:
        ts = parse_time(_first(raw.fields, TIME_KEYS))
    except (ValueError, TypeError, OverflowError):
        return None, "bad_timestamp", repairs
    if ts is None:
        if cfg.missing_timestamp == "skip":
            return None, "missing_timestamp", repairs
        ts, repairs = int(now), [*repairs, "missing_timestamp"]
    if ts > now + cfg.future_tolerance_s:
        return None, "future_timestamp", repairs
    source = str(raw.fields.get("source") or "unknown")[:200]
    title, url = raw.fields.get("title"), raw.fields.get("url") or raw.fields.get("link")
    return Clean(ts, source, text, str(title) if title else None, str(url) if url else None, raw.where, repairs), None, repairs
