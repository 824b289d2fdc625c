"""Extractive question answering data: SQuAD JSON (v1.1, v2.0) and JSONL, windowed features, best answer spans.

Answers keep every reference (training takes the first); an ``answer_start`` that does not point at the
answer text is moved to the nearest occurrence of the text and counted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lmforge.data.sources import BadRows, decode
from lmforge.data.split import group_split_indices
from lmforge.errors import DataError, LmforgeError

log = logging.getLogger("lmforge.data")


class Answer(NamedTuple):
    """A reference answer: its text and the character where it starts in the context."""

    text: str
    start: int


@dataclass
class QAExamples:
    """Questions of one file; ``answers`` is None for unlabeled input and ``[]`` for a v2 unanswerable question.

    ``titles`` name each question's article (SQuAD JSON) or are empty (JSONL without ``title``);
    ``lines`` are JSONL line numbers, None for SQuAD JSON, whose questions are named by id.
    """

    path: Path
    ids: list[str]
    titles: list[str]
    contexts: list[str]
    questions: list[str]
    answers: list[list[Answer]] | None
    lines: list[int] | None = None
    repairs: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: Sequence[int]) -> QAExamples:
        """The questions at ``index``, in that order."""
        pick = lambda xs: None if xs is None else [xs[i] for i in index]  # noqa: E731
        return replace(self, ids=pick(self.ids), titles=pick(self.titles), contexts=pick(self.contexts),
                       questions=pick(self.questions), answers=pick(self.answers), lines=pick(self.lines))

    def where(self, i: int) -> str:
        """``file, line N`` or ``file, question ID`` of question ``i``, for messages."""
        return f"{self.path}, line {self.lines[i]}" if self.lines is not None else f"{self.path}, question {self.ids[i]}"

    def first_answers(self) -> list[Answer | None]:
        """The training answer of each question: its first reference, None when it has none."""
        if self.answers is None:
            raise LmforgeError(f"{self.path} has no answers to train on; give a file with 'answers'")
        return [refs[0] if refs else None for refs in self.answers]


def locate_answer(context: str, text: str, start: int) -> int | None:
    """Where ``text`` starts in ``context``: at ``start`` if it is there, else its occurrence nearest to ``start``; None if absent."""
    if context[start:start + len(text)] == text and start >= 0:
        return start
    found, at = [], context.find(text)
    while at != -1:
        found.append(at)
        at = context.find(text, at + 1)
    return min(found, key=lambda a: (abs(a - start), a)) if found else None


class _Reader:
    """Collects questions, checking and repairing answers as they come."""

    def __init__(self, path: Path, bad: BadRows) -> None:
        self.path, self.bad = path, bad
        self.rows: list[tuple[str, str, str, str, list[Answer] | None, int | None]] = []
        self.repairs, self.first_repair = 0, ""

    def add(self, qid: str, title: str, context: Any, question: Any, raw: Any, impossible: bool, line: int | None) -> None:
        where = f"{self.path}, line {line}" if line is not None else f"{self.path}, question {qid}"
        for key, value in (("context", context), ("question", question)):
            if not isinstance(value, str) or not value.strip():
                self.bad.report(f"{where}: the {key} is empty; fill it in or delete the question")
                return
        answers = None if raw is None else self._answers(where, context, _answer_pairs(raw))
        if answers is None and raw is not None:
            return
        if answers == [] and raw is not None and not impossible and line is None:
            self.bad.report(f"{where}: no answers and not marked is_impossible; add an answer or mark it (SQuAD 2.0)")
            return
        self.rows.append((qid, title, context, question, answers, line))

    def _answers(self, where: str, context: str, pairs: list[tuple[Any, Any]] | None) -> list[Answer] | None:
        if pairs is None:
            self.bad.report(f"{where}: 'answers' must be a list of {{'text', 'answer_start'}}")
            return None
        answers = []
        for text, start in pairs:
            if not isinstance(text, str) or not text or not isinstance(start, int):
                self.bad.report(f"{where}: an answer needs a non-empty 'text' and an integer 'answer_start'")
                return None
            found = locate_answer(context, text, start)
            if found is None:
                self.bad.report(f"{where}: the answer {text!r} does not occur in the context; fix the answer text")
                return None
            if found != start:
                self.repairs += 1
                self.first_repair = self.first_repair or where
            answers.append(Answer(text, found))
        return answers


def _answer_pairs(raw: Any) -> list[tuple[Any, Any]] | None:
    """(text, start) pairs of SQuAD ``[{text, answer_start}]`` or columnar ``{text: [...], answer_start: [...]}`` answers."""
    if isinstance(raw, dict) and isinstance(raw.get("text"), list) and isinstance(raw.get("answer_start"), list):
        return list(zip(raw["text"], raw["answer_start"]))
    if isinstance(raw, list) and all(isinstance(a, dict) for a in raw):
        return [(a.get("text"), a.get("answer_start")) for a in raw]
    return None


def _read_squad_json(reader: _Reader, data: Any) -> None:
    """Every question of a SQuAD-format ``{"data": [{"title", "paragraphs": [{"context", "qas"}]}]}`` object."""
    if not isinstance(data, list):
        raise DataError(f"{reader.path}: 'data' must be a list of articles (SQuAD format)")
    for k, article in enumerate(data):
        title = str(article.get("title") or f"article {k}")
        for paragraph in article.get("paragraphs", []):
            for n, qa in enumerate(paragraph.get("qas", [])):
                qid = str(qa.get("id", f"{title}/{n}"))
                reader.add(qid, title, paragraph.get("context"), qa.get("question"), qa.get("answers"),
                           bool(qa.get("is_impossible", False)), None)


def _read_qa_lines(reader: _Reader, text: str) -> None:
    """Every question of a JSONL file of ``{id?, title?, context, question, answers?}`` rows."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            reader.bad.report(f"{reader.path}, line {number}: not valid JSON ({exc.msg})")
            continue
        if not isinstance(row, dict):
            reader.bad.report(f"{reader.path}, line {number}: expected a JSON object per line")
            continue
        reader.add(str(row.get("id", f"line {number}")), str(row.get("title") or ""), row.get("context"), row.get("question"),
                   row.get("answers"), bool(row.get("is_impossible", False)), number)


