"""PII masking for logs, transcripts and stored requests: e-mail, phone, national ID, card and IP, in English and Chinese.

Every kind is a precompiled pattern for the shape plus a check for what a shape cannot say (the
Chinese resident ID's MOD 11-2 digit and birth date, the SSN's unassigned ranges, the card's Luhn
digit, IP octets), so order numbers, amounts, dates and versions that only look like PII stay.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lmforge.errors import LmforgeError

KINDS = ("email", "phone", "id", "card", "ip")
PLACEHOLDERS = {"email": "[EMAIL]", "phone": "[PHONE]", "id": "[ID]", "card": "[CARD]", "ip": "[IP]"}

# Full-width ASCII sits at a fixed offset from ASCII; mapping it one character to one keeps offsets valid.
_HALFWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
# re.ASCII makes \w ASCII-only, so a CJK character next to a number counts as a boundary ("手机13812345678").
# A digit joined by . : / - continues a longer token (a date, a version, an order number), so it is no boundary.
_L = r"(?<!\w)(?<!\d[.:/-])"
_R = r"(?!\w)(?![.:/-]\d)"
_FULLWIDTH = re.compile("[\uff01-\uff5e\u3000]+")
_NON_DIGIT = re.compile(r"\D", re.ASCII)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_VERSION_BEFORE = re.compile(r"(?:\bv|\bver\.?|\bversion|版本号?)\s*[:：]?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class PIIMatch:
    """One piece of PII found in a text.

    Attributes:
        kind: One of ``KINDS``.
        start: Offset of the first character.
        end: Offset after the last character.
        text: ``text[start:end]`` of the searched text.
    """

    kind: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class _Detector:
    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool]
    # Lower wins a tie between candidates of the same span: a valid ID that also passes Luhn is an ID.
    rank: int
    # Phones are runs of groups; one that swallowed a following number is retried without its last groups.
    shrink: bool = False
    context_ok: Callable[[str, int], bool] | None = None
    # A character every match contains: a text without it skips the pattern.
    needs: str = ""


def _digits(text: str) -> str:
    return _NON_DIGIT.sub("", text)


def _luhn(number: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(number)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _valid_email(text: str) -> bool:
    local = text.rpartition("@")[0]
    return len(text) <= 254 and len(local) <= 64 and ".." not in local and not local.endswith(".")


def _valid_cn_id(text: str) -> bool:
    s = text.replace(" ", "").upper()
    if len(s) != 18:
        return False
    total = sum(int(c) * w for c, w in zip(s[:17], _ID_WEIGHTS))
    if _ID_CHECK[total % 11] != s[17]:
        return False
    try:
        born = datetime.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    return datetime.date(1900, 1, 1) <= born <= datetime.date.today()


def _valid_card(text: str) -> bool:
    d = _digits(text)
    return 13 <= len(d) <= 19 and d[0] != "0" and _luhn(d)


def _valid_international(text: str) -> bool:
    return 8 <= len(_digits(text)) <= 15


def _valid_trunk(text: str) -> bool:
    return 9 <= len(_digits(text)) <= 12


def _valid_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _valid_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    # "::1", "add::" and the like are valid addresses but say nothing about a person.
    return sum(1 for group in text.split(":") if group) >= 2


def _not_a_version(text: str, start: int) -> bool:
    return _VERSION_BEFORE.search(text, max(0, start - 12), start) is None


def _always(text: str) -> bool:
    return True


def _compile(body: str, first: str = r"\d") -> re.Pattern[str]:
    # Testing the first character before the lookbehinds halves the time spent on text without digits.
    return re.compile(f"(?={first}){_L}(?:{body}){_R}", re.ASCII)


_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w%+-][\w.%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"\.[A-Za-z]{2,24}(?![\w-])",
    re.ASCII,
)
_DETECTORS = (
    _Detector("email", _EMAIL, _valid_email, rank=5, needs="@"),
    # Chinese mobile: 1[3-9]x xxxx xxxx, optionally after +86 / 0086 / 86 / (+86).
    _Detector("phone", _compile(r"(?:(?:\(\+?86\)|(?:\+|00)?86)[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}", r"[\d(+]"), _always, rank=1),
    # International: +CC or 00CC, then groups of up to 4 digits (E.164: at most 15 digits).
    # This and the trunk-0 form never start right after "digit space": that is the middle of a grouped card or account number.
    _Detector("phone", _compile(r"(?<!\d )(?:\+|00)[1-9]\d{0,2}(?:[ -]?\(?\d{1,4}\)?){2,6}", r"[\d+]"), _valid_international, rank=1, shrink=True),
    # North American: (415) 555-2671, 415-555-2671, 415.555.2671, 1-415-555-2671; area and exchange start 2-9.
    _Detector("phone", _compile(r"(?:1[ .-]?)?(?:\([2-9]\d{2}\)[ ]?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}", r"[\d(]"), _always, rank=1),
    # Trunk-0 national numbers (UK, EU, Chinese landlines): 020 7946 0958, 01 42 68 53 00, 010-12345678, 030/901820.
    # Only the first separator may be a slash, so dates like 01/15/2024 never qualify.
    _Detector(
        "phone", _compile(r"(?<!\d )\(?0[1-9]\d{0,4}\)?(?:[ /-]|(?<=\))[ ]?)\d{2,8}(?:[ -]\d{2,4}){0,3}", r"[\d(]"), _valid_trunk, rank=1, shrink=True
    ),
    # Chinese resident ID: 6-digit region, birth date, 3-digit sequence, MOD 11-2 check digit (optionally spaced 6-8-4).
    _Detector("id", _compile(r"[1-8]\d{5} ?(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]) ?\d{3}[\dXx]"), _valid_cn_id, rank=0),
    # US SSN: area 000, 666 and 9xx, group 00 and serial 0000 are never issued.
    _Detector("id", _compile(r"(?!000|666|9)\d{3}-(?!00)\d{2}-(?!0000)\d{4}"), _always, rank=0),
    # Cards: an unbroken 13-19 digit run, or the printed groupings 4-4-4-4(-3), 4-4-4-1 and 4-6-5 (Amex).
    _Detector(
        "card", _compile(r"\d{13,19}|\d{4}(?:[ -]\d{4}){2}[ -](?:\d{4}(?:[ -]\d{3})?|\d)|\d{4}[ -]\d{6}[ -]\d{5}"), _valid_card, rank=2, shrink=True
    ),
    # A port (":8080") or prefix length ("/24") may follow an IPv4 address; a fifth ".n" may not.
    _Detector("ip", re.compile(r"(?=\d)(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w)(?!\.\d)", re.ASCII), _valid_ipv4, rank=3, context_ok=_not_a_version),
    _Detector(
        "ip",
        re.compile(r"(?=[0-9A-Fa-f:])(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])", re.ASCII),
        _valid_ipv6,
        rank=3,
        needs=":",
    ),
)


def _check_kinds(kinds: Iterable[str] | None) -> frozenset[str]:
    if kinds is None:
        return frozenset(KINDS)
    wanted = frozenset(kinds)
    unknown = sorted(wanted - set(KINDS))
    if unknown:
        raise LmforgeError(f"unknown PII kind {unknown[0]!r}; choose from {', '.join(KINDS)}.")
    return wanted


def _accept(det: _Detector, text: str, match: re.Match[str]) -> tuple[int, int] | None:
    start, end = match.span()
    while True:
        if det.valid(text[start:end]) and (det.context_ok is None or det.context_ok(text, start)):
            return start, end
        cut = text.rfind(" ", start, end)
        if not det.shrink or cut <= start:
            return None
        shorter = det.pattern.match(text, start, cut)
        if shorter is None:
            return None
        end = shorter.end()


def _candidates(text: str) -> list[tuple[int, int, int, str]]:
    found = []
    for det in _DETECTORS:
        if det.needs and det.needs not in text:
            continue
        for match in det.pattern.finditer(text):
            span = _accept(det, text, match)
            if span is not None:
                found.append((span[0], span[1], det.rank, det.kind))
    return found


def find_pii(text: str, kinds: Iterable[str] | None = None) -> list[PIIMatch]:
    """Find PII in ``text``: non-overlapping matches in text order.

    All kinds are searched and overlaps resolved before ``kinds`` filters the result, so a
    Chinese ID that also passes the Luhn check is reported as an ID (or not at all), never as a card.

    Args:
        text: Any text, English, Chinese or mixed; full-width digits and signs are recognized.
        kinds: The kinds to report (a subset of ``KINDS``); ``None`` means all.

    Returns:
        The matches sorted by ``start``; where candidates overlap, the longest wins, then the most
        specific kind (id, phone, card, ip, email).

    Raises:
        LmforgeError: A kind is not one of ``KINDS``.
    """
    wanted = _check_kinds(kinds)
    # Only the full-width runs are translated: str.translate over a whole long text costs more than the scan.
    candidates = _candidates(_FULLWIDTH.sub(lambda m: m.group().translate(_HALFWIDTH), text))
    candidates.sort(key=lambda c: (c[0] - c[1], c[2], c[0]))
    taken = bytearray(len(text))
    chosen = []
    for start, end, _, kind in candidates:
        if 1 in taken[start:end]:
            continue
        taken[start:end] = b"\x01" * (end - start)
        if kind in wanted:
            chosen.append(PIIMatch(kind, start, end, text[start:end]))
    return sorted(chosen, key=lambda m: m.start)


def mask_pii(text: str, kinds: Iterable[str] | None = None) -> str:
    """Replace each piece of PII in ``text`` with its placeholder (``[EMAIL]``, ``[PHONE]``, ``[ID]``, ``[CARD]``, ``[IP]``).

    Args:
        text: The text to mask.
        kinds: The kinds to mask (a subset of ``KINDS``); ``None`` means all.

    Returns:
        The masked text; text without PII comes back unchanged.
    """
    parts = []
    last = 0
    for match in find_pii(text, kinds):
        parts.append(text[last : match.start])
        parts.append(PLACEHOLDERS[match.kind])
        last = match.end
    parts.append(text[last:])
    return "".join(parts)


def mask_obj(obj: Any, kinds: Iterable[str] | None = None) -> Any:
    """Mask every string inside nested dicts, lists and tuples (JSON logs, stored transcripts).

    Dict keys are masked too: a transcript keyed by e-mail address must not keep the address.

    Args:
        obj: A string, or a dict/list/tuple holding strings at any depth; other values pass through.
        kinds: The kinds to mask (a subset of ``KINDS``); ``None`` means all.

    Returns:
        A new object of the same shape; ``obj`` is not modified.
    """
    if isinstance(obj, str):
        return mask_pii(obj, kinds)
    if isinstance(obj, dict):
        return {mask_obj(k, kinds): mask_obj(v, kinds) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(mask_obj(v, kinds) for v in obj)
    return obj


class RedactingFilter(logging.Filter):
    """A logging filter that masks PII in a record's rendered message, traceback and stack before any handler sees it.

    Attach it to every handler (``handler.addFilter(RedactingFilter())``): a filter on a logger does
    not see records that propagate up from its child loggers, a filter on a handler sees them all.

    Args:
        kinds: The kinds to mask (a subset of ``KINDS``); ``None`` means all.
    """

    def __init__(self, kinds: Iterable[str] | None = None) -> None:
        super().__init__()
        self.kinds = _check_kinds(kinds)

    def filter(self, record: logging.LogRecord) -> bool:
        """Render ``msg % args``, mask it into ``record.msg`` and drop ``args``; always keeps the record."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A bad format string would make the handler print the raw args in its error report.
            message = f"{record.msg} {record.args!r}"
        record.msg = mask_pii(message, self.kinds)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_pii(record.exc_text, self.kinds)
        if record.stack_info:
            record.stack_info = mask_pii(record.stack_info, self.kinds)
        return True
