"""When a conversation goes to a person, and what the bot refuses: explicit requests, negative wording, prompt injection."""

from __future__ import annotations

import re

_EXPLICIT = re.compile(
    r"\b(human|real person|a person|someone real|agent|operator|representative|customer service|speak to someone|talk to someone|"
    r"live chat|call me)\b|人工|真人|客服|转人工", re.IGNORECASE)
_NEGATIVE = re.compile(
    r"\b(useless|terrible|awful|ridiculous|worst|furious|angry|pathetic|stupid bot|hate|disgusting|unacceptable|fed up|"
    r"scam|rubbish|waste of time|not helping|doesn'?t help|unhelpful)\b|太差|垃圾|气死|没用|投诉", re.IGNORECASE)
_INJECTION = re.compile(
    r"ignore (all |any |the )?(previous|prior|above|earlier) (instructions|rules|prompts?)|system prompt|developer mode|jailbreak|"
    r"(reveal|show|print|dump|list|give me) (me )?(your |the |all )?(whole |entire )?(knowledge base|kb|prompt|instructions|database|config)|"
    r"(other|another) (users?|customers?|people)'?s? (data|details|conversations?|accounts?|messages?|transactions?)|"
    r"pretend (you are|to be)|act as (an? )?(admin|developer|root)|忽略(之前|以上)|其他(用户|客户)", re.IGNORECASE)


def wants_person(text: str) -> bool:
    """The customer asks for a person."""
    return bool(_EXPLICIT.search(text))


def is_negative(text: str) -> bool:
    """The message is angry or says the bot does not help."""
    return bool(_NEGATIVE.search(text))


def is_injection(text: str) -> bool:
    """The message tries to change the bot's rules or get data it must not give."""
    return bool(_INJECTION.search(text))


def handoff_reason(text: str) -> str | None:
    """``explicit`` or ``negative`` when ``text`` alone sends the conversation to a person."""
    if wants_person(text):
        return "explicit"
    if is_negative(text):
        return "negative"
    return None
