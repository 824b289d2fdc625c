"""Slot filling: the details some intents need before the bot can act, read from the customer's words.

An action is a stub that only logs (``STUB``): this application does not move money or block cards.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("lmforge.support.actions")

_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
_AMOUNT = re.compile(r"(?:[£$€]\s?(\d[\d,]*(?:\.\d{1,2})?)|(\d[\d,]*(?:\.\d{1,2})?)\s?(?:gbp|eur|usd|pounds?|euros?|dollars?|quid))",
                     re.IGNORECASE)
_BARE_NUMBER = re.compile(r"^\s*(\d[\d,]*(?:\.\d{1,2})?)\s*$")
_LAST4 = re.compile(r"(?:ending(?: in| with)?|last (?:four|4)(?: digits)?(?: are| is)?|ends in|card)\D{0,12}(\d{4})\b|^\s*(\d{4})\s*$",
                    re.IGNORECASE)
_DATE = re.compile(rf"\b(today|yesterday|last (?:week|monday|tuesday|wednesday|thursday|friday|saturday|sunday)|"
                   rf"on (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)|\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?|"
                   rf"\d{{1,2}}(?:st|nd|rd|th)? (?:of )?(?:{_MONTHS})[a-z]*|(?:{_MONTHS})[a-z]* \d{{1,2}}(?:st|nd|rd|th)?)\b", re.IGNORECASE)
_RECIPIENT = re.compile(r"\bto ([A-Z][a-z]+(?: [A-Z][a-z]+)?)")
_MERCHANT = re.compile(r"\b(?:at|from|with) ([A-Z][\w&']+(?: [A-Z][\w&']+)?)")
_YES = re.compile(r"^\s*(yes|yeah|yep|y|sure|ok(ay)?|confirm(ed)?|correct|please do|go ahead|do it|是|对|确认|好的?)\b", re.IGNORECASE)
_NO = re.compile(r"^\s*(no|nope|n|cancel|stop|don'?t|wrong|不|取消)\b", re.IGNORECASE)


def amount(text: str, asked: bool) -> str | None:
    """An amount with a currency sign or word, or a bare number when the bot just asked for one."""
    m = _AMOUNT.search(text)
    if m:
        return (m.group(1) or m.group(2)).replace(",", "")
    m = _BARE_NUMBER.match(text) if asked else None
    return m.group(1).replace(",", "") if m else None


def last_four(text: str, asked: bool) -> str | None:
    """The card's last four digits ("ending in 1234", or "1234" alone)."""
    m = _LAST4.search(text)
    if m and (m.group(1) or asked):
        return m.group(1) or m.group(2)
    return None


def date(text: str, asked: bool) -> str | None:
    """A date as the customer wrote it (today, last friday, 3 March, 2026-03-03)."""
    m = _DATE.search(text)
    return m.group(1).lower() if m else None


def _name(pattern: re.Pattern[str]) -> Callable[[str, bool], str | None]:
    def extract(text: str, asked: bool) -> str | None:
        m = pattern.search(text)
        if m:
            return m.group(1)
        words = text.strip().strip(".!")
        # Right after the question, a short reply is the name itself ("Anna Smith", "Tesco").
        return words if asked and 0 < len(words) <= 40 and len(words.split()) <= 4 and not any(c.isdigit() for c in words) else None

    return extract


EXTRACTORS: dict[str, Callable[[str, bool], str | None]] = {
    "amount": amount, "card_last4": last_four, "date": date, "recipient": _name(_RECIPIENT), "merchant": _name(_MERCHANT),
}
QUESTIONS = {
    "amount": "How much was it (for example £25.50)?",
    "card_last4": "What are the last four digits of the card?",
    "date": "On what date was it (for example 'yesterday' or '3 March')?",
    "recipient": "Who was the transfer to?",
    "merchant": "Which shop or company was it?",
}


@dataclass(frozen=True)
class Flow:
    """An intent that needs details before its (stub) action."""

    intent: str
    slots: tuple[str, ...]
    action: str
    confirm: str


FLOWS = {f.intent: f for f in (
    Flow("lost_or_stolen_card", ("card_last4",), "freeze_card", "freeze the card ending in {card_last4} and order a replacement"),
    Flow("compromised_card", ("card_last4",), "freeze_card", "freeze the card ending in {card_last4}"),
    Flow("cancel_transfer", ("amount", "recipient"), "cancel_transfer", "cancel the transfer of {amount} to {recipient}"),
    Flow("request_refund", ("merchant", "amount", "date"), "open_refund_request",
         "open a refund request for {amount} from {merchant} on {date}"),
    Flow("transaction_charged_twice", ("amount", "date"), "open_dispute", "dispute the double charge of {amount} on {date}"),
    Flow("card_payment_not_recognised", ("card_last4", "amount", "date"), "open_dispute",
         "dispute the payment of {amount} on {date} with the card ending in {card_last4}"),
    Flow("transfer_not_received_by_recipient", ("amount", "recipient", "date"), "trace_transfer",
         "trace the transfer of {amount} to {recipient} sent {date}"),
)}


def fill(flow: Flow, text: str, slots: dict[str, str], asked: str | None) -> dict[str, str]:
    """``slots`` with every missing slot of ``flow`` that ``text`` gives (the asked one may be a bare reply)."""
    out = dict(slots)
    for name in flow.slots:
        if name not in out:
            value = EXTRACTORS[name](text, name == asked)
            if value:
                out[name] = value
    return out


def missing(flow: Flow, slots: dict[str, str]) -> str | None:
    """The first slot of ``flow`` still missing, or None."""
    return next((s for s in flow.slots if s not in slots), None)


def is_yes(text: str) -> bool:
    """The customer agrees."""
    return bool(_YES.match(text))


def is_no(text: str) -> bool:
    """The customer declines."""
    return bool(_NO.match(text))


def run_action(flow: Flow, slots: dict[str, str], conversation_id: str) -> str:
    """The stub action: logs what a real system would do and returns a reference number."""
    reference = f"REF-{zlib.crc32(repr((conversation_id, flow.action, sorted(slots.items()))).encode()):08X}"
    log.info("STUB action %s for conversation %s: %s (%s)", flow.action, conversation_id, slots, reference)
    return reference
