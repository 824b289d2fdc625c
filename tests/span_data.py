"""Toy NER and QA files for the token/span task tests, built from the tiny vocabulary's words."""

from __future__ import annotations

import json
import random
from pathlib import Path

from forge_testing import FILLER, NEGATIVE, POSITIVE


def toy_sentences(n: int, seed: int = 0) -> list[list[tuple[str, str]]]:
    """Sentences of filler words with PER entities (Title-cased positive words) and LOC ones (negative words)."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        words = [(w, "O") for w in rng.sample(FILLER, rng.randint(2, 5))]
        for kind, pool in (("PER", POSITIVE), ("LOC", NEGATIVE)):
            if rng.random() < 0.7:
                entity = [w.title() for w in rng.sample(pool, rng.randint(1, 2))]
                at = rng.randint(0, len(words))
                words[at:at] = [(w, ("B-" if j == 0 else "I-") + kind) for j, w in enumerate(entity)]
        sentences.append(words)
    return sentences


def write_conll(path: Path, sentences: list[list[tuple[str, str]]], per_document: int = 10) -> Path:
    """A CoNLL file (token POS chunk tag) with a -DOCSTART- line every ``per_document`` sentences."""
    lines = []
    for i, sentence in enumerate(sentences):
        if i % per_document == 0:
            lines += ["-DOCSTART- -X- -X- O", ""]
        lines += [f"{word} NN O {tag}" for word, tag in sentence] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def toy_questions(n: int, seed: int = 0) -> list[dict]:
    """QA rows: a context of filler words with one positive word, which is the answer to "what is good ?"."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = rng.sample(FILLER, rng.randint(3, 8))
        answer = rng.choice(POSITIVE)
        words.insert(rng.randint(0, len(words)), answer)
        context = " ".join(words)
        rows.append({"id": f"q{i}", "title": f"article {i % 12}", "context": context, "question": "what is good ?",
                     "answers": [{"text": answer, "answer_start": context.index(answer)}]})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """One JSON object per line."""
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_squad(path: Path, rows: list[dict]) -> Path:
    """The rows as SQuAD JSON, one paragraph per row, grouped into articles by title."""
    articles: dict[str, list] = {}
    for r in rows:
        qa = {"id": r["id"], "question": r["question"], "answers": r["answers"]}
        articles.setdefault(r["title"], []).append({"context": r["context"], "qas": [qa]})
    data = [{"title": t, "paragraphs": p} for t, p in articles.items()]
    path.write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
    return path
