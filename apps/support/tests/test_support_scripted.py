"""The scripted dialogue set of the benchmark: its shape, and that slot filling completes when the intent is right."""

from __future__ import annotations

import yaml

from lmforge_support import slots
from lmforge_support.config import PACKAGE_DIR, DialogueConfig
from lmforge_support.dialogue import Bot
from lmforge_support.intents import IntentResult
from lmforge_support.kb import KnowledgeBase

SCRIPTED = PACKAGE_DIR / "dialogues" / "scripted.yaml"


class Oracle:
    """Knows the first message's intent; unsure about everything after it."""

    def __init__(self, intent: str) -> None:
        self.intent, self.calls = intent, 0

    def classify(self, text: str, k: int = 3) -> IntentResult:
        self.calls += 1
        if self.calls == 1:
            return IntentResult([(self.intent, 0.97), ("exchange_rate", 0.01), ("change_pin", 0.01)])
        return IntentResult([("exchange_rate", 0.1), ("change_pin", 0.05), ("age_limit", 0.04)])


def test_support_scripted_set_has_enough_dialogues_of_each_kind() -> None:
    dialogues = yaml.safe_load(SCRIPTED.read_text(encoding="utf-8"))["dialogues"]
    assert len(dialogues) >= 40 and len({d["id"] for d in dialogues}) == len(dialogues)
    flows = {d["action"] for d in dialogues if d.get("action") not in (None, "none")}
    assert len(flows) >= 5 and flows <= set(slots.FLOWS)
    assert sum(d["handoff"] for d in dialogues) >= 10


def test_support_slot_dialogues_complete_with_the_right_intent(kb: KnowledgeBase) -> None:
    for d in yaml.safe_load(SCRIPTED.read_text(encoding="utf-8"))["dialogues"]:
        if d.get("action") in (None, "none"):
            continue
        bot, state, replies = Bot(Oracle(d["action"]), kb, DialogueConfig()), {}, []
        for text in d["turns"]:
            reply, state = bot.respond(text, state, d["id"])
            replies.append(reply)
        confirm = next(r.text.lower() for r in replies if r.kind == "confirm")
        assert replies[-1].kind == "action", (d["id"], [r.kind for r in replies])
        assert all(str(v).lower() in confirm for v in d["contains"]), (d["id"], confirm)
