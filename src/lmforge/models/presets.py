"""Size presets for new models: BERT-style encoders (absolute or rotary positions) and GPT-2 / Llama-style decoders.

The sizes follow Google's BERT miniatures (Turc et al., 2019): tiny 2x128, mini 4x256,
small 4x512, base 12x768 (layers x hidden), with 64-dimensional attention heads and a
feed-forward layer four times the hidden size (8/3 for Llama's gated MLP).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers import BertConfig, GPT2Config, LlamaConfig, RoFormerConfig

from lmforge.errors import ConfigError
from lmforge.registry import Registry

SIZES: dict[str, tuple[int, int]] = {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "base": (12, 768)}

ARCHS: Registry[Callable[[int, int, int, int, dict[str, int | None]], Any]] = Registry("model architecture")


def _heads(hidden: int) -> int:
    return max(1, hidden // 64)


@ARCHS.register("bert")
def bert_config(layers: int, hidden: int, vocab: int, positions: int, ids: dict[str, int | None]) -> Any:
    """A BERT encoder config."""
    return BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=_heads(hidden),
                      intermediate_size=4 * hidden, max_position_embeddings=max(512, positions), pad_token_id=ids["pad"] or 0)


@ARCHS.register("roformer")
def roformer_config(layers: int, hidden: int, vocab: int, positions: int, ids: dict[str, int | None]) -> Any:
    """A BERT encoder with rotary position embeddings (RoFormer, Su et al., 2021).

    Trained from scratch with small batches, BERT's learned absolute positions keep the masked-LM
    loss on a plateau near the unigram entropy for thousands of steps (no word is predicted from
    its neighbours yet); rotary positions make attention position-aware from the first step. Mini
    size, the 4M-token Chinese corpus of ``benchmarks/chinese_pretrain.py``, 16 x 256 tokens per
    step, lr 5e-4: masked-LM training loss 5.20 after 500 steps against BERT's 5.99 (unigram
    entropy of the corpus: 6.48); see docs/pretraining.md.
    """
    return RoFormerConfig(vocab_size=vocab, embedding_size=hidden, hidden_size=hidden, num_hidden_layers=layers,
                          num_attention_heads=_heads(hidden), intermediate_size=4 * hidden,
                          max_position_embeddings=max(512, positions), pad_token_id=ids["pad"] or 0)


@ARCHS.register("gpt2")
def gpt2_config(layers: int, hidden: int, vocab: int, positions: int, ids: dict[str, int | None]) -> Any:
    """A GPT-2 decoder config (learned positions, tied input and output embeddings)."""
    return GPT2Config(vocab_size=vocab, n_embd=hidden, n_layer=layers, n_head=_heads(hidden), n_positions=max(1024, positions),
                      bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"])


@ARCHS.register("llama")
def llama_config(layers: int, hidden: int, vocab: int, positions: int, ids: dict[str, int | None]) -> Any:
    """A Llama decoder config (rotary positions, RMSNorm, gated MLP, tied embeddings)."""
    ffn = 64 * round(8 * hidden / 3 / 64)
    return LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                       num_attention_heads=_heads(hidden), num_key_value_heads=_heads(hidden),
                       max_position_embeddings=max(2048, positions), tie_word_embeddings=True,
                       bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"])


def preset_config(arch: str, size: str, tokenizer: Any, max_length: int, overrides: dict[str, Any] | None = None) -> Any:
    """The config of a new ``arch`` model of ``size`` for ``tokenizer``, with ``overrides`` applied.

    Args:
        arch: ``bert``, ``roformer``, ``gpt2`` or ``llama``.
        size: ``tiny``, ``mini``, ``small`` or ``base``.
        tokenizer: Gives the vocabulary size and special-token ids.
        max_length: Longest sequence the model must take.
        overrides: Config attributes replacing the preset's, e.g. ``{"num_hidden_layers": 6}``.
    """
    if size not in SIZES:
        raise ConfigError(f"model.size must be one of {', '.join(SIZES)} (got {size!r})")
    layers, hidden = SIZES[size]
    ids = {"pad": tokenizer.pad_token_id, "bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id}
    config = ARCHS.get(arch)(layers, hidden, len(tokenizer), max_length, ids)
    for key, value in (overrides or {}).items():
        if not hasattr(config, key):
            raise ConfigError(f"model.overrides.{key} is not an attribute of {type(config).__name__}; "
                              f"see its documentation for valid names (e.g. hidden_size, num_hidden_layers)")
        setattr(config, key, value)
    return config
