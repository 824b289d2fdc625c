"""The model a pretraining run trains: a new one from a size preset, or a checkpoint to continue."""

from __future__ import annotations

import logging
from typing import Any

from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForPreTraining
from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES, MODEL_FOR_PRETRAINING_MAPPING_NAMES

from lmforge.config import ModelConfig
from lmforge.errors import ConfigError, LmforgeError
from lmforge.models.build import dropout_settings, enable_checkpointing, from_pretrained, model_kwargs, resolve
from lmforge.models.presets import preset_config
from lmforge.pretraining.config import ObjectiveConfig, PretrainModelConfig
from lmforge.pretraining.objectives import Objectives

log = logging.getLogger("lmforge.pretrain")
_WITH_POOLER = ("BertForPreTraining", "ErnieForPreTraining")
_HEAD_KEYS = ("cls.predictions", "lm_head", "vocab_projector", "generator_lm_head")


def is_decoder(config: Any) -> bool:
    """True for causal LMs (GPT-2, Llama...): architectures with no masked-LM model class."""
    return config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def resolve_objectives(cfg: ObjectiveConfig, decoder: bool, what: str) -> Objectives:
    """The objectives to train: the config's, with MLM for encoders and CLM for decoders by default."""
    mlm = cfg.mlm if cfg.mlm is not None else not decoder
    clm = cfg.clm if cfg.clm is not None else decoder
    kind = "a decoder (causal LM)" if decoder else "an encoder"
    if mlm and decoder:
        raise ConfigError(f"objective.mlm needs an encoder, but {what} is {kind}; use objective.clm")
    if clm and not decoder:
        raise ConfigError(f"objective.clm needs a decoder (gpt2, llama...), but {what} is {kind}; use objective.mlm")
    if cfg.nsp and not mlm:
        raise ConfigError("objective.nsp is trained beside objective.mlm; set objective.mlm=true or objective.nsp=false")
    if not (mlm or clm):
        raise ConfigError("no objective left to train; set objective.mlm (encoders) or objective.clm (decoders)")
    return Objectives(mlm=mlm, nsp=cfg.nsp, clm=clm)


def _dropout(config: Any, cfg: PretrainModelConfig) -> None:
    for key, value in dropout_settings(config, cfg).items():
        setattr(config, key, value)


def new_model(cfg: PretrainModelConfig, objective: ObjectiveConfig, tokenizer: Any,
              max_length: int) -> tuple[nn.Module, Objectives]:
    """A randomly initialized model of ``cfg.arch`` and ``cfg.size`` for ``tokenizer``."""
    config = preset_config(cfg.arch or "", cfg.size, tokenizer, max_length, cfg.overrides)
    _dropout(config, cfg)
    decoder = is_decoder(config)
    objectives = resolve_objectives(objective, decoder, f"a new {cfg.arch} model")
    # Encoders without a pretraining class (RoFormer) get the masked-LM one: no NSP head to train.
    encoder = AutoModelForPreTraining if config.model_type in MODEL_FOR_PRETRAINING_MAPPING_NAMES else AutoModelForMaskedLM
    model = (AutoModelForCausalLM if decoder else encoder).from_config(config)
    log.info("new %s model (%s preset): %d layers, hidden size %d", cfg.arch, cfg.size,
             getattr(config, "num_hidden_layers", 0), getattr(config, "hidden_size", 0))
    return model, objectives


def continued_model(cfg: PretrainModelConfig, objective: ObjectiveConfig) -> tuple[nn.Module, Objectives]:
    """The checkpoint ``cfg.name`` with the heads its objectives need; a missing MLM head is created and logged."""
    source = resolve(cfg.name or "")
    config = from_pretrained(AutoConfig, source)
    decoder = is_decoder(config)
    objectives = resolve_objectives(objective, decoder, cfg.name or source)
    kwargs = model_kwargs(source, ModelConfig(dropout=cfg.dropout, attention_dropout=cfg.attention_dropout))
    if decoder:
        auto = AutoModelForCausalLM
    elif MODEL_FOR_PRETRAINING_MAPPING_NAMES.get(config.model_type) in _WITH_POOLER:
        auto = AutoModelForPreTraining  # keeps BERT's pooler (and NSP head) instead of dropping them
    else:
        auto = AutoModelForMaskedLM
    model, info = from_pretrained(auto, source, output_loading_info=True, **kwargs)
    missing = sorted(k for k in info.get("missing_keys", ()) if any(h in k for h in _HEAD_KEYS))
    if missing and objectives.mlm:
        output = model.get_output_embeddings()
        tied = output is not None and output.weight is model.get_input_embeddings().weight
        log.warning("%s has no masked-LM head: created one (%d new tensors%s); it learns during this run",
                    cfg.name, len(missing), ", output layer tied to the word embeddings" if tied else "")
    return model, objectives


def build_model(cfg: PretrainModelConfig, objective: ObjectiveConfig, tokenizer: Any,
                max_length: int) -> tuple[nn.Module, Objectives]:
    """The model to pretrain and its objectives (new from a preset, or continued from a checkpoint)."""
    if cfg.arch:
        model, objectives = new_model(cfg, objective, tokenizer, max_length)
    else:
        model, objectives = continued_model(cfg, objective)
    limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    if limit and max_length > limit:
        raise ConfigError(f"data.max_length={max_length} is longer than the model's {limit} positions; lower data.max_length")
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    needed = {"mlm": ("mask_token",), "nsp": ("cls_token", "sep_token")}
    for name in objectives.names():
        for token in needed.get(name, ()):
            if getattr(tokenizer, token, None) is None:
                raise LmforgeError(f"objective {name} needs a tokenizer with a {token}; train one with "
                                   "`lmforge tokenizer train --type wordpiece` or pick another objective")
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)
    return model, objectives
