"""Tokenize with a fast tokenizer into ragged arrays, cached on disk by content."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

log = logging.getLogger("lmforge.data")
CHUNK = 4096


@dataclass
class Ragged:
    """Variable-length integer rows stored flat: row ``i`` is ``values[offsets[i]:offsets[i+1]]``."""

    values: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]]) -> Ragged:
        """Pack Python lists of ints."""
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.fromiter((t for r in rows for t in r), dtype=np.int32, count=int(offsets[-1]))
        return cls(values, offsets)

    @classmethod
    def concat(cls, parts: Sequence[Ragged]) -> Ragged:
        """Rows of all parts, in order."""
        shifts = np.cumsum([0] + [len(p.values) for p in parts[:-1]])
        offsets = np.concatenate([np.zeros(1, np.int64)] + [p.offsets[1:] + s for p, s in zip(parts, shifts)])
        return cls(np.concatenate([p.values for p in parts]), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        """Length of every row."""
        return np.diff(self.offsets)

    def take(self, index: Sequence[int]) -> Ragged:
        """Rows at ``index``, in that order."""
        index = np.asarray(index, dtype=np.int64)
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(self.lengths[index], out=offsets[1:])
        values = np.concatenate([self[i] for i in index]) if len(index) else self.values[:0]
        return Ragged(values, offsets)


@dataclass
class Encoded:
    """Token ids (and segment ids for pairs) of a list of texts."""

    input_ids: Ragged
    token_type_ids: Ragged | None

    def take(self, index: Sequence[int]) -> Encoded:
        """The rows at ``index``."""
        types = None if self.token_type_ids is None else self.token_type_ids.take(index)
        return Encoded(self.input_ids.take(index), types)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash that changes whenever the tokenizer would split text differently."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Truncation and padding settings live in the backend too, and change with every call.
        spec = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
        body = json.dumps(spec, sort_keys=True)
    else:
        body = repr(sorted(tokenizer.get_vocab().items()))
    extra = repr((type(tokenizer).__name__, getattr(tokenizer, "padding_side", None), tokenizer.all_special_tokens))
    return hashlib.sha256((body + extra).encode()).hexdigest()


def _cache_key(tokenizer: Any, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int) -> str:
    digest = hashlib.sha256(tokenizer_fingerprint(tokenizer).encode())
    digest.update(f"|{max_length}|{pairs is not None}|".encode())
    for i, text in enumerate(texts):
        digest.update(text.encode())
        digest.update(b"\x00" + (pairs[i].encode() if pairs is not None else b"") + b"\x01")
    return digest.hexdigest()[:32]


def _run_tokenizer(tokenizer: Any, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int, desc: str) -> Encoded:
    ids, types = [], []
    for start in tqdm(range(0, len(texts), CHUNK), desc=desc, unit="chunk", disable=len(texts) <= 4 * CHUNK, leave=False):
        end = start + CHUNK
        out = tokenizer(list(texts[start:end]), list(pairs[start:end]) if pairs is not None else None,
                        truncation=True, max_length=max_length)
        ids.append(Ragged.from_lists(out["input_ids"]))
        if pairs is not None and "token_type_ids" in out:
            types.append(Ragged.from_lists(out["token_type_ids"]))
    return Encoded(Ragged.concat(ids), Ragged.concat(types) if types else None)


def _save(path: Path, enc: Encoded) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"ids": enc.input_ids.values, "ids_off": enc.input_ids.offsets}
    if enc.token_type_ids is not None:
        arrays |= {"types": enc.token_type_ids.values, "types_off": enc.token_type_ids.offsets}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _load(path: Path) -> Encoded:
    with np.load(path) as z:
        types = Ragged(z["types"], z["types_off"]) if "types" in z else None
        return Encoded(Ragged(z["ids"], z["ids_off"]), types)


def tokenize(tokenizer: Any, texts: Sequence[str], pairs: Sequence[str] | None = None, max_length: int = 128,
             cache_dir: Path | None = None, desc: str = "tokenizing") -> Encoded:
    """Tokenize ``texts`` (and ``pairs``) with truncation at ``max_length`` tokens.

    With ``cache_dir``, the result is stored under a hash of the tokenizer, the texts and the
    max length, so a second run over the same data and tokenizer does no tokenization.
    """
    path = None
    if cache_dir is not None and texts:
        path = Path(cache_dir) / f"{_cache_key(tokenizer, texts, pairs, max_length)}.npz"
        if path.is_file():
            log.info("%s: %d texts loaded from the token cache", desc, len(texts))
            return _load(path)
    enc = _run_tokenizer(tokenizer, texts, pairs, max_length, desc)
    at_max = int((enc.input_ids.lengths >= max_length).sum())
    if at_max:
        log.info("%s: %d of %d texts (%.1f%%) were cut to max_length=%d tokens", desc, at_max, len(texts), 100 * at_max / len(texts), max_length)
    if path is not None:
        _save(path, enc)
    return enc
