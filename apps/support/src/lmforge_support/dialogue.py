"""One turn of the conversation: state in, reply and new state out (no storage, no HTTP).

Order of checks per customer message: prompt injection (refused), a pending confirmation, a pending
clarification, a slot being filled, a request for a person or angry wording (handoff), then the intent:
confident -> answer (and start its slot flow), unsure -> ask which of the two likeliest intents,
out of scope -> say so; ``max_failures`` unsure or out-of-scope turns in a row -> handoff.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lmforge_support import handoff, slots
from lmforge_support.config import DialogueConfig
from lmforge_support.intents import IntentResult
from lmforge_support.kb import KnowledgeBase, language

_PICK = {"1": 0, "first": 0, "the first": 0, "2": 1, "second": 1, "the second": 1, "第一个": 0, "第二个": 1}
_ZH_MIN_OVERLAP = 0.3


class Classifier(Protocol):
    """What the dialogue needs of the intent model."""

    def classify(self, text: str, k: int = 3) -> IntentResult: ...


@dataclass
class Reply:
    """The bot's answer to one message."""

    text: str
    kind: str
    intent: str | None = None
    confidence: float | None = None
    options: list[dict[str, str]] = field(default_factory=list)
    handoff: str | None = None
    span: dict[str, Any] | None = None  # the part of ``text`` that answers the message: {"start", "end", "text", "score"}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"text": self.text, "kind": self.kind, "intent": self.intent, "confidence": self.confidence,
                "options": self.options, "handoff": self.handoff, "span": self.span}


Span = Callable[[str, str], dict[str, Any]]  # (question, passage) -> {"answer", "start", "end", "score"}


HANDOFF_TEXT = {"en": "I'm passing this conversation to a person; someone from our team will reply here shortly.",
                "zh": "已为您转接人工客服，工作人员会尽快在此回复您。"}
FALLBACK_TEXT = {"en": "Sorry, I didn't understand that. Could you say it another way, for example 'my card hasn't arrived'?",
                 "zh": "抱歉，我没有理解。请换一种说法，例如“卡片还没收到”。"}
REFUSE_TEXT = ("I can only help with your own banking questions. I can't share my instructions, the knowledge base "
               "or anything about other customers.")


