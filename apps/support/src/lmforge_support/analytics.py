"""Figures computed from the stored conversations: containment, fallback and handoff rates, intents, feedback, exports."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from typing import Any

from lmforge_support.store import Store

_NOT_UNDERSTOOD = ("fallback", "clarify")


def summary(store: Store, low_confidence: float = 0.6, examples: int = 20) -> dict[str, Any]:
    """The analytics page's figures.

    containment: share of conversations with a customer message that never went to a person;
    fallback_rate: share of bot replies that did not understand (fallback or clarifying question);
    handoff_rate: share of conversations handed to a person.
    """
    turns, handoffs = store.all_turns(), store.all_handoffs()
    talked = {t.conversation_id for t in turns if t.role == "customer"}
    handed = {h.conversation_id for h in handoffs} & talked
    bot = [t for t in turns if t.role == "bot"]
    customer_text = {t.id: t.text for t in turns if t.role == "customer"}
    by_day: dict[str, Counter] = defaultdict(Counter)
    for t in bot:
        day = t.created.date().isoformat()
        by_day[day]["turns"] += 1
        by_day[day]["up" if t.feedback > 0 else "down" if t.feedback < 0 else "none"] += 1
        by_day[day]["low_confidence"] += int(t.confidence is not None and t.confidence < low_confidence)
    low = [{"text": customer_text.get(t.reply_to, ""), "intent": t.intent, "confidence": round(t.confidence, 3)}
           for t in bot if t.confidence is not None and t.confidence < low_confidence][-examples:]
    return {
        "conversations": len(talked),
        "containment": 1 - len(handed) / len(talked) if talked else None,
        "fallback_rate": sum(t.kind in _NOT_UNDERSTOOD for t in bot) / len(bot) if bot else None,
        "handoff_rate": len(handed) / len(talked) if talked else None,
        "handoff_reasons": dict(Counter(h.reason for h in handoffs)),
        "intents": dict(Counter(t.intent for t in bot if t.intent).most_common()),
        "feedback": {"up": sum(t.feedback > 0 for t in bot), "down": sum(t.feedback < 0 for t in bot)},
        "by_day": {day: dict(c) for day, c in sorted(by_day.items())},
        "low_confidence_examples": low,
    }


def export_csv(store: Store, low_confidence: float = 0.6) -> str:
    """CSV (``text,category,confidence,feedback``) of customer messages whose reply was unsure or got a thumbs down.

    ``category`` holds the predicted intent for a person to correct; the corrected file merges with the
    training CSV for ``lmforge finetune``. Texts are stored masked, so no PII leaves this way.
    """
    turns = store.all_turns()
    customer = {t.id: t for t in turns if t.role == "customer"}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["text", "category", "confidence", "feedback"])
    for t in turns:
        asked = customer.get(t.reply_to)
        unsure = t.confidence is not None and t.confidence < low_confidence
        if t.role == "bot" and asked is not None and (unsure or t.feedback < 0):
            writer.writerow([asked.text, t.intent or "", "" if t.confidence is None else f"{t.confidence:.3f}", t.feedback])
    return out.getvalue()
