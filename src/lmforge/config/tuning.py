"""Options of the parameter-efficient tuning methods, validated with the rest of the config.

The methods themselves live in :mod:`lmforge.tuning` (one module each); their options live here,
in the config layer, so that a ``tuning:`` block is checked, dumped and listed like every other
section without the config importing the methods. A method's module names its options class;
``tests/test_tuning.py`` checks that every registered method has an entry in :data:`OPTIONS`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError, model_validator

from lmforge.config.base import Section, describe_error


class TuningConfig(Section):
    """Which parameters are trained: ``method`` plus that method's options.

    Each method subclasses this with its own options; a ``tuning`` block in a config is
    validated against the class of the method it names.
    """

    method: str = Field("full", description="Fine-tuning method: full, lora, prefix, prompt, ptuning, ia3, bitfit or adapter.")
    default_lr: ClassVar[float | None] = None


class LoraOptions(TuningConfig):
    """Options of ``tuning.method: lora``."""

    default_lr: ClassVar[float] = 2e-3
    r: int = Field(16, ge=1, description="Rank of the update.")
    alpha: float = Field(32.0, gt=0, description="The update is scaled by alpha/r (alpha/sqrt(r) with rslora).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the input of the LoRA branch.")
    target_modules: Literal["auto", "all-linear"] | list[str] = Field(
        "auto", description="Layers to adapt: 'auto' (per architecture), 'all-linear', or module names.")
    rslora: bool = Field(False, description="Rank-stabilized scaling alpha/sqrt(r).")
    dora: bool = Field(False, description="DoRA: also learn a magnitude per output feature (slower).")
    bias: Literal["none", "all", "lora_only"] = Field("none", description="Also train biases: none, all, or the adapted layers'.")


class Ia3Options(TuningConfig):
    """Options of ``tuning.method: ia3``."""

    default_lr: ClassVar[float] = 5e-3
    target_modules: Literal["auto"] | list[str] = Field(
        "auto", description="Layers rescaled: 'auto' (keys, values, feed-forward output per architecture) or names.")
    feedforward_modules: Literal["auto"] | list[str] = Field(
        "auto", description="Which of target_modules are feed-forward layers (rescaled on the input side).")


class PrefixOptions(TuningConfig):
    """Options of ``tuning.method: prefix``."""

    default_lr: ClassVar[float] = 1e-2
    num_virtual_tokens: int = Field(20, ge=1, le=512, description="Prefix length in every attention layer.")
    projection: bool = Field(False, description="Produce the prefixes with a trained two-layer MLP (steadier, more parameters).")
    encoder_hidden_size: int | None = Field(None, ge=1, description="Hidden size of the projection MLP; the model's when absent.")


class PromptOptions(TuningConfig):
    """Options of ``tuning.method: prompt``."""

    default_lr: ClassVar[float] = 3e-2
    num_virtual_tokens: int = Field(20, ge=1, le=512, description="Virtual tokens put before every input.")
    init: Literal["random", "vocab", "text"] = Field(
        "random", description="Start from random embeddings, from embeddings of random vocabulary tokens, or from init_text's.")
    init_text: str | None = Field(None, description="Text whose token embeddings start the prompt when init is 'text'.")

    @model_validator(mode="after")
    def _text_given(self) -> PromptOptions:
        if self.init == "text" and not self.init_text:
            raise ValueError("tuning.init_text is required when tuning.init is 'text'")
        return self


class PtuningOptions(TuningConfig):
    """Options of ``tuning.method: ptuning``."""

    default_lr: ClassVar[float] = 1e-2
    num_virtual_tokens: int = Field(20, ge=1, le=512, description="Virtual tokens put before every input.")
    encoder: Literal["mlp", "lstm"] = Field("mlp", description="The prompt encoder's kind.")
    encoder_hidden_size: int | None = Field(None, ge=1, description="Hidden size of the prompt encoder; the model's when absent.")


class BitfitOptions(TuningConfig):
    """Options of ``tuning.method: bitfit`` (none besides the method)."""

    default_lr: ClassVar[float] = 2e-3


class AdapterOptions(TuningConfig):
    """Options of ``tuning.method: adapter``."""

    default_lr: ClassVar[float] = 1e-3
    placement: Literal["houlsby", "pfeiffer"] = Field(
        "pfeiffer", description="houlsby: after attention and feed-forward; pfeiffer: after feed-forward only.")
    reduction_factor: int = Field(16, ge=1, description="Hidden size divided by this is the bottleneck size.")
    non_linearity: Literal["relu", "gelu", "swish", "tanh"] = Field("relu", description="Activation inside the bottleneck.")
    attention_modules: str | None = Field(
        None, description="Regular expression of attention-output module names; per architecture when absent.")
    ffn_modules: str | None = Field(
        None, description="Regular expression of feed-forward-output module names; per architecture when absent.")


# Method name -> its options class.
OPTIONS: dict[str, type[TuningConfig]] = {
    "full": TuningConfig, "lora": LoraOptions, "ia3": Ia3Options, "prefix": PrefixOptions, "prompt": PromptOptions,
    "ptuning": PtuningOptions, "bitfit": BitfitOptions, "adapter": AdapterOptions,
}


def parse_options(value: Any) -> TuningConfig:
    """Validate a ``tuning`` block against the options of the method it names.

    Raises:
        ValueError: One sentence naming the key; pydantic turns it into the config's error.
    """
    if isinstance(value, TuningConfig):
        value = value.model_dump()
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise ValueError(f"tuning must be a mapping such as {{method: lora, r: 8}}, got {value!r}")
    name = value.get("method", "full")
    if name not in OPTIONS:
        raise ValueError(f"tuning.method: unknown tuning method {name!r}; known: {', '.join(sorted(OPTIONS))}")
    options = OPTIONS[name]
    try:
        return options.model_validate(value)
    except ValidationError as exc:
        raise ValueError(describe_error(options, exc, f"tuning method '{name}'", ("tuning",))) from None
