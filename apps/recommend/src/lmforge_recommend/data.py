"""MovieLens files -> validated arrays: the item catalogue (``u.item``), users (``u.user``) and ratings (``ua.base``).

Rating files are checked line by line. Wrong column counts, non-numeric fields and duplicate
(user, item) pairs stop the load with one line naming ``file:line``: they mean a damaged or
concatenated file, and guessing which copy is right would change the results silently. Ratings of
item ids absent from the catalogue are skipped and counted (one warning names the first line):
MovieLens 100K itself rates item 267, whose ``u.item`` row is missing, and an item that has no
title cannot be shown or embedded. Blank lines are skipped.

Some copies of ``u.item`` went through a date parser that replaced month abbreviations inside
titles by their numbers (``Night03e on Elm Street`` for *Nightmare*, ``12eiver`` for *Deceiver*).
``load_items`` puts them back and logs how many titles it repaired: a two-digit month number
(01-12) glued to a letter is never part of a real MovieLens title, while ordinals (``12th``) are
left alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from lmforge.errors import DataError

log = logging.getLogger("lmforge.recommend")
_YEAR = re.compile(r"\((\d{4})\)\s*$")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = re.compile(r"(?:(?<=[A-Za-z])|(?=\d\d[a-z]))(0[1-9]|1[0-2])(?!(?:st|nd|rd|th)\b)(?!\d)")
_ENCODING = "latin-1"  # MovieLens 100K files are Latin-1 (accented titles); ASCII files read the same


@dataclass
class Catalogue:
    """The items: MovieLens ids, titles, release years and genre flags, row ``i`` describing item ``ids[i]``.

    Attributes:
        ids: Item ids (I,), in file order.
        titles: Titles with the year in brackets, as in ``u.item``.
        years: Release years (I,), 0 where unknown.
        genres: Genre flags (I, G).
        genre_names: The G genre names.
    """

    ids: np.ndarray
    titles: list[str]
    years: np.ndarray
    genres: np.ndarray
    genre_names: list[str]
    _index: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {int(item): i for i, item in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    def index(self, item_ids: np.ndarray | list[int]) -> np.ndarray:
        """Rows (N,) of known item ids (N,)."""
        return np.asarray([self._index[int(i)] for i in item_ids], dtype=np.int64)

    def genre_list(self, row: int) -> list[str]:
        """The genre names of catalogue row ``row``."""
        return [self.genre_names[g] for g in np.flatnonzero(self.genres[row])]


@dataclass
class Ratings:
    """Ratings as parallel arrays, one entry per (user, item) pair.

    Attributes:
        users: User ids (N,).
        items: Item ids (N,).
        ratings: Ratings (N,), float32.
        timestamps: Unix times (N,).
        source: The file they came from, for messages.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    source: str = "<memory>"

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, mask: np.ndarray, source: str | None = None) -> Ratings:
        """The ratings where ``mask`` (N,) is true."""
        return Ratings(self.users[mask], self.items[mask], self.ratings[mask], self.timestamps[mask], source or self.source)


def load_genres(path: str | Path) -> list[str]:
    """Genre names of ``u.genre`` (``name|index`` lines), in index order.

    Raises:
        DataError: A line is not ``name|index`` or the indexes are not 0..G-1.
    """
    path = Path(path)
    pairs = []
    for lineno, line in _lines(path):
        parts = line.split("|")
        if len(parts) != 2 or not parts[1].strip().isdigit():
            raise DataError(f"{path}:{lineno}: expected 'name|index', found {line!r}; fix or remove the line")
        pairs.append((int(parts[1]), parts[0]))
    if sorted(i for i, _ in pairs) != list(range(len(pairs))):
        raise DataError(f"{path}: genre indexes must be 0..{len(pairs) - 1} with none missing or repeated; fix the file")
    return [name for _, name in sorted(pairs)]


def load_items(path: str | Path, genre_names: list[str], repair: bool = True) -> Catalogue:
    """The catalogue of ``u.item``: ``id|title|release date|video date|URL|`` then one 0/1 flag per genre.

    Args:
        path: The file.
        genre_names: Names of the genre flags, in order (``load_genres``).
        repair: Put back month names that a date parser turned into numbers inside titles.

    Raises:
        DataError: A line has the wrong field count, a non-numeric id or flag, or repeats an id.
    """
    path = Path(path)
    width = 5 + len(genre_names)
    ids, titles, years, flags, seen = [], [], [], [], {}
    for lineno, line in _lines(path):
        parts = line.split("|")
        if len(parts) != width:
            raise DataError(f"{path}:{lineno}: expected {width} '|'-separated fields (id, title, dates, URL, {len(genre_names)} genre flags), "
                            f"found {len(parts)}; fix or remove the line")
        item = _int(parts[0], path, lineno, "item id")
        if item in seen:
            raise DataError(f"{path}:{lineno}: item id {item} already defined at line {seen[item]}; keep one of the two lines")
        if any(f not in ("0", "1") for f in parts[5:]):
            raise DataError(f"{path}:{lineno}: genre flags must be 0 or 1; fix the line")
        seen[item] = lineno
        ids.append(item)
        titles.append(parts[1].strip())
        years.append(_year(parts[1], parts[2]))
        flags.append([f == "1" for f in parts[5:]])
    if not ids:
        raise DataError(f"{path}: no items found; give a u.item-style file")
    if repair:
        fixed = [repair_title(t) for t in titles]
        changed = [(a, b) for a, b in zip(titles, fixed) if a != b]
        if changed:
            log.warning("%s: repaired %d titles whose month names had been replaced by numbers (e.g. %r -> %r)",
                        path, len(changed), *changed[0])
        titles = fixed
    return Catalogue(np.asarray(ids, dtype=np.int64), titles, np.asarray(years, dtype=np.int64),
                     np.asarray(flags, dtype=bool).reshape(len(ids), len(genre_names)), list(genre_names))


