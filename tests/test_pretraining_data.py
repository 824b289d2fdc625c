"""Pretraining data: corpus reading, token stores, masking statistics, sentence pairs, packing."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from lmforge.data.corpus import corpus_files, read_documents, split_sentences
from lmforge.errors import DataError
from lmforge.pretraining.config import CorpusConfig
from lmforge.pretraining.masking import IGNORE, Masker
from lmforge.pretraining.nsp import PairSequences, plan_pairs, trim_pair
from lmforge.pretraining.packing import PackedSequences, SequenceSource, document_spans, packed_spans
from lmforge.pretraining.store import StoreOptions, build_stores
from lmforge.pretraining.words import word_starts

WORDS = ["the", "a", "movie", "film", "was", "very", "good", "bad", "plot", "actor", "story", "it", "this", "nice"]


def write_corpus(path: Path, docs: int = 120, seed: int = 0, sentences: tuple[int, int] = (2, 6)) -> Path:
    """Documents separated by blank lines, one sentence per line."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for _ in range(docs):
            for _ in range(rng.randint(*sentences)):
                f.write(" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) + " .\n")
            f.write("\n")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus.txt")


def stores(tmp_path: Path, tokenizer: object, options: StoreOptions, **data: object):
    cfg = CorpusConfig(**{"train": [str(tmp_path / "corpus.txt")], "documents": "blank_line", "validation_share": 0.0, **data})
    return build_stores(cfg, tokenizer, options, tmp_path / "cache")


def test_documents_by_line_and_by_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("one a\ntwo b\n\nthree c\n\n\nfour d\n", encoding="utf-8")
    files = corpus_files([str(path)])
    assert list(read_documents(files, "line")) == [["one a"], ["two b"], ["three c"], ["four d"]]
    assert list(read_documents(files, "blank_line")) == [["one a", "two b"], ["three c"], ["four d"]]


def test_tables_folders_and_column_lists(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.csv").write_text('text,label\n"first, doc",1\nsecond,0\n', encoding="utf-8")
    (tmp_path / "d" / "b.tsv").write_text('label\ttext_a\n1\tsay "hi\n0\tthird\n', encoding="utf-8")
    (tmp_path / "d" / "c.jsonl").write_bytes(b'\xef\xbb\xbf{"text": "fourth"}\n')  # a byte-order mark first
    (tmp_path / "d" / ".hidden.txt").write_text("skip me\n", encoding="utf-8")
    docs = list(read_documents(corpus_files([str(tmp_path / "d")]), text_column=["text", "text_a"]))
    assert docs == [["first, doc"], ["second"], ['say "hi'], ["third"], ["fourth"]]  # TSV is read without quoting
    with pytest.raises(DataError, match="no column 'body'"):
        list(read_documents(corpus_files([str(tmp_path / "d")]), text_column="body"))


def test_sentence_split_handles_chinese_and_english() -> None:
    assert split_sentences("今天很好。明天呢？好! Yes. No") == ["今天很好。", "明天呢？", "好!", "Yes.", "No"]


def test_store_counts_dedup_held_out_and_cache(tmp_path: Path, tiny_bert: Path, corpus: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    options = StoreOptions("lines", tokenizer.sep_token_id, True)
    with corpus.open("a", encoding="utf-8") as f:
        f.write("the movie was good .\n\nthe movie was good .\n\n")
    train, held = stores(tmp_path, tokenizer, options, dedup=True, validation_share=0.2)
    assert train.num_docs + held.num_docs == 121  # one duplicate dropped
    assert 10 < held.num_docs < 45
    # every document ends with exactly one separator
    first, last = train.doc_spans()
    assert np.all(np.asarray(train.ids)[last] == tokenizer.sep_token_id)
    mtime = (train.path / "ids.bin").stat().st_mtime_ns
    again, _ = stores(tmp_path, tokenizer, options, dedup=True, validation_share=0.2)
    assert (again.path / "ids.bin").stat().st_mtime_ns == mtime and again.num_tokens == train.num_tokens


def test_masking_statistics_on_a_fixed_seed() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(10, 500, size=(256, 128))
    ids[:, 0], ids[:, -1], ids[3, 70:] = 2, 3, 0
    special = np.isin(ids, [0, 2, 3])
    masker = Masker(mask_id=4, vocab_size=500, special_ids=np.array([0, 2, 3]), whole_word=False)
    inputs, labels = masker(ids, None, np.random.default_rng(1))
    chosen = labels != IGNORE
    assert not (chosen & special).any()
    assert chosen.sum() / (~special).sum() == pytest.approx(0.15, abs=0.005)
    assert np.array_equal(labels[chosen], ids[chosen])
    masked, kept = (inputs[chosen] == 4).mean(), (inputs[chosen] == ids[chosen]).mean()
    assert masked == pytest.approx(0.8, abs=0.02)
    assert kept == pytest.approx(0.1, abs=0.02)  # random replacements almost never hit the original token
    assert (inputs[~chosen] == ids[~chosen]).all()
    again, _ = masker(ids, None, np.random.default_rng(1))
    assert np.array_equal(inputs, again)


def test_whole_word_masking_groups_words() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(10, 500, size=(128, 64))
    starts = rng.random((128, 64)) < 0.5
    masker = Masker(mask_id=4, vocab_size=500, special_ids=np.array([0]), whole_word=True)
    _, labels = masker(ids, starts, np.random.default_rng(2))
    chosen = labels != IGNORE
    word = np.cumsum(starts | (np.arange(64) == 0)[None, :], axis=1)
    for row in range(128):
        for w in np.unique(word[row]):
            picked = chosen[row, word[row] == w]
            assert picked.all() or not picked.any()
    assert chosen.mean() == pytest.approx(0.15, abs=0.02)


def test_word_starts_follow_subwords_and_jieba(tiny_bert: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    text = "hap 电影很好"
    enc = tok.backend_tokenizer.encode(text, add_special_tokens=False)
    starts = word_starts(enc, text, "jieba")
    pieces = ["|" * bool(s) + t for t, s in zip(enc.tokens, starts, strict=True)]
    assert pieces == ["|h", "##a", "##p", "|电", "影", "|很", "|好"]  # jieba: 电影 / 很 / 好
    assert word_starts(enc, text, "chars")[3:].all()


def test_nsp_pairs_are_balanced_and_fit(tmp_path: Path, tiny_bert: Path) -> None:
    write_corpus(tmp_path / "corpus.txt", docs=80, sentences=(3, 12))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    train, _ = stores(tmp_path, tokenizer, StoreOptions("sentences", tokenizer.sep_token_id, True))
    plan = plan_pairs(train, 48, seed=0, epoch=0)
    share = np.mean(plan.random)
    assert 0.42 < share < 0.58
    doc_of_segment = np.repeat(np.arange(train.num_docs), np.diff(np.concatenate([[0], train.doc_end])))
    for k in range(len(plan)):
        assert plan.a0[k] < plan.a1[k] and plan.b0[k] < plan.b1[k]
        if not plan.random[k]:
            assert plan.b0[k] == plan.a1[k]  # B continues A in the same document
            assert doc_of_segment[plan.b1[k] - 1] == doc_of_segment[plan.a0[k]]
        else:
            assert doc_of_segment[plan.b0[k]] != doc_of_segment[plan.a0[k]]
    ids = {"cls": tokenizer.cls_token_id, "sep": tokenizer.sep_token_id, "pad": tokenizer.pad_token_id}
    masker = Masker(tokenizer.mask_token_id, len(tokenizer), np.array([0, 2, 3]))
    batch = PairSequences(train, plan, 48, ids, masker)(np.arange(32), np.random.default_rng(0))
    assert batch["input_ids"].shape[1] <= 48
    assert (batch["input_ids"][:, 0] == tokenizer.cls_token_id).all()
    assert set(batch["token_type_ids"].unique().tolist()) <= {0, 1}
    assert batch["next_sentence_label"].tolist() == [plan.random[k] for k in range(32)]
    full = (batch["attention_mask"].sum(1) if "attention_mask" in batch else np.full(32, 48))
    assert np.mean(np.asarray(full)) > 0.75 * 48  # the segment budget fills most pairs


def test_trim_pair_cuts_the_longer_side() -> None:
    (fa, ba), (fb, bb) = trim_pair(30, 10, 20, np.random.default_rng(0))
    assert fa + ba == 20 and fb + bb == 0
    (fa, ba), (fb, bb) = trim_pair(12, 12, 20, np.random.default_rng(0))
    assert 12 - fa - ba + 12 - fb - bb == 20 and abs((fa + ba) - (fb + bb)) <= 1


def test_packing_keeps_every_token_exactly_once(tmp_path: Path, tiny_bert: Path, corpus: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    train, _ = stores(tmp_path, tokenizer, StoreOptions("lines", tokenizer.sep_token_id, True))
    stream = np.asarray(train.ids, dtype=np.int64)
    seqs = PackedSequences(train, packed_spans(train.num_tokens, 31), tokenizer.pad_token_id, prefix_id=tokenizer.cls_token_id)
    rows = seqs.rows(np.arange(len(seqs)))
    assert all(len(r) == 31 for r in rows[:-1]) and 0 < len(rows[-1]) <= 31
    assert np.array_equal(np.concatenate(rows), stream)
    source = SequenceSource(lambda epoch: seqs, batch_size=8, seed=0)
    seen = np.concatenate([b["input_ids"][:, 1:].reshape(-1).numpy() for b, _ in source.batches(0, 0, 0, 1)])
    assert np.array_equal(np.sort(seen[seen != tokenizer.pad_token_id]), np.sort(stream[stream != tokenizer.pad_token_id]))
    per_doc = document_spans(train, 31)
    assert (per_doc[1] - per_doc[0]).sum() == train.num_tokens


def test_batches_resume_identically(tmp_path: Path, tiny_bert: Path, corpus: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    train, _ = stores(tmp_path, tokenizer, StoreOptions("lines", tokenizer.sep_token_id, True))
    masker = Masker(tokenizer.mask_token_id, len(tokenizer), np.array([0, 2, 3]))
    seqs = PackedSequences(train, packed_spans(train.num_tokens, 31), 0, 2, masker)
    source = SequenceSource(lambda epoch: seqs, batch_size=8, seed=3)
    full = [b for b, _ in source.batches(1, 0, 0, 1)]
    resumed = [b for b, _ in source.batches(1, 2, 0, 1)]
    for a, b in zip(full[2:], resumed, strict=True):
        assert all((a[k] == b[k]).all() for k in a)
    halves = [b for rank in (0, 1) for b, _ in source.batches(1, 0, rank, 2)][:1]
    assert halves[0]["input_ids"].shape[0] == 4
