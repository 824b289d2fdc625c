"""Tests for PII masking: the corpus of expected outputs, the logging filter and nested objects."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest

from lmforge.errors import LmforgeError
from lmforge.serving.privacy import KINDS, PLACEHOLDERS, PIIMatch, RedactingFilter, find_pii, mask_obj, mask_pii

CORPUS = Path(__file__).parent / "data" / "pii_corpus.jsonl"
ROWS = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
# A valid resident ID (MOD 11-2 digit 2, born 1990-03-07) whose 18 digits also pass the Luhn check.
ID_PASSING_LUHN = "110101199003071102"


def _masked_values(text: str, masked: str) -> list[str]:
    """The substrings of ``text`` that the expected output replaces with placeholders."""
    pieces = re.split(r"(\[(?:EMAIL|PHONE|ID|CARD|IP)\])", masked)
    pattern = "".join("(.+?)" if p in PLACEHOLDERS.values() else re.escape(p) for p in pieces)
    match = re.fullmatch(pattern, text, re.DOTALL)
    assert match, f"expected output does not line up with its text: {masked!r}"
    return list(match.groups())


@pytest.mark.parametrize("row", ROWS, ids=[f"line{i + 1}" for i in range(len(ROWS))])
def test_corpus_line_is_masked_exactly(row: dict[str, str]) -> None:
    assert mask_pii(row["text"]) == row["masked"]


def test_corpus_covers_every_kind_and_near_misses_in_both_languages() -> None:
    assert len(ROWS) >= 60
    masked = "".join(r["masked"] for r in ROWS)
    assert all(placeholder in masked for placeholder in PLACEHOLDERS.values())
    untouched = [r["text"] for r in ROWS if r["text"] == r["masked"]]
    assert len(untouched) >= 20
    assert any(re.search("[\u4e00-\u9fff]", t) for t in untouched)
    assert any(re.search("[\u4e00-\u9fff]", r["text"]) and r["text"] != r["masked"] for r in ROWS)


def test_no_valid_pii_from_the_corpus_survives_in_one_document() -> None:
    values = [v for r in ROWS for v in _masked_values(r["text"], r["masked"])]
    assert len(values) >= 60
    document = mask_pii("\n".join(r["text"] for r in ROWS))
    assert document == "\n".join(r["masked"] for r in ROWS)
    for value in values:
        # Near-misses may contain a valid value inside a longer number ("138123456789"); that is no survival.
        assert not re.search(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])", document), value


def test_find_pii_reports_kind_and_offsets_in_text_order() -> None:
    text = "mail a@b.cn, call 13812345678 from 10.1.2.3"
    assert find_pii(text) == [
        PIIMatch("email", 5, 11, "a@b.cn"),
        PIIMatch("phone", 18, 29, "13812345678"),
        PIIMatch("ip", 35, 43, "10.1.2.3"),
    ]


def test_offsets_refer_to_the_original_full_width_text() -> None:
    text = "电话：１３８１２３４５６７８。"
    (match,) = find_pii(text)
    assert (match.kind, match.text) == ("phone", "１３８１２３４５６７８")
    assert text[match.start : match.end] == match.text


def test_kinds_filter_masks_only_the_kinds_asked_for() -> None:
    text = "a@b.cn 13812345678"
    assert mask_pii(text, kinds=["email"]) == "[EMAIL] 13812345678"
    assert mask_pii(text, kinds=("phone",)) == "a@b.cn [PHONE]"
    assert mask_pii(text, kinds=[]) == text


def test_an_id_that_passes_luhn_is_an_id_never_a_card() -> None:
    text = f"身份证{ID_PASSING_LUHN}"
    assert mask_pii(text) == "身份证[ID]"
    assert find_pii(text, kinds=["card"]) == []


def test_unknown_kind_is_a_one_line_error() -> None:
    with pytest.raises(LmforgeError, match="unknown PII kind 'passport'; choose from email, phone, id, card, ip"):
        mask_pii("x", kinds=["passport"])


def test_masking_is_idempotent() -> None:
    once = "\n".join(mask_pii(r["text"]) for r in ROWS)
    assert mask_pii(once) == once


def _logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


def test_logging_filter_masks_the_rendered_message_of_a_record_with_args() -> None:
    logger, stream = _logger("lmforge.test.privacy.args")
    logger.info("user %s called from %s about order %d", "jane@corp.io", "10.0.0.7", 202401150001235)
    logger.info("%(who)s rang", {"who": "+44 20 7946 0958"})
    assert stream.getvalue() == "INFO user [EMAIL] called from [IP] about order 202401150001235\nINFO [PHONE] rang\n"


def test_logging_filter_sees_child_records_and_masks_tracebacks() -> None:
    logger, stream = _logger("lmforge.test.privacy.parent")
    child = logging.getLogger("lmforge.test.privacy.parent.child")
    try:
        raise ValueError("card 4111 1111 1111 1111 declined")
    except ValueError:
        child.exception("payment failed for %s", "13812345678")
    out = stream.getvalue()
    assert "payment failed for [PHONE]" in out
    assert "ValueError: card [CARD] declined" in out
    assert "4111" not in out and "13812345678" not in out


def test_logging_filter_never_lets_a_bad_format_print_raw_args() -> None:
    logger, stream = _logger("lmforge.test.privacy.badformat")
    logger.info("%d items", "jane@corp.io")
    assert stream.getvalue() == "INFO %d items ('[EMAIL]',)\n"


def test_logging_filter_record_is_masked_in_place() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "id %s", ("123-45-6789",), None)
    assert RedactingFilter(kinds=["id"]).filter(record) is True
    assert (record.msg, record.args, record.getMessage()) == ("id [ID]", None, "id [ID]")


def test_mask_obj_masks_nested_strings_and_keys_and_keeps_the_original() -> None:
    transcript = {
        "user": "jane@corp.io",
        "turns": [{"role": "user", "text": "call 13812345678"}, ("ip", "10.0.0.7")],
        "jane@corp.io": {"count": 3, "ok": True, "score": 0.5, "none": None},
    }
    original = json.loads(json.dumps(transcript))
    assert mask_obj(transcript) == {
        "user": "[EMAIL]",
        "turns": [{"role": "user", "text": "call [PHONE]"}, ("ip", "[IP]")],
        "[EMAIL]": {"count": 3, "ok": True, "score": 0.5, "none": None},
    }
    assert json.loads(json.dumps(transcript)) == original
    assert mask_obj("a@b.cn", kinds=["phone"]) == "a@b.cn"
    assert mask_obj(42) == 42


def test_kinds_constant_matches_placeholders() -> None:
    assert set(KINDS) == set(PLACEHOLDERS)
