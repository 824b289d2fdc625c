"""Load checkpoints and tokenizers by zoo name, folder, run directory or hub id."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from transformers import AutoConfig, AutoTokenizer
from transformers.utils import logging as hf_logging

from lmforge import zoo
from lmforge.config import ModelConfig
from lmforge.errors import LmforgeError

log = logging.getLogger("lmforge.model")

# Config attribute names that different architectures use for the same dropout.
_DROPOUT_KEYS = {
    "dropout": ("hidden_dropout_prob", "hidden_dropout", "resid_pdrop", "embd_pdrop", "dropout"),
    "attention_dropout": ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop"),
    "classifier_dropout": ("classifier_dropout", "summary_first_dropout"),
}


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load-time notices (we log what matters ourselves)."""
    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def dropout_settings(config: Any, cfg: Any) -> dict[str, float]:
    """``cfg``'s dropout rates (those set) under the names ``config``'s architecture uses for them.

    ``cfg`` is anything with ``dropout``, ``attention_dropout`` (and optionally ``classifier_dropout``).
    """
    out: dict[str, float] = {}
    for option, keys in _DROPOUT_KEYS.items():
        value = getattr(cfg, option, None)
        out |= {key: value for key in keys if value is not None and hasattr(config, key)}
    return out


def model_kwargs(source: str, cfg: ModelConfig) -> dict[str, Any]:
    """Config overrides for ``from_pretrained``: dropout rates under each architecture's names."""
    with quiet_transformers():
        config = AutoConfig.from_pretrained(source)
    return dropout_settings(config, cfg)


def resolve(name: str) -> str:
    """A loadable location for a model name (zoo name, folder, run directory or hub id)."""
    return zoo.resolve_model(name)


def load_tokenizer(source: str) -> Any:
    """The fast tokenizer of ``source``, with a padding token set for decoders that lack one."""
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise LmforgeError(f"could not load a tokenizer from {source} ({str(exc).splitlines()[0]})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def from_pretrained(auto_class: Any, source: str, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained`` with errors that say what to do."""
    try:
        with quiet_transformers():
            return auto_class.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise LmforgeError(f"could not load a model from {source} ({str(exc).splitlines()[0]})") from None


def enable_checkpointing(model: Any) -> None:
    """Switch on activation (gradient) checkpointing, under its newer transformers name where it has one."""
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