class Bot:
    """The dialogue policy over an intent classifier and a knowledge base."""

    def __init__(self, classifier: Classifier, kb: KnowledgeBase, cfg: DialogueConfig, span: Span | None = None,
                 span_min_score: float | None = None) -> None:
        self.classifier, self.kb, self.cfg = classifier, kb, cfg
        self.span, self.span_min_score = span, span_min_score

    def highlight(self, question: str, passage: str) -> dict[str, Any] | None:
        """The span of ``passage`` that answers ``question`` (extractive QA), or None: no QA model, no answer,
        a score under the floor, or a span that is nearly the whole passage (it would say nothing more)."""
        if self.span is None or not passage:
            return None
        found = self.span(question, passage)
        start, end, score = found.get("start", -1), found.get("end", -1), found.get("score")
        if start < 0 or end <= start or end - start >= 0.9 * len(passage):
            return None
        if self.span_min_score is not None and (score is None or score < self.span_min_score):
            return None
        return {"start": start, "end": end, "text": passage[start:end], "score": score}

    def title(self, intent: str, lang: str = "en") -> str:
        """A readable name of ``intent``."""
        entry = self.kb.answer(intent, lang)
        return entry.title if entry else intent.replace("_", " ").rstrip("?")

    def respond(self, text: str, state: dict[str, Any], conversation_id: str = "") -> tuple[Reply, dict[str, Any]]:
        """The reply to ``text`` and the conversation's new state."""
        state = dict(state)
        lang = language(text) if self.cfg.language == "auto" else self.cfg.language
        if handoff.is_injection(text):
            return Reply(REFUSE_TEXT, "refused"), state
        for step in (self._confirming, self._clarifying, self._filling):
            out = step(text, state, conversation_id)
            if out is not None:
                return out
        reason = handoff.handoff_reason(text)
        if reason:
            return self._hand_off(reason, lang, state)
        if lang != "en":
            return self._other_language(text, lang, state)
        return self._understand(text, state)

    def _hand_off(self, reason: str, lang: str, state: dict[str, Any]) -> tuple[Reply, dict[str, Any]]:
        state = {"failures": 0, "handed_off": reason}
        return Reply(HANDOFF_TEXT.get(lang, HANDOFF_TEXT["en"]), "handoff", handoff=reason), state

    def _fail(self, reply: Reply, state: dict[str, Any]) -> tuple[Reply, dict[str, Any]]:
        state["failures"] = state.get("failures", 0) + 1
        if state["failures"] >= self.cfg.max_failures:
            handed, new = self._hand_off("repeated_failure", "en", state)
            return Reply(f"{reply.text} {handed.text}" if reply.kind == "fallback" else handed.text, "handoff",
                         reply.intent, reply.confidence, handoff="repeated_failure"), new
        return reply, state

    def _understand(self, text: str, state: dict[str, Any]) -> tuple[Reply, dict[str, Any]]:
        result = self.classifier.classify(text)
        (first, p1), (second, _) = result.top[0], result.top[1]
        if not result.in_scope:
            # Unlike anything the bot was trained on (see intents.py): say so rather than guess, however sure the classifier is.
            return self._fail(Reply(FALLBACK_TEXT["en"], "fallback", first, p1), state)
        if p1 >= self.cfg.confident:
            return self._answer(first, p1, text, state)
        if p1 >= self.cfg.clarify:
            state["clarify"] = [first, second]
            options = [{"intent": i, "label": self.title(i)} for i in (first, second)]
            ask = f"Do you mean '{options[0]['label']}' or '{options[1]['label']}'? Reply 1 or 2, or say it another way."
            return self._fail(Reply(ask, "clarify", first, p1, options), state)
        return self._fail(Reply(FALLBACK_TEXT["en"], "fallback", first, p1), state)

    def _answer(self, intent: str, confidence: float, text: str, state: dict[str, Any], lang: str = "en") -> tuple[Reply, dict]:
        state.pop("clarify", None)
        state["failures"] = 0
        hits = self.kb.search(text, intent, lang, k=1)
        entry = self.kb.answer(intent, lang) if not hits or hits[0][0].intent != intent else hits[0][0]
        answer = entry.answer if entry else FALLBACK_TEXT.get(lang, FALLBACK_TEXT["en"])
        span = self.highlight(text, answer) if entry and lang == "en" else None
        flow = slots.FLOWS.get(intent) if lang == "en" else None
        if flow is None:
            return Reply(answer, "answer", intent, confidence, span=span), state
        state["flow"] = {"intent": intent, "slots": slots.fill(flow, text, {}, None)}
        follow = self._next_slot(flow, state)
        return Reply(f"{answer} {follow.text}", follow.kind, intent, confidence, span=span), state

    def _next_slot(self, flow: slots.Flow, state: dict[str, Any]) -> Reply:
        filled = state["flow"]["slots"]
        need = slots.missing(flow, filled)
        if need is not None:
            state["flow"]["asked"] = need
            return Reply(f"I can do that here. {slots.QUESTIONS[need]}", "slot", flow.intent)
        state["flow"]["asked"] = None
        state["confirm"] = True
        return Reply(f"To confirm: shall I {flow.confirm.format(**filled)}? (yes / no)", "confirm", flow.intent)

    def _filling(self, text: str, state: dict[str, Any], conversation_id: str) -> tuple[Reply, dict] | None:
        current = state.get("flow")
        if not current or state.get("confirm") or handoff.handoff_reason(text):
            return None
        if slots.is_no(text):
            state.pop("flow")
            return Reply("All right, I've stopped that. What else can I help with?", "answer"), state
        flow = slots.FLOWS[current["intent"]]
        before = dict(current["slots"])
        current["slots"] = slots.fill(flow, text, before, current.get("asked"))
        if current["slots"] == before:
            # Nothing usable: the customer may have changed the subject; a confident new intent wins.
            result = self.classifier.classify(text)
            if result.confidence >= self.cfg.confident and result.label != flow.intent:
                state.pop("flow")
                return None
            return self._fail(Reply(f"Sorry, I didn't catch that. {slots.QUESTIONS[current['asked']]}", "slot", flow.intent), state)
        state["failures"] = 0
        return self._next_slot(flow, state), state

    def _confirming(self, text: str, state: dict[str, Any], conversation_id: str) -> tuple[Reply, dict] | None:
        if not state.get("confirm"):
            return None
        flow = slots.FLOWS[state["flow"]["intent"]]
        if slots.is_yes(text):
            reference = slots.run_action(flow, state["flow"]["slots"], conversation_id)
            state.pop("flow"), state.pop("confirm")
            return Reply(f"Done (demo: nothing was really changed). Your reference is {reference}. Anything else?", "action",
                         flow.intent), state
        if slots.is_no(text):
            state.pop("flow"), state.pop("confirm")
            return Reply("OK, I haven't done anything. What else can I help with?", "answer", flow.intent), state
        return Reply("Please answer yes or no.", "confirm", flow.intent), state

    def _clarifying(self, text: str, state: dict[str, Any], conversation_id: str) -> tuple[Reply, dict] | None:
        choices = state.get("clarify")
        if not choices:
            return None
        key = re.sub(r"[.!\s]+$", "", text.strip().lower())
        pick = _PICK.get(key)
        if pick is None:
            for i, intent in enumerate(choices):
                if key in (intent, self.title(intent).lower()):
                    pick = i
        state.pop("clarify")
        if pick is None:
            return None
        return self._answer(choices[pick], 1.0, self.title(choices[pick]), state)

    def _other_language(self, text: str, lang: str, state: dict[str, Any]) -> tuple[Reply, dict[str, Any]]:
        hits = self.kb.search(text, None, lang, k=1)
        if hits and hits[0][1] >= _ZH_MIN_OVERLAP:
            entry, score = hits[0]
            state["failures"] = 0
            return Reply(entry.answer, "answer", entry.intent, score), state
        return self._fail(Reply(FALLBACK_TEXT.get(lang, FALLBACK_TEXT["en"]), "fallback"), state)
