"""Item texts and text-side scores: what each film says about itself, and how close it is to a user's history.

An item's text is its title, release year, decade and genres, all from ``u.item``, so a film with
no ratings yet has the same kind of text as any other. ``audience_texts`` adds who rated the film
(aggregated ``u.user`` demographics); that comes from ratings, so it exists only for warm items.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import scipy.sparse as sp

from lmforge_recommend.data import Catalogue

_AGE_BANDS = ((18, "under 18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (56, "45-55"), (200, "over 55"))


def item_texts(catalogue: Catalogue) -> list[str]:
    """One text per catalogue row: ``"Toy Story (1995). Animation, Children's, Comedy. A 1990s film from 1995."``."""
    texts = []
    for row, title in enumerate(catalogue.titles):
        genres = ", ".join(g for g in catalogue.genre_list(row) if g != "unknown") or "unknown genre"
        year = int(catalogue.years[row])
        when = f"A {year // 10 * 10}s film from {year}." if year else "Release year unknown."
        texts.append(f"{title}. {genres}. {when}")
    return texts


def audience_texts(catalogue: Catalogue, seen: sp.csr_matrix, user_ids: np.ndarray, users: dict[int, dict[str, object]]) -> list[str]:
    """Item texts with a sentence on their raters: majority gender, commonest age band and occupations.

    Args:
        catalogue: The items.
        seen: Binary user-item matrix (U, I) of the training ratings.
        user_ids: User ids (U,) of the matrix rows.
        users: Demographics by user id (``load_users``).
    """
    base = item_texts(catalogue)
    seen_csc = seen.tocsc()
    profile = [users.get(int(u), {}) for u in user_ids]
    out = []
    for col, text in enumerate(base):
        raters = [profile[r] for r in seen_csc.indices[seen_csc.indptr[col]:seen_csc.indptr[col + 1]] if profile[r]]
        out.append(f"{text} {_audience(raters)}" if raters else text)
    return out


def _audience(raters: list[dict[str, object]]) -> str:
    men = sum(r["gender"] == "M" for r in raters) / len(raters)
    ages = Counter(next(name for limit, name in _AGE_BANDS if int(r["age"]) < limit) for r in raters)
    jobs = Counter(str(r["occupation"]) for r in raters if r["occupation"] not in ("none", "other"))
    who = "men" if men >= 0.6 else "women" if men <= 0.4 else "men and women"
    often = f", often {' and '.join(job + 's' for job, _ in jobs.most_common(2))}" if jobs else ""
    return f"Watched mostly by {who} aged {ages.most_common(1)[0][0]}{often}."


def profiles(embeddings: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
    """Unit user profiles (B, D): the weighted mean of the embeddings (I, D) of each history row's items (B, I)."""
    sums = np.asarray(history @ embeddings)  # (B, D)
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)


def text_scores(embeddings: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
    """Cosine similarity (B, I) of every item's embedding to each user's profile."""
    return profiles(embeddings, history) @ embeddings.T