def read_squad(path: str | Path, fmt: str = "auto", encoding: str = "utf-8", on_bad_rows: str = "error") -> QAExamples:
    """Read SQuAD JSON (v1.1 or v2.0) or QA JSONL into :class:`QAExamples`.

    Args:
        path: The file.
        fmt: ``auto`` (a whole-file JSON object with ``data`` is SQuAD JSON, else JSONL), ``squad`` or ``jsonl``.
        encoding: Text encoding.
        on_bad_rows: ``error`` or ``skip``: questions whose answer text is not in the context, or that lack
            a context or question, raise or are dropped and counted.

    Raises:
        DataError: The file is missing, holds no usable question, or a question is bad under ``error``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} not found")
    bad = BadRows(on_bad_rows)
    text = decode(path, encoding, bad)
    reader = _Reader(path, bad)
    whole = None
    if fmt in ("auto", "squad") and text.lstrip().startswith("{"):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None
    if fmt == "squad" and not (isinstance(whole, dict) and "data" in whole):
        raise DataError(f"{path} is not SQuAD JSON (one object with 'data'); set the format to jsonl for one question per line")
    if isinstance(whole, dict) and "data" in whole and fmt != "jsonl":
        _read_squad_json(reader, whole["data"])
    else:
        _read_qa_lines(reader, text)
    bad.summary(path)
    if not reader.rows:
        raise DataError(f"{path} holds no usable questions; check that rows have 'context', 'question' and 'answers'")
    if reader.repairs:
        log.warning("%s: %d answer_start values did not point at the answer text (first at %s); moved to the nearest occurrence",
                    path, reader.repairs, reader.first_repair.split(", ", 1)[1])
    ids, titles, contexts, questions, answers, lines = map(list, zip(*reader.rows))
    labeled = any(a is not None for a in answers)
    return QAExamples(path, ids, titles, contexts, questions, [a or [] for a in answers] if labeled else None,
                      lines if lines[0] is not None else None, reader.repairs)


def split_by_article(examples: QAExamples, validation_share: float, seed: int) -> tuple[QAExamples, QAExamples]:
    """(train, validation) questions with no article in both (no shared paragraph where titles are absent)."""
    groups = [title or context for title, context in zip(examples.titles, examples.contexts)]
    kept, held = group_split_indices(groups, validation_share, seed)
    return examples.subset(kept), examples.subset(held)


@dataclass
class QAFeatures:
    """Tokenized windows: question + one stretch of context each, unpadded.

    ``offsets[k][t]`` is the (start, end) in the example's context of token ``t`` of window ``k``, None for
    question and special tokens; ``example_index[k]`` is the example the window comes from. Start and end
    positions (training only) point at the answer's first and last token, or at ``cls_index`` when the
    answer is not inside the window (or the question has none).
    """

    input_ids: list[list[int]]
    attention_mask: list[list[int]]
    token_type_ids: list[list[int]] | None
    offsets: list[list[tuple[int, int] | None]]
    example_index: list[int]
    cls_index: list[int]
    start_positions: list[int] | None = None
    end_positions: list[int] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def _check_room(tokenizer: Any, questions: Sequence[str], max_length: int, stride: int) -> None:
    """Refuse windows whose question leaves no context tokens, or no more than the stride."""
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    lengths = [len(ids) for ids in tokenizer(list(questions), add_special_tokens=False)["input_ids"]]
    for i, length in enumerate(lengths):
        room = max_length - specials - length
        if room <= stride:
            raise LmforgeError(f"question {i} takes {length} tokens, leaving {max(room, 0)} context tokens per window of "
                               f"max_length {max_length}, which must exceed the stride {stride}; raise max_length or lower the stride")


def _answer_positions(sequence_ids: list[int | None], offsets: list[Any], answer: Answer | None, cls: int) -> tuple[int, int]:
    """First and last token of ``answer`` in one window, or (cls, cls) when it is not wholly inside."""
    context = [t for t, s in enumerate(sequence_ids) if s == 1]
    if answer is None or not context:
        return cls, cls
    first, last = context[0], context[-1]
    start, end = answer.start, answer.start + len(answer.text)
    if offsets[first][0] > start or offsets[last][1] < end:
        return cls, cls
    s = first
    while s <= last and offsets[s][0] <= start:
        s += 1
    e = last
    while e >= first and offsets[e][1] >= end:
        e -= 1
    return s - 1, e + 1


def qa_features(tokenizer: Any, questions: Sequence[str], contexts: Sequence[str], max_length: int, stride: int,
                answers: Sequence[Answer | None] | None = None) -> QAFeatures:
    """Windows of (question, context) pairs for an extractive QA model, with answer positions when given.

    Contexts longer than a window are split into windows that overlap by ``stride`` tokens; the
    question is repeated in each.

    Args:
        tokenizer: A fast tokenizer (offsets and sequence ids are needed).
        questions: One question per example.
        contexts: One context per example.
        max_length: Tokens per window, question and special tokens included.
        stride: Tokens of context shared by consecutive windows; 0 turns windowing off.
        answers: The training answer of each example (None for an unanswerable one); omit for prediction.

    Raises:
        LmforgeError: The tokenizer is not fast, a question leaves no room for context, or a context
            needs more than one window while ``stride`` is 0.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise LmforgeError("extractive QA needs a fast tokenizer (offsets); load it with use_fast=True")
    _check_room(tokenizer, questions, max_length, stride)
    enc = tokenizer(list(questions), list(contexts), truncation="only_second", max_length=max_length, stride=stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True)
    mapping = [int(i) for i in enc["overflow_to_sample_mapping"]]
    if stride == 0 and len(mapping) > len(questions):
        i = next(i for i, (a, b) in enumerate(zip(mapping, mapping[1:])) if a == b)
        raise LmforgeError(f"the context of example {i} does not fit one window of max_length {max_length} and stride is 0 "
                           f"(no windowing); set a stride such as {max_length // 4} or raise max_length")
    offsets, cls_index, starts, ends = [], [], [], []
    for k, example in enumerate(mapping):
        sequence_ids = enc.sequence_ids(k)
        ids = enc["input_ids"][k]
        cls = ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in ids else 0
        window = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][k], sequence_ids)]
        offsets.append(window)
        cls_index.append(cls)
        if answers is not None:
            s, e = _answer_positions(sequence_ids, window, answers[example], cls)
            starts.append(s)
            ends.append(e)
    return QAFeatures(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"), offsets, mapping, cls_index,
                      starts if answers is not None else None, ends if answers is not None else None)


