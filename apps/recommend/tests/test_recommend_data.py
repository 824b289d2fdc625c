"""Loaders: one-line errors naming file:line, skipped unknown items, repaired titles."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from lmforge.errors import DataError

from lmforge_recommend.data import load_genres, load_items, load_ratings, load_users, repair_title
from lmforge_recommend.text import audience_texts, item_texts


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "expected"), [
    ("1\t2\t3\t4\n1\t3\t4\n", r"r\.tsv:2: expected 4 columns"),
    ("1\t2\t3\t4\nx\t3\t4\t5\n", r"r\.tsv:2: user id 'x' is not an integer"),
    ("1\t2.5\t3\t4\n", r"r\.tsv:1: item id '2.5' is not an integer"),
    ("1\t2\tgood\t4\n", r"r\.tsv:1: rating 'good' is not a number"),
    ("1\t2\t3\t4\n\n1\t2\t5\t9\n", r"r\.tsv:3: user 1 rated item 2 already at line 1"),
    ("\n\n", r"no usable ratings"),
])
def test_rating_errors_name_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(DataError, match=expected) as info:
        load_ratings(write(tmp_path / "r.tsv", text))
    assert "\n" not in str(info.value)


def test_unknown_items_are_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "r.tsv", "1\t1\t5\t10\n1\t99\t4\t11\n2\t99\t3\t12\n2\t2\t3\t12\n")
    with caplog.at_level(logging.WARNING, logger="lmforge.recommend"):
        r = load_ratings(path, known_items={1, 2})
    assert r.items.tolist() == [1, 2]
    assert "skipped 2 ratings" in caplog.text and "first at line 2" in caplog.text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_ratings(tmp_path / "nope.tsv")


def test_items_and_genres(movie_dir: Path) -> None:
    genres = load_genres(movie_dir / "u.genre")
    cat = load_items(movie_dir / "u.item", genres)
    assert len(cat) == 30 and genres[1] == "Action"
    assert cat.titles[0] == "Robot Space War 1 (1981)" and cat.years[0] == 1981
    assert cat.genre_list(16) == ["Comedy"] and 30 in cat and 31 not in cat


def test_item_errors(movie_dir: Path, tmp_path: Path) -> None:
    genres = load_genres(movie_dir / "u.genre")
    good = (movie_dir / "u.item").read_text().splitlines()
    with pytest.raises(DataError, match=r"u2\.item:3: item id 1 already defined at line 1"):
        load_items(write(tmp_path / "u2.item", "\n".join([good[0], good[1], good[0]])), genres)
    with pytest.raises(DataError, match=r"u3\.item:1: expected 9 '\|'-separated fields"):
        load_items(write(tmp_path / "u3.item", "1|Title (1990)|x\n"), genres)
    with pytest.raises(DataError, match=r"g:2: expected 'name\|index'"):
        load_genres(write(tmp_path / "g", "a|0\nb\n"))


@pytest.mark.parametrize(("broken", "fixed"), [
    ("Night03e on Elm Street, A (1984)", "Nightmare on Elm Street, A (1984)"),
    ("06gle206gle (1997)", "Jungle2Jungle (1997)"),
    ("Hunt for Red 10ober, The (1990)", "Hunt for Red October, The (1990)"),
    ("Apollo 13 (1995)", "Apollo 13 (1995)"),
    ("The 12th Man (1990)", "The 12th Man (1990)"),
    ("Seven (Se7en) (1995)", "Seven (Se7en) (1995)"),
])
def test_repair_title(broken: str, fixed: str) -> None:
    assert repair_title(broken) == fixed


def test_users_and_audience_texts(movie_dir: Path, tmp_path: Path) -> None:
    users = load_users(write(tmp_path / "u.user", "1|24|M|technician|85711\n2|53|F|writer|94043\n3|30|M|writer|1\n"))
    assert users[2] == {"age": 53, "gender": "F", "occupation": "writer", "zip": "94043"}
    with pytest.raises(DataError, match=r"u2\.user:1: age 'old' is not an integer"):
        load_users(write(tmp_path / "u2.user", "1|old|M|x|1\n"))
    cat = load_items(movie_dir / "u.item", load_genres(movie_dir / "u.genre"))
    seen = sp.csr_matrix(np.array([[1] + [0] * 29, [1] + [0] * 29, [0] * 29 + [1]], dtype=np.float32))
    texts = audience_texts(cat, seen, np.array([1, 3, 2]), users)
    assert texts[0] == item_texts(cat)[0] + " Watched mostly by men aged 18-24, often technicians and writers."
    assert texts[1] == item_texts(cat)[1]  # nobody rated it: no audience sentence
