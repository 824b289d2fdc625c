"""Tokenize a corpus once, streaming, into flat arrays on disk; train from them by memory map.

A store is a folder of plain arrays: every document's tokens followed by one separator token
(``ids``), a word-start flag per token (``starts``, for whole-word masking), the token span of
every segment (a line or sentence, for sentence pairs) and the segment span of every document.
Writing streams the corpus in chunks, so memory stays bounded whatever its size; the finished
store is kept under a key of its inputs, and later runs on the same corpus skip tokenization.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from lmforge.data.corpus import chunked, corpus_files, read_documents, split_sentences
from lmforge.data.normalize import make_normalizer
from lmforge.data.tokenize import tokenizer_fingerprint
from lmforge.errors import DataError
from lmforge.pretraining.config import CorpusConfig
from lmforge.pretraining.words import word_starts

log = logging.getLogger("lmforge.pretrain")
CHUNK_DOCS = 512
_HASH_BUCKETS = 1_000_000


@dataclass(frozen=True)
class StoreOptions:
    """How documents become stored tokens.

    Attributes:
        segments: ``lines`` (each line a segment), ``sentences`` (lines cut into sentences, for NSP)
            or ``document`` (lines joined by newlines into one segment, for causal LMs).
        separator: Token id written after every document.
        word_starts: Compute word-start flags (whole-word masking).
        chinese_words: ``jieba`` or ``chars`` (see :func:`lmforge.pretraining.words.word_starts`).
    """

    segments: str
    separator: int
    word_starts: bool
    chinese_words: str = "jieba"


class TokenStore:
    """A finished store, opened read-only by memory map."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        dtype = np.dtype(self.meta["dtype"])
        self.ids = _memmap(path / "ids.bin", dtype)
        self.starts = _memmap(path / "starts.bin", np.uint8) if self.meta["word_starts"] else None
        self.seg_start = _memmap(path / "seg_start.bin", np.int64)
        self.seg_end = _memmap(path / "seg_end.bin", np.int64)
        self.doc_end = _memmap(path / "doc_end.bin", np.int64)

    @property
    def num_tokens(self) -> int:
        """Tokens stored, separators included."""
        return int(self.ids.shape[0])

    @property
    def num_docs(self) -> int:
        """Documents stored."""
        return int(self.doc_end.shape[0])

    def doc_segments(self, doc: int) -> tuple[int, int]:
        """Segment index range ``[first, last)`` of document ``doc``."""
        return (int(self.doc_end[doc - 1]) if doc else 0), int(self.doc_end[doc])

    def doc_spans(self) -> tuple[np.ndarray, np.ndarray]:
        """Token span ``[start, end)`` of every document, separator excluded."""
        first = np.concatenate([[0], self.doc_end[:-1]]).astype(np.int64)
        return self.seg_start[first], self.seg_end[self.doc_end - 1]


def _memmap(path: Path, dtype: Any) -> np.ndarray:
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