def _best_in_window(start: np.ndarray, end: np.ndarray, offsets: list[Any], max_answer_length: int,
                    n_best: int) -> tuple[float, int, int] | None:
    """(score, first token, last token) of the best span among the ``n_best`` top starts and ends of one window."""
    best = None
    for s in np.argsort(start)[::-1][:n_best]:
        if offsets[s] is None:
            continue
        for e in np.argsort(end)[::-1][:n_best]:
            if offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                continue
            score = float(start[s] + end[e])
            if best is None or score > best[0]:
                best = (score, int(s), int(e))
    return best


def best_answers(start_logits: Sequence[Sequence[float]] | np.ndarray, end_logits: Sequence[Sequence[float]] | np.ndarray,
                 features: QAFeatures, contexts: Sequence[str], max_answer_length: int = 30, n_best: int = 20,
                 allow_null: bool = False) -> list[dict[str, Any]]:
    """The best answer span of each example across all its windows.

    A span scores its start logit plus its end logit; spans must lie in the context, end no earlier than
    they start, and span at most ``max_answer_length`` tokens. With ``allow_null`` (SQuAD 2.0) the answer is
    empty when the lowest null score (start + end logit at the CLS token, over the windows) beats the best span.

    Args:
        start_logits: Per window, the start logit of each token, shape (F, T) (padding beyond a window is ignored).
        end_logits: The same for end logits.
        features: The windows the logits are for.
        contexts: The examples' contexts.
        max_answer_length: Longest answer, in tokens.
        n_best: Start and end candidates tried per window.
        allow_null: Whether "no answer" may win.

    Returns:
        Per example ``{"text", "score", "start", "end"}``, character offsets into its context (-1 and "" for no answer).
    """
    windows: dict[int, list[int]] = {}
    for k, example in enumerate(features.example_index):
        windows.setdefault(example, []).append(k)
    out = []
    for i, context in enumerate(contexts):
        best, null = None, float("inf")
        for k in windows.get(i, []):
            n = len(features.offsets[k])
            start, end = np.asarray(start_logits[k], dtype=float)[:n], np.asarray(end_logits[k], dtype=float)[:n]
            cls = features.cls_index[k]
            null = min(null, float(start[cls] + end[cls]))
            found = _best_in_window(start, end, features.offsets[k], max_answer_length, n_best)
            if found is not None and (best is None or found[0] > best[0]):
                best = (found[0], features.offsets[k][found[1]][0], features.offsets[k][found[2]][1])
        if best is None or (allow_null and null > best[0]):
            out.append({"text": "", "score": null if windows.get(i) else None, "start": -1, "end": -1})
        else:
            out.append({"text": context[best[1]:best[2]], "score": best[0], "start": best[1], "end": best[2]})
    return out
