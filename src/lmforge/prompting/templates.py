"""Prompt templates: text with the slots ``{text}``, ``{text_pair}``, ``{mask}`` and ``{label}``.

A template is plain text in which a slot name in braces is replaced when rendering; ``{{``
and ``}}`` stand for literal braces. Each method needs certain slots (cloze scoring needs
``{mask}``, decoder scoring needs ``{label}`` at the end...), checked by :meth:`Template.require`
so a template that cannot work is rejected before any model is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any

from lmforge.data.segment import is_chinese as text_is_chinese
from lmforge.errors import ConfigError
from lmforge.prompting.decoder import chat_prompt

SLOTS = ("text", "text_pair", "mask", "label")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True)
class Template:
    """A parsed template.

    Attributes:
        source: The template text as written.
        parts: Literal strings and slot names in order; slots are ``("slot", name)`` tuples.
        where: Where the template came from (a config key), for error messages.
    """

    source: str
    parts: tuple[str | tuple[str, str], ...]
    where: str = "template"

    @classmethod
    def parse(cls, source: str, where: str = "template") -> Template:
        """Parse ``source``; unknown slots and stray braces are errors that name ``where``."""
        parts: list[str | tuple[str, str]] = []
        literal, pos = "", 0
        for match in _TOKEN.finditer(source):
            literal += source[pos:match.start()]
            pos = match.end()
            token = match.group(0)
            if token in ("{{", "}}"):
                literal += token[0]
                continue
            name = match.group(1)
            if name is None:
                raise ConfigError(f"{where}: unmatched '{token}' in {source!r}; write '{token * 2}' for a literal brace")
            if name not in SLOTS:
                allowed = ", ".join("{" + s + "}" for s in SLOTS)
                raise ConfigError(f"{where}: unknown slot {{{name}}} in {source!r}; slots are {allowed}")
            if literal:
                parts.append(literal)
                literal = ""
            parts.append(("slot", name))
        literal += source[pos:]
        if literal:
            parts.append(literal)
        return cls(source, tuple(parts), where)

    @property
    def slots(self) -> list[str]:
        """Slot names in order of appearance."""
        return [p[1] for p in self.parts if isinstance(p, tuple)]

    def require(self, slots: tuple[str, ...], method: str, example: str) -> Template:
        """Check that the template has every slot in ``slots``; returns itself.

        Raises:
            ConfigError: A slot is missing; the message names the template, the method and an example.
        """
        for slot in slots:
            if slot not in self.slots:
                raise ConfigError(f"{self.where} {self.source!r} has no {{{slot}}} slot, which the {method} method "
                                  f"needs; write one like {example!r}")
        return self

    def require_last(self, slot: str, method: str) -> Template:
        """Check that ``slot`` is the last slot (decoders score the words that follow the prompt)."""
        if self.slots and self.slots[-1] != slot:
            raise ConfigError(f"{self.where} {self.source!r}: the {method} method scores the label after the prompt, "
                              f"so {{{slot}}} must be the last slot")
        return self

    def render(self, **values: str) -> str:
        """The template with each slot replaced by ``values[slot]`` (missing slots render empty)."""
        return "".join(p if isinstance(p, str) else values.get(p[1], "") for p in self.parts)

    def prefix(self, slot: str, **values: str) -> str:
        """The rendering of everything before the first ``slot``."""
        out = []
        for p in self.parts:
            if isinstance(p, tuple) and p[1] == slot:
                break
            out.append(p if isinstance(p, str) else values.get(p[1], ""))
        return "".join(out)


@dataclass(frozen=True)
class TemplateSet:
    """The templates of one task and language, one per use.

    Attributes:
        cloze: For masked LMs: text with ``{mask}`` where the label word goes.
        prompt: For decoders: text ending in ``{label}``; also the shape of in-context demonstrations.
        description: A label description for sentence-embedding similarity; ``{label}`` is a label word.
        instruction: The user turn of an instruct model's chat; the label choices are appended to it.
        choices: The line listing the label choices, with ``{label}`` replaced by the comma-joined words.
        system: The system turn when a decoder prompt is given as a chat (see :func:`chat_wrapped`).
    """

    cloze: str
    prompt: str
    description: str
    instruction: str
    choices: str = "Answer with one of: {label}."
    system: str = ""

    def parsed(self, name: str, where: str = "prompt.templates") -> Template:
        """The named template, parsed, with ``where.name`` in its error messages."""
        return Template.parse(getattr(self, name), f"{where}.{name}")

    def updated(self, overrides: dict[str, str | None]) -> TemplateSet:
        """A copy with the non-empty ``overrides`` replacing built-in templates."""
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in overrides.items() if k in known and v})


_ZH_CHOICES = "请从以下选项中选一个回答：{label}。"

BUILTIN: dict[tuple[str, str], TemplateSet] = {
    ("sentiment", "en"): TemplateSet(
        cloze="{text} It was {mask}.",
        prompt="Review: {text}\nSentiment: {label}",
        description="It was {label}.",
        instruction="What is the sentiment of this review?\n\n{text}",
        system="You are a sentiment classifier.",
    ),
    ("sentiment", "zh"): TemplateSet(
        cloze="{text}总之很{mask}。",
        prompt="评论：{text}\n情感：{label}",
        description="总之很{label}。",
        instruction="这条评论的情感是什么？\n\n{text}",
        system="你是一个情感分类器。",
        choices=_ZH_CHOICES,
    ),
    ("topic", "en"): TemplateSet(
        cloze="[Topic: {mask}] {text}",
        prompt="Article: {text}\nTopic: {label}",
        description="This text is about {label}.",
        instruction="What is the topic of this text?\n\n{text}",
        system="You are a topic classifier.",
    ),
    ("topic", "zh"): TemplateSet(
        cloze="【{mask}】{text}",
        prompt="文章：{text}\n主题：{label}",
        description="这是一篇关于{label}的文章。",
        instruction="这段文字的主题是什么？\n\n{text}",
        system="你是一个主题分类器。",
        choices=_ZH_CHOICES,
    ),
    ("intent", "en"): TemplateSet(
        cloze="{text} The question is about {mask}.",
        prompt="Query: {text}\nIntent: {label}",
        description="A question about {label}.",
        instruction="What does the customer want in this message?\n\n{text}",
        system="You classify customer messages by intent.",
    ),
    ("intent", "zh"): TemplateSet(
        cloze="{text}这个问题是关于{mask}的。",
        prompt="问题：{text}\n意图：{label}",
        description="关于{label}的问题。",
        instruction="这位用户想做什么？\n\n{text}",
        system="你负责识别用户消息的意图。",
        choices=_ZH_CHOICES,
    ),
    ("entailment", "en"): TemplateSet(
        cloze="{text} ? {mask} , {text_pair}",
        prompt="Premise: {text}\nHypothesis: {text_pair}\nDoes the premise entail the hypothesis? {label}",
        description="{label}",
        instruction="Premise: {text}\nHypothesis: {text_pair}\n\nDoes the premise entail the hypothesis?",
        system="You decide whether a premise entails a hypothesis.",
    ),
    ("entailment", "zh"): TemplateSet(
        cloze="{text}？{mask}，{text_pair}",
        prompt="前提：{text}\n假设：{text_pair}\n前提是否蕴含假设？{label}",
        description="{label}",
        instruction="前提：{text}\n假设：{text_pair}\n\n前提是否蕴含假设？",
        system="你判断前提是否蕴含假设。",
        choices=_ZH_CHOICES,
    ),
}

TASKS = sorted({task for task, _ in BUILTIN})


def builtin(task: str, language: str) -> TemplateSet:
    """The built-in templates of ``task`` in ``language`` (``en`` or ``zh``)."""
    try:
        return BUILTIN[(task, language)]
    except KeyError:
        raise ConfigError(f"prompt.task '{task}' has no built-in templates in '{language}'; tasks: {', '.join(TASKS)}, "
                          "languages: en, zh") from None


_USER, _SYSTEM = "\x00user\x00", "\x00system\x00"


def _literal(text: str) -> str:
    """``text`` with its braces escaped, so a template reads it as plain text."""
    return text.replace("{", "{{").replace("}", "}}")


def chat_wrapped(template: Template, tokenizer: Any, system: str = "") -> Template:
    """``template`` (a decoder prompt ending in ``{label}``) as a chat in ``tokenizer``'s chat template.

    The template's last line (``Sentiment: {label}``) starts the assistant's answer; the lines
    before it are the user turn, after a ``system`` turn when one is given. Slots survive the
    chat template: it is applied to placeholders, its own text has braces escaped, and the
    template's text goes back in their place. A one-line template is all user turn, and the
    label is the answer's first word.
    """
    head, sep, last = template.source.rpartition("\n")
    user, answer = (head, last) if sep else (template.source.partition("{label}")[0].rstrip(), "{label}")
    text = chat_prompt(tokenizer, _USER, _SYSTEM if system else "",
                       hint="prompt.chat is true: set it to auto or false, or models.decoder to an instruct model")
    if _USER not in text or (system and _SYSTEM not in text):
        raise ConfigError(f"{template.where}: the decoder's chat template drops a turn; set prompt.chat: false")
    text = _literal(text).replace(_SYSTEM, _literal(system)).replace(_USER, user)
    return Template.parse(text + answer, f"{template.where} (as a chat)")


def truncate_tokens(tokenizer: Any, text: str, max_tokens: int) -> str:
    """``text`` cut after its first ``max_tokens`` tokens (whole characters are kept)."""
    if max_tokens <= 0:
        return ""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    return text if len(offsets) <= max_tokens else text[:offsets[max_tokens - 1][1]]


def fit_slots(tokenizer: Any, template: Template, text: str, pair: str | None, budget: int, **fixed: str) -> dict[str, str]:
    """Slot values with the text (and pair) cut so the rendered template stays within ``budget`` tokens.

    The template's own words and the ``fixed`` slots are kept whole; the text and pair share
    what is left, longest first.
    """
    skeleton = template.render(text="", text_pair="", **fixed)
    room = budget - len(tokenizer(skeleton, add_special_tokens=True)["input_ids"])
    if pair is None:
        return {"text": truncate_tokens(tokenizer, text, room), **fixed}
    n_text = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    n_pair = len(tokenizer(pair, add_special_tokens=False)["input_ids"])
    keep_text, keep_pair = n_text, n_pair
    while keep_text + keep_pair > room and keep_text + keep_pair > 0:
        if keep_text >= keep_pair:
            keep_text -= 1
        else:
            keep_pair -= 1
    return {"text": truncate_tokens(tokenizer, text, keep_text), "text_pair": truncate_tokens(tokenizer, pair, keep_pair),
            **fixed}


def is_chinese(texts: list[str], sample: int = 200) -> bool:
    """True when most of the first ``sample`` texts are Chinese (see :func:`lmforge.data.segment.is_chinese`)."""
    head = texts[:sample]
    return bool(head) and sum(map(text_is_chinese, head)) * 2 > len(head)
