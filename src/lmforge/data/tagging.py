"""Token-tagging (NER) data: CoNLL, token JSONL and character-span JSONL files read into IOB2 sentences.

Every tag scheme (BIO/IOB2, IOB1, BIOES, BILOU, BMES) becomes IOB2 on read; sentences keep their words,
the text they came from and each word's character offsets, so predictions map back to character spans.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lmforge.data.segment import is_chinese
from lmforge.data.sources import BadRows, decode
from lmforge.data.split import group_split_indices
from lmforge.errors import DataError, LmforgeError

log = logging.getLogger("lmforge.data")

Span = tuple[int, int, str]
IGNORE_INDEX = -100
DOCSTART = "-DOCSTART-"
# Each scheme's prefixes as roles: "begin", "inside" (continues an entity), "end" (continues and closes), "single".
SCHEMES: dict[str, dict[str, str]] = {
    "bio": {"B": "begin", "I": "inside"},
    "iob1": {"B": "begin", "I": "inside"},
    "bioes": {"B": "begin", "I": "inside", "E": "end", "S": "single"},
    "bilou": {"B": "begin", "I": "inside", "L": "end", "U": "single"},
    "bmes": {"B": "begin", "M": "inside", "E": "end", "S": "single"},
}
SCHEME_ALIASES = {"iob2": "bio", "bmeso": "bmes", "iobes": "bioes"}
CONLL_SUFFIXES = {".txt", ".conll", ".conllu", ".bio", ".bmes", ".bioes", ".iob", ".iob2", ".tsv", ".ner"}
_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")


@dataclass
class TaggedExamples:
    """Sentences of one file; ``tags`` are IOB2 (None for unlabeled input), ``lines`` where each sentence starts.

    ``offsets[i][j]`` is the (start, end) of word ``j`` in ``texts[i]``; ``documents[i]`` groups sentences
    of one document (a CoNLL ``-DOCSTART-`` block), so splits can keep documents whole.
    """

    path: Path
    words: list[list[str]]
    tags: list[list[str]] | None
    lines: list[int]
    documents: list[str]
    texts: list[str]
    offsets: list[list[tuple[int, int]]]
    scheme: str = "bio"
    repairs: int = 0

    def __len__(self) -> int:
        return len(self.words)

    def subset(self, index: Sequence[int]) -> TaggedExamples:
        """The sentences at ``index``, in that order."""
        pick = lambda xs: None if xs is None else [xs[i] for i in index]  # noqa: E731
        return replace(self, words=pick(self.words), tags=pick(self.tags), lines=pick(self.lines), documents=pick(self.documents),
                       texts=pick(self.texts), offsets=pick(self.offsets))

    def where(self, i: int) -> str:
        """``file, line N`` of sentence ``i``, for messages."""
        return f"{self.path}, line {self.lines[i]}"

    def types(self) -> list[str]:
        """The entity types that occur in the tags, sorted."""
        return sorted({tag[2:] for sentence in self.tags or [] for tag in sentence if tag != "O"})

    def entities(self, i: int) -> list[Span]:
        """Character spans (start, end, type) of sentence ``i``'s gold entities in ``texts[i]``."""
        if self.tags is None:
            raise LmforgeError(f"{self.path} is unlabeled; it has no entities to list")
        return word_to_char_spans(bio_to_spans(self.tags[i]), self.offsets[i])


def label_names(types: Sequence[str]) -> list[str]:
    """IOB2 label names of a model head: ``O``, then ``B-T`` and ``I-T`` for each type ``T``."""
    return ["O"] + [f"{prefix}-{t}" for t in types for prefix in ("B", "I")]


def split_tag(tag: str) -> tuple[str, str | None]:
    """(prefix, type) of a tag; ``("O", None)`` for ``O``; a tag without ``-`` gives ``("", tag)``."""
    if tag == "O":
        return "O", None
    prefix, dash, kind = tag.partition("-")
    return (prefix.upper(), kind) if dash and kind else ("", tag)


def detect_scheme(sentences: Sequence[Sequence[str]]) -> str:
    """The tag scheme ``sentences`` are written in, from their prefixes.

    M marks BMES, L/U BILOU, E/S BIOES; B/I tags are IOB1 when no B starts an entity after a non-entity
    (IOB1 writes B only between two touching entities of one type) and some I does, else BIO (IOB2).
    """
    prefixes, b_starts, i_starts = set(), 0, 0
    for sentence in sentences:
        before: str | None = None
        for tag in sentence:
            prefix, kind = split_tag(tag)
            prefixes.add(prefix)
            b_starts += prefix == "B" and kind != before
            i_starts += prefix == "I" and kind != before
            before = kind
    for marks, scheme in (({"M"}, "bmes"), ({"L", "U"}, "bilou"), ({"E", "S"}, "bioes")):
        if prefixes & marks:
            return scheme
    return "iob1" if b_starts == 0 and i_starts > 0 else "bio"


