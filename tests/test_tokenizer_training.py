"""Tokenizer training: each kind round-trips text, loads with AutoTokenizer, splits Chinese as promised."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from lmforge.cli import main
from lmforge.data.tokenizer_training import train_tokenizer
from lmforge.errors import LmforgeError

TEXT = ["The quick brown fox jumps over the lazy dog.", "Tokenizers turn text into numbers, and back again!",
        "我们今天去北京看升旗。", "这家酒店的服务很好，下次还会再来。", "Prices rose 3.5% in 2023; analysts expected 2%."]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tok") / "corpus.txt"
    path.write_text("\n".join(TEXT * 20) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "unigram"])
def test_round_trip_and_reload(kind: str, corpus: Path, tmp_path: Path) -> None:
    train_tokenizer([str(corpus)], tmp_path / kind, kind, vocab_size=300, min_frequency=1)
    tok = AutoTokenizer.from_pretrained(tmp_path / kind)
    assert 50 < len(tok) <= 300
    for text in TEXT:
        decoded = tok.decode(tok(text)["input_ids"], skip_special_tokens=True)
        if kind == "wordpiece":  # BERT's decoder spaces out Chinese characters and punctuation
            assert decoded.replace(" ", "") == text.replace(" ", "").replace("，", ",")
        else:
            assert decoded == text.replace("，", ",")  # NFKC maps the full-width comma


def test_wordpiece_splits_chinese_per_character_and_adds_bert_specials(corpus: Path, tmp_path: Path) -> None:
    train_tokenizer([str(corpus)], tmp_path / "wp", "wordpiece", vocab_size=300, min_frequency=1)
    tok = AutoTokenizer.from_pretrained(tmp_path / "wp")
    assert tok.tokenize("我们去北京") == ["我", "们", "去", "北", "京"]
    assert tok.convert_ids_to_tokens(tok("a", "b")["input_ids"]) == ["[CLS]", "a", "[SEP]", "b", "[SEP]"]
    assert tok.mask_token == "[MASK]" and tok.pad_token == "[PAD]"


def test_bpe_is_byte_level(corpus: Path, tmp_path: Path) -> None:
    train_tokenizer([str(corpus)], tmp_path / "bpe", "bpe", vocab_size=300, min_frequency=1)
    tok = AutoTokenizer.from_pretrained(tmp_path / "bpe")
    unseen = "Ωmega ☃ 🙂"
    assert tok.unk_token_id not in tok(unseen)["input_ids"]
    assert tok.decode(tok(unseen)["input_ids"]) == unseen


def test_streams_tables_and_reports_empty_input(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("body,label\n" + "\n".join(f'"{t}",1' for t in TEXT) + "\n", encoding="utf-8")
    tok = train_tokenizer([str(table)], tmp_path / "out", "unigram", vocab_size=120, text_column="body")
    assert tok.tokenize("the quick")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(LmforgeError, match="no text found"):
        train_tokenizer([str(empty)], tmp_path / "none", "bpe", vocab_size=300)


def test_cli_trains_a_tokenizer(corpus: Path, tmp_path: Path) -> None:
    args = ["tokenizer", "train", "--files", str(corpus), "--type", "bpe", "--vocab-size", "280", "--out", str(tmp_path / "t")]
    assert main(args) == 0
    assert AutoTokenizer.from_pretrained(tmp_path / "t").eos_token == "<|endoftext|>"