class _Writer:
    """Appends encoded documents to the array files of one store, a chunk of documents at a time."""

    def __init__(self, path: Path, dtype: np.dtype, with_starts: bool) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path, self.dtype, self.with_starts = path, dtype, with_starts
        names = ["ids", "seg_start", "seg_end", "doc_end"] + (["starts"] if with_starts else [])
        self.files = {n: (path / f"{n}.bin").open("wb") for n in names}
        self.pending: dict[str, list[np.ndarray]] = {n: [] for n in names}
        self.tokens = self.segments = self.docs = 0

    def add(self, segments: list[tuple[np.ndarray, np.ndarray | None]], separator: int) -> None:
        """Queue one document (its segments' ids and word starts) and a separator after it."""
        lengths = np.array([len(ids) for ids, _ in segments], dtype=np.int64)
        ends = self.tokens + np.cumsum(lengths)
        self.pending["ids"] += [ids for ids, _ in segments] + [np.array([separator])]
        if self.with_starts:
            self.pending["starts"] += [s if s is not None else np.ones(len(i), bool) for i, s in segments] + [np.ones(1, bool)]
        self.pending["seg_start"].append(ends - lengths)
        self.pending["seg_end"].append(ends)
        self.segments += len(segments)
        self.pending["doc_end"].append(np.array([self.segments], dtype=np.int64))
        self.tokens = int(ends[-1]) + 1
        self.docs += 1

    def flush(self) -> None:
        """Write the queued documents (one write per file per chunk of documents)."""
        types = {"ids": self.dtype, "starts": np.uint8}
        for name, parts in self.pending.items():
            if parts:
                np.concatenate(parts).astype(types.get(name, np.int64), copy=False).tofile(self.files[name])
                parts.clear()

    def close(self, meta: dict[str, Any]) -> None:
        """Write what is queued, close the files, and write ``meta.json`` (counts, dtype) last."""
        self.flush()
        for f in self.files.values():
            f.close()
        meta = {**meta, "dtype": self.dtype.name, "tokens": self.tokens, "segments": self.segments, "docs": self.docs,
                "word_starts": self.with_starts}
        (self.path / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")


def _doc_hash(lines: list[str]) -> int:
    return int.from_bytes(hashlib.blake2b("\n".join(lines).encode(), digest_size=8).digest(), "little")


def _segments_of(lines: list[str], how: str) -> list[str]:
    if how == "document":
        return ["\n".join(lines)]
    if how == "sentences":
        return [s for line in lines for s in split_sentences(line)]
    return lines


class _Encoder:
    """Tokenizes chunks of documents into per-segment ids and word starts."""

    def __init__(self, tokenizer: Any, options: StoreOptions) -> None:
        # A private copy without padding or truncation: some saved tokenizers pad every input to a fixed length.
        self.backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self.backend.no_padding()
        self.backend.no_truncation()
        self.options = options

    def encode(self, docs: list[list[str]]) -> Iterator[list[tuple[np.ndarray, np.ndarray | None]]]:
        """Per document, its non-empty segments as (ids, word starts); documents with no tokens are skipped."""
        texts = [_segments_of(doc, self.options.segments) for doc in docs]
        flat = [t for segs in texts for t in segs]
        encodings = iter(self.backend.encode_batch(flat, add_special_tokens=False) if flat else [])
        for segs in texts:
            out = []
            for text in segs:
                enc = next(encodings)
                starts = word_starts(enc, text, self.options.chinese_words) if self.options.word_starts else None
                out.append((np.asarray(enc.ids, dtype=np.int64), starts))
            if any(len(ids) for ids, _ in out):
                yield [(ids, s) for ids, s in out if len(ids)]


def store_key(cfg: CorpusConfig, tokenizer: Any, options: StoreOptions) -> str:
    """A hash of everything the stored tokens depend on: files (size, time), reading options, tokenizer."""
    digest = hashlib.sha256(tokenizer_fingerprint(tokenizer).encode())
    reading = cfg.model_dump(include={"documents", "format", "encoding", "text_column", "dedup", "max_documents", "normalize",
                                      "lowercase", "fullwidth_to_halfwidth", "validation_share", "validation"})
    digest.update(json.dumps([reading, asdict(options)], sort_keys=True).encode())
    for source in (cfg.train, cfg.validation or []):
        for f in corpus_files(source, cfg.format):
            stat = f.path.stat()
            digest.update(f"{f.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _documents(cfg: CorpusConfig, sources: list[str]) -> Iterator[list[str]]:
    normalize = make_normalizer(cfg.normalize, cfg.lowercase, cfg.fullwidth_to_halfwidth)
    yield from read_documents(corpus_files(sources, cfg.format), cfg.documents, cfg.text_column, cfg.encoding, normalize,
                              desc="tokenizing corpus")


def _write(cfg: CorpusConfig, tokenizer: Any, options: StoreOptions, root: Path) -> dict[str, int]:
    """Stream the corpus into ``root/train`` and ``root/validation``; returns counts of what was kept."""
    dtype = np.dtype(np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max else np.int32)
    encoder = _Encoder(tokenizer, options)
    writers = {"train": _Writer(root / "train", dtype, options.word_starts)}
    writers["validation"] = _Writer(root / "validation", dtype, options.word_starts)
    counts = {"documents": 0, "duplicates": 0, "held_out": 0}
    seen: set[int] = set()
    cutoff = int(cfg.validation_share * _HASH_BUCKETS) if not cfg.validation else 0

    def kept() -> Iterator[tuple[str, list[str]]]:
        for doc in _documents(cfg, cfg.train):
            if cfg.max_documents and counts["documents"] >= cfg.max_documents:
                return
            counts["documents"] += 1
            h = _doc_hash(doc)
            if cfg.dedup:
                if h in seen:
                    counts["duplicates"] += 1
                    continue
                seen.add(h)
            yield ("validation" if h % _HASH_BUCKETS < cutoff else "train"), doc
        if cfg.validation:
            yield from (("validation", doc) for doc in _documents(cfg, cfg.validation))

    for chunk in chunked(kept(), CHUNK_DOCS):
        for split in ("train", "validation"):
            for segments in encoder.encode([doc for name, doc in chunk if name == split]):
                writers[split].add(segments, options.separator)
            writers[split].flush()
    counts["held_out"] = writers["validation"].docs
    for writer in writers.values():
        writer.close({"options": asdict(options)})
    return counts


def build_stores(cfg: CorpusConfig, tokenizer: Any, options: StoreOptions, cache_root: Path) -> tuple[TokenStore, TokenStore]:
    """The train and held-out stores of the corpus ``cfg`` describes, tokenized now or found in the cache.

    Args:
        cfg: The corpus section of the config.
        tokenizer: The model's fast tokenizer.
        options: Segmenting, separator and word starts.
        cache_root: Folder of stores; each store lives in a sub-folder named by :func:`store_key`.
    """
    root = cache_root / store_key(cfg, tokenizer, options)
    if not (root / "done.json").is_file():
        tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        counts = _write(cfg, tokenizer, options, tmp)
        (tmp / "done.json").write_text(json.dumps(counts), encoding="utf-8")
        shutil.rmtree(root, ignore_errors=True)
        os.replace(tmp, root)
    else:
        log.info("tokenized corpus found in the cache: %s", root)
    counts = json.loads((root / "done.json").read_text(encoding="utf-8"))
    train, validation = TokenStore(root / "train"), TokenStore(root / "validation")
    if not train.num_docs:
        raise DataError(f"no text left to train on in {', '.join(cfg.train)}; check the files and data.text_column")
    log.info("corpus: %d documents read, %d duplicates dropped, %d held out; %d training tokens in %d documents",
             counts["documents"], counts["duplicates"], counts["held_out"], train.num_tokens, train.num_docs)
    return train, validation