def to_iob2(tags: Sequence[str], scheme: str) -> tuple[list[str], list[int]]:
    """Tags of ``scheme`` as IOB2, and the positions of inside/end tags that had no begin (read as begins).

    In IOB1 an I after a different type is a legitimate begin and is not counted.

    Raises:
        LmforgeError: A tag's prefix does not belong to ``scheme``.
    """
    roles = SCHEMES[scheme]
    out, repaired, open_type = [], [], None
    for i, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        if prefix == "O":
            out.append("O")
            open_type = None
            continue
        role = roles.get(prefix)
        if role is None:
            known = ", ".join(f"{p}-" for p in roles)
            raise LmforgeError(f"tag {tag!r} is not a {scheme.upper()} tag (prefixes {known} or O)")
        continues = role in ("inside", "end") and open_type == kind
        out.append(f"{'I' if continues else 'B'}-{kind}")
        if role in ("inside", "end") and not continues and scheme != "iob1":
            repaired.append(i)
        open_type = kind if role in ("begin", "inside") else None
    return out, repaired


def bio_to_spans(tags: Sequence[str]) -> list[Span]:
    """Entity spans (start_word, end_word_exclusive, type) of IOB2 tags, read as conlleval does.

    An ``I-T`` that does not continue a ``T`` entity starts one, so model output that is not well formed
    still gives the spans a metric would count.

    Raises:
        LmforgeError: A tag is neither ``O`` nor ``B-``/``I-`` prefixed.
    """
    spans: list[Span] = []
    start, kind = None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, this = split_tag(tag)
        if prefix not in ("O", "B", "I"):
            raise LmforgeError(f"tag {tag!r} at position {i} is not an IOB2 tag (B-TYPE, I-TYPE or O)")
        if start is not None and (prefix != "I" or this != kind):
            spans.append((start, i, kind))
            start = None
        if prefix != "O" and start is None:
            start, kind = i, this
    return spans


def spans_to_bio(spans: Sequence[Span], length: int) -> list[str]:
    """IOB2 tags of ``length`` words holding ``spans`` (start_word, end_word_exclusive, type).

    Raises:
        LmforgeError: A span is empty, out of range or overlaps another.
    """
    tags = ["O"] * length
    for start, end, kind in sorted(spans):
        if not 0 <= start < end <= length:
            raise LmforgeError(f"span ({start}, {end}, {kind!r}) does not fit {length} words")
        if any(t != "O" for t in tags[start:end]):
            raise LmforgeError(f"span ({start}, {end}, {kind!r}) overlaps another span")
        tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
    return tags


def word_to_char_spans(spans: Sequence[Span], offsets: Sequence[tuple[int, int]]) -> list[Span]:
    """Word spans as character spans: from the first word's start to the last word's end."""
    return [(offsets[start][0], offsets[end - 1][1], kind) for start, end, kind in spans]


def char_to_word_spans(spans: Sequence[Span], offsets: Sequence[tuple[int, int]]) -> list[Span]:
    """Character spans as word spans: the words a span overlaps.

    The round trip through :func:`word_to_char_spans` is exact for spans that start and end on word edges.

    Raises:
        LmforgeError: A span covers no word (only spaces, or out of the text).
    """
    out = []
    for start, end, kind in spans:
        inside = [j for j, (a, b) in enumerate(offsets) if a < end and b > start]
        if not inside:
            raise LmforgeError(f"character span [{start}, {end}) of type {kind!r} covers no word")
        out.append((inside[0], inside[-1] + 1, kind))
    return out


def split_words(text: str, cuts: Sequence[int] = (), chinese: bool | None = None) -> tuple[list[str], list[tuple[int, int]]]:
    """Words of ``text`` with their (start, end) offsets: characters for Chinese, else whitespace words.

    Args:
        text: The text.
        cuts: Character positions where a word is split as well (entity edges inside a word, as in ``(Apple)``).
        chinese: Character units; None decides by the text.
    """
    chinese = is_chinese(text) if chinese is None else chinese
    if chinese:
        offsets = [(i, i + 1) for i, c in enumerate(text) if not c.isspace()]
    else:
        offsets = []
        for match in re.finditer(r"\S+", text):
            edges = [match.start(), *sorted(c for c in set(cuts) if match.start() < c < match.end()), match.end()]
            offsets += list(zip(edges, edges[1:]))
    return [text[a:b] for a, b in offsets], offsets