def repair_title(title: str) -> str:
    """``title`` with month numbers glued to letters turned back into month names (``Night03e`` -> ``Nightmare``)."""

    def month(match: re.Match[str]) -> str:
        name = _MONTHS[int(match.group(1)) - 1]
        inside_word = match.start() > 0 and title[match.start() - 1].isalpha()
        return name.lower() if inside_word else name

    return _MONTH_NUMBER.sub(month, title)


def load_users(path: str | Path) -> dict[int, dict[str, object]]:
    """Demographics of ``u.user`` (``id|age|gender|occupation|zip``) by user id.

    Raises:
        DataError: A line has the wrong field count or a non-numeric id or age.
    """
    path = Path(path)
    users: dict[int, dict[str, object]] = {}
    for lineno, line in _lines(path):
        parts = line.split("|")
        if len(parts) != 5:
            raise DataError(f"{path}:{lineno}: expected 5 '|'-separated fields (id, age, gender, occupation, zip), found {len(parts)}; fix the line")
        user = _int(parts[0], path, lineno, "user id")
        users[user] = {"age": _int(parts[1], path, lineno, "age"), "gender": parts[2], "occupation": parts[3], "zip": parts[4]}
    return users


def load_ratings(path: str | Path, known_items: Collection[int] | None = None, sep: str = "\t") -> Ratings:
    """Ratings of a MovieLens ``u.data``-style file: ``user, item, rating, timestamp`` per line.

    Args:
        path: The file.
        known_items: The catalogue's item ids; ratings of other ids are skipped and counted.
        sep: The column separator.

    Returns:
        The ratings in file order.

    Raises:
        DataError: Wrong column count, a non-numeric field, a duplicate (user, item) pair, or no ratings left.
    """
    path = Path(path)
    rows: list[tuple[int, int, float, int]] = []
    first: dict[tuple[int, int], int] = {}
    unknown, unknown_line = 0, 0
    for lineno, line in _lines(path):
        parts = line.split(sep)
        if len(parts) != 4:
            raise DataError(f"{path}:{lineno}: expected 4 columns (user, item, rating, timestamp) separated by {sep!r}, "
                            f"found {len(parts)}; fix or remove the line")
        user, item = _int(parts[0], path, lineno, "user id"), _int(parts[1], path, lineno, "item id")
        rating, stamp = _float(parts[2], path, lineno), _int(parts[3], path, lineno, "timestamp")
        if (user, item) in first:
            raise DataError(f"{path}:{lineno}: user {user} rated item {item} already at line {first[(user, item)]}; keep one of the two lines")
        first[(user, item)] = lineno
        if known_items is not None and item not in known_items:
            unknown, unknown_line = unknown + 1, unknown_line or lineno
            continue
        rows.append((user, item, rating, stamp))
    if unknown:
        log.warning("%s: skipped %d ratings of item ids missing from the catalogue (first at line %d)", path, unknown, unknown_line)
    if not rows:
        raise DataError(f"{path}: no usable ratings; give a file of 'user item rating timestamp' lines")
    users, items, ratings, stamps = zip(*rows)
    return Ratings(np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64), np.asarray(ratings, dtype=np.float32),
                   np.asarray(stamps, dtype=np.int64), str(path))


def write_ratings(ratings: Ratings, path: str | Path) -> Path:
    """Write ``ratings`` as a tab-separated ``ua.base``-style file (ratings as integers where they are whole)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for u, i, r, t in zip(ratings.users, ratings.items, ratings.ratings, ratings.timestamps):
            f.write(f"{u}\t{i}\t{int(r) if float(r).is_integer() else float(r)}\t{t}\n")
    return path


def _lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise DataError(f"{path} does not exist; give the path of a MovieLens file")
    text = path.read_text(encoding=_ENCODING)
    return [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]


def _int(value: str, path: Path, lineno: int, what: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise DataError(f"{path}:{lineno}: {what} {value!r} is not an integer; fix the line") from None


def _float(value: str, path: Path, lineno: int) -> float:
    try:
        rating = float(value.strip())
    except ValueError:
        rating = float("nan")
    if not np.isfinite(rating):
        raise DataError(f"{path}:{lineno}: rating {value!r} is not a number; fix the line")
    return rating


def _year(title: str, date: str) -> int:
    match = _YEAR.search(title.strip())
    if match:
        return int(match.group(1))
    tail = date.strip()[-4:]
    return int(tail) if tail.isdigit() else 0
