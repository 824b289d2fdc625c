"""Token-tagging data: readers, tag schemes, span conversions, sub-word alignment, document splits."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from transformers import BertTokenizer

from forge_testing import shared_data, tiny_vocab
from lmforge.data.tagging import (
    IGNORE_INDEX,
    align_labels,
    bio_to_spans,
    char_to_word_spans,
    detect_scheme,
    join_words,
    label_names,
    read_tagged,
    spans_to_bio,
    split_by_document,
    split_words,
    to_iob2,
    word_predictions,
    word_to_char_spans,
)
from lmforge.errors import DataError

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    return write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def test_conll_reads_sentences_documents_and_offsets(tmp_path: Path) -> None:
    ex = read_tagged(write(tmp_path / "a.txt", CONLL))
    assert ex.words == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"], ["BRUSSELS", "1996-08-22"]]
    assert ex.tags[1] == ["B-PER", "I-PER"] and ex.scheme == "bio" and ex.repairs == 0
    assert ex.lines == [3, 8, 13]
    assert ex.documents == ["1", "1", "2"]
    assert ex.texts[0] == "EU rejects German call" and ex.offsets[0][2] == (11, 17)
    assert ex.entities(0) == [(0, 2, "ORG"), (11, 17, "MISC")]
    assert ex.types() == ["LOC", "MISC", "ORG", "PER"]
    assert label_names(["LOC", "PER"]) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_document_split_keeps_documents_whole(tmp_path: Path) -> None:
    ex = read_tagged(write(tmp_path / "a.txt", CONLL))
    train, validation = split_by_document(ex, 0.3, seed=0)
    assert len(train) + len(validation) == 3 and len(validation) >= 1
    assert not set(train.documents) & set(validation.documents)
    assert split_by_document(ex, 0.3, seed=0)[1].words == validation.words


def test_conll_tag_column_and_unlabeled(tmp_path: Path) -> None:
    ex = read_tagged(write(tmp_path / "a.txt", "EU B-ORG x\nsays O x\n"), tag_column=1)
    assert ex.tags == [["B-ORG", "O"]]
    plain = read_tagged(write(tmp_path / "b.txt", "EU\nsays\n\nhi\n"))
    assert plain.tags is None and plain.words == [["EU", "says"], ["hi"]] and plain.documents == ["line 1", "line 4"]


def test_bmes_converts_and_repairs_inside_without_begin(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = "高 B-NAME\n勇 E-NAME\n： O\n中 S-LOC\n\n彼 M-ORG\n得 M-ORG\n堡 E-ORG\n"
    with caplog.at_level(logging.WARNING, logger="lmforge.data"):
        ex = read_tagged(write(tmp_path / "r.bmes", text))
    assert ex.scheme == "bmes" and ex.repairs == 1
    assert ex.tags == [["B-NAME", "I-NAME", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG"]]
    assert ex.texts[0] == "高勇：中" and ex.entities(1) == [(0, 3, "ORG")]
    assert "1 BMES tags" in caplog.text and "line 6" in caplog.text


@pytest.mark.parametrize(("scheme", "tags", "expected", "repaired"), [
    ("iob1", ["I-PER", "I-PER", "B-PER", "O", "I-LOC"], ["B-PER", "I-PER", "B-PER", "O", "B-LOC"], []),
    ("bio", ["O", "I-ORG", "I-ORG", "B-PER", "I-LOC"], ["O", "B-ORG", "I-ORG", "B-PER", "B-LOC"], [1, 4]),
    ("bioes", ["B-ORG", "E-ORG", "S-PER", "E-PER", "I-LOC"], ["B-ORG", "I-ORG", "B-PER", "B-PER", "B-LOC"], [3, 4]),
    ("bilou", ["U-PER", "B-ORG", "I-ORG", "L-ORG"], ["B-PER", "B-ORG", "I-ORG", "I-ORG"], []),
    ("bmes", ["M-ORG", "E-ORG", "B-LOC", "M-LOC", "E-LOC"], ["B-ORG", "I-ORG", "B-LOC", "I-LOC", "I-LOC"], [0]),
])
def test_schemes_to_iob2(scheme: str, tags: list[str], expected: list[str], repaired: list[int]) -> None:
    assert to_iob2(tags, scheme) == (expected, repaired)


def test_scheme_detection() -> None:
    assert detect_scheme([["B-X", "M-X", "E-X"]]) == "bmes"
    assert detect_scheme([["U-X", "O"]]) == "bilou"
    assert detect_scheme([["S-X", "O"]]) == "bioes"
    assert detect_scheme([["I-X", "I-X", "B-X", "O"]]) == "iob1"
    assert detect_scheme([["B-X", "I-X", "O", "I-Y"]]) == "bio"


def test_iob1_file_converts_without_repairs(tmp_path: Path) -> None:
    ex = read_tagged(write(tmp_path / "a.txt", "A I-PER\nB I-PER\nC B-PER\nD O\n"))
    assert ex.scheme == "iob1" and ex.repairs == 0 and ex.tags == [["B-PER", "I-PER", "B-PER", "O"]]


def test_undeclared_type_and_bad_prefix_are_errors_with_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "EU B-ORG\nsays O\n\nPeter B-PERSON\n")
    with pytest.raises(DataError, match=r"a\.txt, line 4: tag 'B-PERSON' has type 'PERSON'"):
        read_tagged(path, types=["ORG", "PER"])
    assert len(read_tagged(path, types=["ORG", "PER"], on_bad_rows="skip")) == 1
    with pytest.raises(DataError, match=r"line 2: tag 'X-ORG' is not a BIO tag"):
        read_tagged(write(tmp_path / "b.txt", "EU B-ORG\nsays X-ORG\n"), scheme="bio")


def test_conll_token_line_without_tag_is_error_or_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "a.txt", "EU B-ORG\nsays O\n\nPeter\nsings O\n")
    with pytest.raises(DataError, match=r"a\.txt, line 4: 1 column\(s\) hold no tag"):
        read_tagged(path)
    with caplog.at_level(logging.WARNING):
        ex = read_tagged(path, on_bad_rows="skip")
    assert ex.words == [["EU", "says"]] and "skipped 1 bad rows" in caplog.text

def test_token_jsonl(tmp_path: Path) -> None:
    rows = [{"tokens": ["New", "York", "is", "big"], "tags": ["B-LOC", "I-LOC", "O", "O"]},
            {"tokens": ["北", "京", "大"], "tags": ["B-LOC", "E-LOC", "O"]}]
    ex = read_tagged(write_jsonl(tmp_path / "a.jsonl", rows), scheme="bioes")
    assert ex.tags == [["B-LOC", "I-LOC", "O", "O"], ["B-LOC", "I-LOC", "O"]]
    assert ex.texts == ["New York is big", "北京大"] and ex.entities(1) == [(0, 2, "LOC")]
    with pytest.raises(DataError, match=r"b\.jsonl, line 2: 2 tokens but 1 tags"):
        read_tagged(write_jsonl(tmp_path / "b.jsonl", [rows[0], {"tokens": ["a", "b"], "tags": ["O"]}]))


def test_character_span_jsonl_english_and_chinese(tmp_path: Path) -> None:
    rows = [{"text": "I met (Tim Cook) at Apple's office.", "entities": [[7, 15, "PER"], [20, 25, "ORG"]]},
            {"text": "我在北京大学读书", "entities": [[2, 6, "ORG"]]}]
    ex = read_tagged(write_jsonl(tmp_path / "s.jsonl", rows))
    assert ex.words[0] == ["I", "met", "(", "Tim", "Cook", ")", "at", "Apple", "'s", "office."]
    assert ex.tags[0] == ["O", "O", "O", "B-PER", "I-PER", "O", "O", "B-ORG", "O", "O"]
    assert ex.words[1] == list("我在北京大学读书") and ex.tags[1][2:6] == ["B-ORG", "I-ORG", "I-ORG", "I-ORG"]
    for i, row in enumerate(rows):
        assert ex.texts[i] == row["text"] and ex.entities(i) == [tuple(e) for e in row["entities"]]


def test_overlapping_character_spans_are_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [{"text": "New York City", "entities": [[0, 8, "LOC"], [4, 13, "LOC"]]}])
    with pytest.raises(DataError, match=r"s\.jsonl, line 1: entities \[0, 8\) LOC and \[4, 13\) LOC overlap"):
        read_tagged(path)


def test_spans_round_trips() -> None:
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "O", "B-ORG"]
    spans = bio_to_spans(tags)
    assert spans == [(0, 2, "PER"), (3, 4, "LOC"), (4, 6, "LOC"), (7, 8, "ORG")]
    assert spans_to_bio(spans, len(tags)) == tags
    assert bio_to_spans(["O", "I-PER", "I-LOC", "I-LOC"]) == [(1, 2, "PER"), (2, 4, "LOC")]
    for text, char_spans in (("Angela Merkel visited New York .", [(0, 13, "PER"), (22, 30, "LOC")]),
                             ("李明在上海工作", [(0, 2, "PER"), (3, 5, "LOC")])):
        words, offsets = split_words(text)
        word_spans = char_to_word_spans(char_spans, offsets)
        assert word_to_char_spans(word_spans, offsets) == char_spans
        assert bio_to_spans(spans_to_bio(word_spans, len(words))) == word_spans
    assert join_words(["Hello", "北", "京", "New", "York"]) == ("Hello北京New York", [(0, 5), (5, 6), (6, 7), (7, 10), (11, 15)])


@pytest.fixture(scope="module")
def wordpiece() -> BertTokenizer:
    return BertTokenizer(vocab=tiny_vocab())


def test_align_labels_first_sub_token(wordpiece: BertTokenizer) -> None:
    enc = wordpiece(["the", "actorx", "was", "happy"], is_split_into_words=True)
    assert wordpiece.convert_ids_to_tokens(enc["input_ids"]) == ["[CLS]", "the", "actor", "##x", "was", "happy", "[SEP]"]
    labels = align_labels(enc.word_ids(), [0, 1, 0, 3])
    assert labels == [IGNORE_INDEX, 0, 1, IGNORE_INDEX, 0, 3, IGNORE_INDEX]
    predictions = [2, 0, 1, 4, 0, 3, 2]
    assert word_predictions(enc.word_ids(), predictions) == [0, 1, 0, 3]
    assert word_predictions(enc.word_ids()[:4], predictions[:4], num_words=4) == [0, 1, 0, 0]


def test_align_labels_chinese_characters_back_to_char_spans(wordpiece: BertTokenizer, tmp_path: Path) -> None:
    ex = read_tagged(write_jsonl(tmp_path / "z.jsonl", [{"text": "好电影很好", "entities": [[1, 3, "WORK"]]}]))
    names = label_names(ex.types())
    ids = [names.index(t) for t in ex.tags[0]]
    enc = wordpiece(ex.words[0], is_split_into_words=True)
    assert wordpiece.convert_ids_to_tokens(enc["input_ids"])[1:-1] == list("好电影很好")
    labels = align_labels(enc.word_ids(), ids)
    assert labels == [IGNORE_INDEX, 0, 1, 2, 0, 0, IGNORE_INDEX]
    tags = [names[i] for i in word_predictions(enc.word_ids(), [0 if x == IGNORE_INDEX else x for x in labels])]
    assert word_to_char_spans(bio_to_spans(tags), ex.offsets[0]) == [(1, 3, "WORK")]


@pytest.mark.slow
def test_shared_ner_files_read() -> None:
    conll = read_tagged(shared_data("conll2003", "valid.txt"))
    assert len(conll) == 3250 and sum(len(bio_to_spans(t)) for t in conll.tags) == 5942 and conll.repairs == 0
    resume = read_tagged(shared_data("resume_ner", "train.txt"))
    assert resume.scheme == "bmes" and resume.repairs == 2 and len(resume) == 3821