def join_words(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """A text for pre-split words and each word's offsets in it.

    Words meet with no space where either side is a CJK character, and Chinese sentences written one
    character a line become the run of characters; other words are joined by one space.
    """
    glued = is_chinese("".join(words)) and all(len(w) == 1 for w in words)
    parts, offsets, at = [], [], 0
    for i, word in enumerate(words):
        if i and not glued and not (_CJK_CHAR.match(words[i - 1][-1]) or _CJK_CHAR.match(word[0])):
            parts.append(" ")
            at += 1
        parts.append(word)
        offsets.append((at, at + len(word)))
        at += len(word)
    return "".join(parts), offsets


def align_labels(word_ids: Sequence[int | None], word_label_ids: Sequence[int]) -> list[int]:
    """Token labels from word labels: the first sub-token of a word gets its label, the rest and specials -100.

    Args:
        word_ids: A fast tokenizer's ``encoding.word_ids(i)``: the word of each token, None for special tokens.
        word_label_ids: One label id per word.
    """
    out, previous = [], None
    for word in word_ids:
        out.append(IGNORE_INDEX if word is None or word == previous else int(word_label_ids[word]))
        previous = word
    return out


def word_predictions(word_ids: Sequence[int | None], token_pred_ids: Sequence[int], num_words: int | None = None,
                     fill: int = 0) -> list[int]:
    """Word label ids from token predictions: each word takes its first sub-token's prediction.

    Args:
        word_ids: The word of each token, None for special tokens (as in :func:`align_labels`).
        token_pred_ids: The predicted label id of each token.
        num_words: Words in the sentence; words cut off by truncation get ``fill``. Defaults to the last word seen + 1.
        fill: Label id for words with no token (0 is ``O`` in :func:`label_names`).
    """
    seen = [w for w in word_ids if w is not None]
    out = [fill] * (num_words if num_words is not None else (max(seen) + 1 if seen else 0))
    previous = None
    for word, pred in zip(word_ids, token_pred_ids):
        if word is not None and word != previous and word < len(out):
            out[word] = int(pred)
        previous = word
    return out


def split_by_document(examples: TaggedExamples, validation_share: float, seed: int) -> tuple[TaggedExamples, TaggedExamples]:
    """(train, validation) sentences with no document in both; about ``validation_share`` of the sentences held out."""
    kept, held = group_split_indices(examples.documents, validation_share, seed)
    return examples.subset(kept), examples.subset(held)


@dataclass
class _Sentence:
    """A sentence as read, before scheme conversion; ``lines`` has the line of each word."""

    words: list[str]
    tags: list[str] | None
    lines: list[int]
    document: str
    text: str = ""
    offsets: list[tuple[int, int]] | None = None


def _conll_blocks(text: str) -> tuple[list[tuple[str, list[tuple[int, list[str]]]]], bool]:
    """Sentences of a CoNLL text as (document, [(line, columns)]), and whether ``-DOCSTART-`` lines occur."""
    blocks: list[tuple[str, list[tuple[int, list[str]]]]] = []
    rows: list[tuple[int, list[str]]] = []
    document, has_docs = 0, False
    for number, line in enumerate([*text.splitlines(), ""], 1):
        columns = line.split()
        if columns and columns[0] != DOCSTART:
            rows.append((number, columns))
            continue
        if rows:
            blocks.append((str(document), rows))
            rows = []
        if columns:
            document, has_docs = document + 1, True
    return blocks, has_docs


def _read_conll(path: Path, text: str, tag_column: int, bad: BadRows) -> list[_Sentence]:
    """Sentences of a CoNLL file: a token per line, the tag in column ``tag_column``, blank lines between sentences."""
    blocks, has_docs = _conll_blocks(text)
    labeled = any(len(columns) > 1 for _, rows in blocks for _, columns in rows)
    sentences = []
    for document, rows in blocks:
        if labeled:
            short = next(((n, c) for n, c in rows if len(c) < 2 or not -len(c) <= tag_column < len(c)), None)
            if short is not None:
                bad.report(f"{path}, line {short[0]}: {len(short[1])} column(s) hold no tag in column {tag_column}; "
                           "give every token line its tag (or set the tag column)")
                continue
        tags = [columns[tag_column] for _, columns in rows] if labeled else None
        sentences.append(_Sentence([c[0] for _, c in rows], tags, [n for n, _ in rows],
                                   document if has_docs else f"line {rows[0][0]}"))
    return sentences


def _token_row(path: Path, number: int, row: dict[str, Any], bad: BadRows) -> _Sentence | None:
    """One ``{"tokens": [...], "tags": [...]}`` row, or None when it is bad (and skipped)."""
    tokens, tags = row.get("tokens"), row.get("tags")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t and not t.isspace() for t in tokens):
        bad.report(f"{path}, line {number}: 'tokens' must be a non-empty list of non-blank strings")
        return None
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        bad.report(f"{path}, line {number}: 'tags' must be a list of tag names such as B-PER (write names, not ids)")
        return None
    if tags is not None and len(tags) != len(tokens):
        bad.report(f"{path}, line {number}: {len(tokens)} tokens but {len(tags)} tags; give one tag per token")
        return None
    document = str(row.get("document", row.get("doc_id", f"line {number}")))
    return _Sentence(tokens, tags, [number] * len(tokens), document)


