"""Guarded generation: input and output filters around a language model, for ``lmforge generate`` and ``/v1/generate``.

A prompt that holds a blocked term or is longer than ``max_input_chars`` is answered with the
refusal message and never reaches the model; PII in a prompt is masked before the model sees it.
A generated text that holds a blocked term is replaced by the refusal; PII in it is masked and it is
cut to ``max_output_chars``. The same section configures both faces:

.. code-block:: yaml

    guard:                                # serve.yaml, or the file of `lmforge generate --guard FILE`
      blocklist: blocked.txt              # one term per line; '#' starts a comment
      terms: [build a bomb]               # more terms, inline
      mask_pii: true                      # e-mail, phone, ID, card and IP numbers become [EMAIL], [PHONE]...
      max_input_chars: 4000
      max_output_chars: 2000
      refusal: "Sorry, I can't help with that."
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator

from lmforge import config as config_mod
from lmforge.config import Section
from lmforge.errors import ConfigError
from lmforge.serving.privacy import KINDS, mask_pii

_CJK = re.compile("[\u3400-\u9fff\uf900-\ufaff]")


class GuardConfig(Section):
    blocklist: str | None = Field(None, description="File of blocked terms, one per line ('#' starts a comment); case-insensitive.")
    terms: list[str] = Field(default_factory=list, description="More blocked terms, inline.")
    mask_pii: bool = Field(False, description="Mask PII (e-mail, phone, ID, card, IP) in prompts and in generated text.")
    pii_kinds: list[str] = Field(default_factory=lambda: list(KINDS), description="PII kinds to mask.")
    max_input_chars: int | None = Field(None, ge=1, description="Longer prompts are refused without reaching the model.")
    max_output_chars: int | None = Field(None, ge=1, description="Generated text is cut to this many characters.")
    refusal: str = Field("Sorry, I can't help with that request.", min_length=1,
                         description="What a refused prompt, or an output with a blocked term, is answered with.")

    @field_validator("pii_kinds")
    @classmethod
    def _known(cls, kinds: list[str]) -> list[str]:
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"guard.pii_kinds has unknown kind {unknown[0]!r}; choose from {', '.join(KINDS)}")
        return kinds

    @property
    def active(self) -> bool:
        """Whether any filter is switched on."""
        return bool(self.blocklist or self.terms or self.mask_pii or self.max_input_chars or self.max_output_chars)


@dataclass
class Verdict:
    """What the input filter decided about one prompt: the (masked) prompt to generate from, or a refusal and why."""

    allowed: bool
    text: str
    reason: str | None = None


class Guard:
    """The input and output filters of one :class:`GuardConfig`.

    Raises:
        ConfigError: The blocklist file is missing or unreadable.
    """

    def __init__(self, config: GuardConfig) -> None:
        self.config = config
        terms = [t.strip() for t in config.terms if t.strip()]
        if config.blocklist:
            terms += read_blocklist(config.blocklist)
        # Whole words for Latin terms ("ass" must not block "class"); substrings for Chinese, which has no spaces.
        bodies = [re.escape(t) if _CJK.search(t) else rf"(?<!\w){re.escape(t)}(?!\w)" for t in sorted(set(terms), key=len, reverse=True)]
        self.pattern = re.compile("|".join(bodies), re.IGNORECASE) if bodies else None

    def blocked(self, text: str) -> str | None:
        """The first blocked term in ``text``, or None."""
        match = self.pattern.search(text) if self.pattern else None
        return match.group() if match else None

    def check_input(self, prompt: str) -> Verdict:
        """Refuse a prompt with a blocked term or over the length limit; otherwise mask its PII (when switched on)."""
        limit = self.config.max_input_chars
        if limit is not None and len(prompt) > limit:
            return Verdict(False, self.config.refusal, f"the prompt has {len(prompt)} characters; the limit is {limit}")
        if self.blocked(prompt) is not None:
            return Verdict(False, self.config.refusal, "the prompt holds a blocked term")
        return Verdict(True, mask_pii(prompt, self.config.pii_kinds) if self.config.mask_pii else prompt)

    @property
    def filters_output(self) -> bool:
        """Whether :meth:`check_output` can change a text (then a stream must wait for the whole text)."""
        return bool(self.pattern is not None or self.config.mask_pii or self.config.max_output_chars)

    def check_output(self, text: str) -> str:
        """The refusal when ``text`` holds a blocked term; otherwise ``text`` with PII masked and cut to the length limit."""
        if self.blocked(text) is not None:
            return self.config.refusal
        if self.config.mask_pii:
            text = mask_pii(text, self.config.pii_kinds)
        limit = self.config.max_output_chars
        return text[:limit] if limit is not None else text


def read_blocklist(path: str | Path) -> list[str]:
    """The terms of a blocklist file: one per line, blank lines and ``#`` comments skipped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"guard.blocklist {path} not found; give a text file with one blocked term per line")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def load_guard(source: str | Path | dict[str, Any] | GuardConfig | None, overrides: dict[str, Any] | None = None) -> Guard | None:
    """A guard from a YAML file (its ``guard:`` section or the whole file), a dict or a config; None when nothing is switched on.

    A relative ``blocklist`` in a file is read relative to that file. ``overrides`` (keys of
    :class:`GuardConfig` whose value is not None) go on top, as the command line's flags do.
    """
    extra = {k: v for k, v in (overrides or {}).items() if v is not None}
    if source is None and not extra:
        return None
    source = {} if source is None else source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"guard file {path} not found; give a YAML file with blocklist, terms, mask_pii... keys")
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        raw = raw.get("guard", raw) if isinstance(raw, dict) else raw
        if isinstance(raw, dict) and raw.get("blocklist") and not Path(raw["blocklist"]).is_absolute():
            raw = {**raw, "blocklist": str(path.parent / raw["blocklist"])}
        source = raw
    if isinstance(source, GuardConfig):
        source = source.model_dump()
    if not isinstance(source, dict):
        raise ConfigError("the guard section must be a mapping of blocklist, terms, mask_pii, max_input_chars... keys")
    cfg = config_mod.build(GuardConfig, {**source, **extra}, "guard")
    return Guard(cfg) if cfg.active else None
