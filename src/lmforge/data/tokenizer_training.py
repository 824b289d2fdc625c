"""Train WordPiece, byte-level BPE and Unigram tokenizers on a streamed corpus.

The trainers of the ``tokenizers`` library count words, not text, so memory grows with the
vocabulary of the corpus rather than its size. The result is saved as a Hugging Face tokenizer
folder that ``AutoTokenizer.from_pretrained`` loads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from lmforge.data.corpus import chunked, corpus_files, read_documents
from lmforge.data.normalize import make_normalizer
from lmforge.errors import LmforgeError
from lmforge.registry import Registry

log = logging.getLogger("lmforge.data")


@dataclass(frozen=True)
class TokenizerKind:
    """How one kind of tokenizer is assembled.

    Attributes:
        specials: Special-token roles (``pad_token``...) to token strings, in vocabulary order.
        build: ``(lowercase, normalize, vocab_size, min_frequency, specials) -> (tokenizer, trainer)``.
        post: Adds the post-processor (special tokens around inputs) once the vocabulary exists.
    """

    specials: dict[str, str]
    build: Any
    post: Any


KINDS: Registry[TokenizerKind] = Registry("tokenizer type")


def _unicode_normalizer(normalize: str, lowercase: bool) -> Any:
    steps = [getattr(normalizers, normalize.upper())()] if normalize != "none" else []
    if lowercase:
        steps.append(normalizers.Lowercase())
    return normalizers.Sequence(steps)


def _unique(specials: dict[str, str]) -> list[str]:
    return list(dict.fromkeys(specials.values()))


def _build_wordpiece(lowercase: bool, normalize: str, vocab_size: int, min_frequency: int, specials: dict[str, str]) -> tuple:
    tok = Tokenizer(models.WordPiece(unk_token=specials["unk_token"]))
    # BertNormalizer puts spaces around every CJK character, so Chinese is split one character per token.
    bert = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase)
    tok.normalizer = normalizers.Sequence([_unicode_normalizer(normalize, False), bert])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    # No alphabet limit: a Chinese corpus needs thousands of single characters in the vocabulary.
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=_unique(specials),
                                        limit_alphabet=vocab_size, continuing_subword_prefix="##", show_progress=False)
    return tok, trainer


def _build_bpe(lowercase: bool, normalize: str, vocab_size: int, min_frequency: int, specials: dict[str, str]) -> tuple:
    tok = Tokenizer(models.BPE())
    tok.normalizer = _unicode_normalizer(normalize, lowercase)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=_unique(specials),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    return tok, trainer


def _build_unigram(lowercase: bool, normalize: str, vocab_size: int, min_frequency: int, specials: dict[str, str]) -> tuple:
    tok = Tokenizer(models.Unigram())
    tok.normalizer = _unicode_normalizer(normalize, lowercase)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=_unique(specials), unk_token=specials["unk_token"],
                                      show_progress=False)
    return tok, trainer


def _cls_sep_template(tok: Any, specials: dict[str, str]) -> None:
    """``CLS a SEP`` and ``CLS a SEP b SEP`` with segment ids, as BERT-style encoders expect."""
    cls, sep = specials["cls_token"], specials["sep_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])


def _byte_level_post(tok: Any, specials: dict[str, str]) -> None:
    tok.post_processor = processors.ByteLevel(trim_offsets=False)


KINDS.add("wordpiece", TokenizerKind(
    {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"},
    _build_wordpiece, _cls_sep_template))
KINDS.add("bpe", TokenizerKind(
    {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<pad>"}, _build_bpe, _byte_level_post))
KINDS.add("unigram", TokenizerKind(
    {"pad_token": "<pad>", "unk_token": "<unk>", "cls_token": "<s>", "sep_token": "</s>", "bos_token": "<s>",
     "eos_token": "</s>", "mask_token": "<mask>"}, _build_unigram, _cls_sep_template))


def train_tokenizer(files: list[str], out: str | Path, kind: str = "wordpiece", vocab_size: int = 30000,
                    min_frequency: int = 2, lowercase: bool = False, normalize: str = "nfkc", documents: str = "line",
                    text_column: str | list[str] = "text", max_length: int = 512, encoding: str = "utf-8") -> Any:
    """Train a tokenizer on ``files`` and save it to ``out``; returns the loaded tokenizer.

    Args:
        files: Text files, folders, tables (with ``text_column``) or zoo corpora.
        out: Folder to write (``tokenizer.json``, ``tokenizer_config.json``).
        kind: ``wordpiece`` (BERT), ``bpe`` (byte-level, GPT-2 style) or ``unigram`` (SentencePiece style).
        vocab_size: Tokens in the vocabulary, special tokens included.
        min_frequency: Pairs seen fewer times are not merged (WordPiece, BPE).
        lowercase: Lowercase the text (and, for WordPiece, strip accents) inside the tokenizer.
        normalize: Unicode normalization inside the tokenizer: ``nfkc``, ``nfc`` or ``none``.
        documents: ``line`` or ``blank_line`` document boundaries in text files (see :func:`read_documents`).
        text_column: Text column of tables (or several names, tried in turn).
        max_length: ``model_max_length`` recorded in the saved tokenizer.
        encoding: Text encoding of the files.
    """
    spec = KINDS.get(kind)
    if vocab_size <= len(spec.specials):
        raise LmforgeError(f"--vocab-size {vocab_size} is too small; give at least a few hundred tokens")
    tok, trainer = spec.build(lowercase, normalize, vocab_size, min_frequency, spec.specials)
    clean = make_normalizer(normalize, lowercase)
    docs = read_documents(corpus_files(files), documents, text_column, encoding, clean, desc="training tokenizer")
    seen = {"lines": 0}

    def lines() -> Iterator[str]:
        for doc in docs:
            seen["lines"] += len(doc)
            yield from doc

    tok.train_from_iterator(chunked(lines(), 1000), trainer=trainer)
    if not seen["lines"]:
        raise LmforgeError(f"no text found in {', '.join(files)}; give files with at least one non-empty line")
    spec.post(tok, spec.specials)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length, **spec.specials).save_pretrained(out)
    log.info("%s tokenizer with %d tokens trained on %d lines, saved to %s", kind, tok.get_vocab_size(), seen["lines"], out)
    return AutoTokenizer.from_pretrained(out)