def _entity_list(raw: Any) -> list[Span] | None:
    """``[[start, end, type], ...]`` or ``[{"start", "end", "type"|"label"}, ...]`` as spans, None when malformed."""
    spans = []
    for item in raw if isinstance(raw, list) else [None]:
        if isinstance(item, dict):
            item = [item.get("start"), item.get("end"), item.get("type", item.get("label"))]
        if not (isinstance(item, (list, tuple)) and len(item) == 3 and all(isinstance(v, int) for v in item[:2])
                and isinstance(item[2], str) and item[2]):
            return None
        spans.append((item[0], item[1], item[2]))
    return sorted(spans)


def _span_row(path: Path, number: int, row: dict[str, Any], bad: BadRows) -> _Sentence | None:
    """One ``{"text": ..., "entities": [[start, end, type], ...]}`` row as words and IOB2 tags."""
    text = row.get("text")
    where = f"{path}, line {number}"
    if not isinstance(text, str) or not text.strip():
        bad.report(f"{where}: 'text' must be a non-blank string")
        return None
    spans = _entity_list(row["entities"]) if "entities" in row else []
    if spans is None:
        bad.report(f"{where}: 'entities' must be a list of [start, end, type] with integer offsets")
        return None
    for (s1, e1, t1), (s2, e2, t2) in zip(spans, spans[1:]):
        if s2 < e1:
            bad.report(f"{where}: entities [{s1}, {e1}) {t1} and [{s2}, {e2}) {t2} overlap; keep one of them")
            return None
    words, offsets = split_words(text, [edge for s, e, _ in spans for edge in (s, e)])
    try:
        if any(not 0 <= s < e <= len(text) for s, e, _ in spans):
            raise LmforgeError(f"an entity lies outside the text of {len(text)} characters")
        tags = spans_to_bio(char_to_word_spans(spans, offsets), len(words)) if "entities" in row else None
    except LmforgeError as exc:
        bad.report(f"{where}: {exc}; fix the offsets (end is exclusive)")
        return None
    return _Sentence(words, tags, [number] * len(words), str(row.get("document", f"line {number}")), text, offsets)


def _read_json_lines(path: Path, text: str, fmt: str, bad: BadRows) -> list[_Sentence]:
    """Sentences of a token JSONL (``tokens`` + ``tags``) or character-span JSONL (``text`` + ``entities``) file."""
    read = _token_row if fmt == "tokens" else _span_row
    sentences = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.report(f"{path}, line {number}: not valid JSON ({exc.msg})")
            continue
        if not isinstance(row, dict):
            bad.report(f"{path}, line {number}: expected a JSON object per line")
            continue
        sentence = read(path, number, row, bad)
        if sentence is not None:
            sentences.append(sentence)
    return sentences


def detect_tagging_format(path: Path, text: str, fmt: str = "auto") -> str:
    """``conll``, ``tokens`` (JSONL with tokens + tags) or ``spans`` (JSONL with text + entities): given, or from the file.

    A ``.jsonl``/``.json`` file or one whose first line is a JSON object is JSONL; its first row's keys tell
    tokens from spans. Anything else is CoNLL.
    """
    if fmt != "auto":
        if fmt not in ("conll", "tokens", "spans"):
            raise DataError(f"tagging format {fmt!r} is unknown; use auto, conll, tokens or spans")
        return fmt
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        row = None
    if not isinstance(row, dict):
        if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            raise DataError(f"{path}: the first line is not a JSON object; write one object per line, or set the format to conll")
        return "conll"
    if "tokens" in row:
        return "tokens"
    if "text" in row:
        return "spans"
    raise DataError(f"{path}: JSON rows need 'tokens' (+ 'tags') or 'text' (+ 'entities'); the first row has {', '.join(row) or 'no keys'}")


def _check_tags(path: Path, sentence: _Sentence, roles: dict[str, str], scheme: str, types: set[str] | None, bad: BadRows) -> bool:
    """Whether every tag has a prefix of ``scheme`` and (when given) a declared type; reports the first that does not."""
    for tag, line in zip(sentence.tags or [], sentence.lines):
        prefix, kind = split_tag(tag)
        if prefix != "O" and prefix not in roles:
            bad.report(f"{path}, line {line}: tag {tag!r} is not a {scheme.upper()} tag (prefixes {', '.join(roles)}, or O); "
                       "fix it or set the tag scheme")
            return False
        if types is not None and kind is not None and kind not in types:
            bad.report(f"{path}, line {line}: tag {tag!r} has type {kind!r}, which is not among the declared types "
                       f"({', '.join(sorted(types))}); fix the tag or declare the type")
            return False
    return True


def _scheme_name(scheme: str) -> str:
    name = SCHEME_ALIASES.get(scheme.lower(), scheme.lower())
    if name != "auto" and name not in SCHEMES:
        raise DataError(f"tag scheme {scheme!r} is unknown; use one of auto, {', '.join(SCHEMES)}")
    return name


def _canonical(path: Path, sentences: list[_Sentence], scheme: str, types: Sequence[str] | None,
               bad: BadRows) -> tuple[list[_Sentence], str, int]:
    """The sentences whose tags are good, converted to IOB2 in place; the scheme; the repair count."""
    scheme = detect_scheme([s.tags for s in sentences if s.tags]) if scheme == "auto" else scheme
    declared = set(types) if types is not None else None
    kept, repairs, first = [], 0, None
    for sentence in sentences:
        if sentence.tags is not None and not _check_tags(path, sentence, SCHEMES[scheme], scheme, declared, bad):
            continue
        kept.append(sentence)
        if sentence.tags is None:
            continue
        sentence.tags, fixed = to_iob2(sentence.tags, scheme)
        repairs += len(fixed)
        if fixed and first is None:
            first = sentence.lines[fixed[0]]
    if repairs:
        log.warning("%s: %d %s tags continue an entity that had not begun (first at line %d); read as begins",
                    path, repairs, scheme.upper(), first)
    return kept, scheme, repairs


def read_tagged(path: str | Path, fmt: str = "auto", scheme: str = "auto", tag_column: int = -1, types: Sequence[str] | None = None,
                encoding: str = "utf-8", on_bad_rows: str = "error") -> TaggedExamples:
    """Read a CoNLL, token JSONL or character-span JSONL file into IOB2 :class:`TaggedExamples`.

    Args:
        path: The file.
        fmt: ``auto`` (by extension and content), ``conll``, ``tokens`` or ``spans``.
        scheme: Tag scheme of the file: ``auto`` (from its prefixes), bio (= iob2), iob1, bioes, bilou or bmes.
        tag_column: CoNLL column that holds the tag (the last by default); a file with one column is unlabeled.
        types: Declared entity types; a tag of another type is a bad row. None accepts every type.
        encoding: Text encoding.
        on_bad_rows: ``error`` or ``skip`` (bad sentences are dropped and counted).

    Raises:
        DataError: The file is missing or empty, or a sentence is bad and ``on_bad_rows`` is ``error``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} not found")
    bad = BadRows(on_bad_rows)
    text = decode(path, encoding, bad)
    fmt = detect_tagging_format(path, text, fmt)
    sentences = _read_conll(path, text, tag_column, bad) if fmt == "conll" else _read_json_lines(path, text, fmt, bad)
    if sentences and any((s.tags is None) != (sentences[0].tags is None) for s in sentences):
        raise DataError(f"{path}: some sentences have tags and some do not; tag every sentence or none")
    # Character-span rows are tagged here, in IOB2, whatever scheme the caller names for token files.
    sentences, scheme, repairs = _canonical(path, sentences, "bio" if fmt == "spans" else _scheme_name(scheme), types, bad)
    bad.summary(path)
    if not sentences:
        raise DataError(f"{path} holds no usable sentences; check the format (CoNLL columns or JSONL keys)")
    for s in sentences:
        if s.offsets is None:
            s.text, s.offsets = join_words(s.words)
    labeled = sentences[0].tags is not None
    return TaggedExamples(path, [s.words for s in sentences], [s.tags for s in sentences] if labeled else None,
                          [s.lines[0] for s in sentences], [s.document for s in sentences], [s.text for s in sentences],
                          [s.offsets for s in sentences], scheme if labeled else "bio", repairs)
