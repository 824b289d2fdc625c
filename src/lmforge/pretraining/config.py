"""``lmforge pretrain`` configuration: corpus, model (preset or checkpoint), objectives, train, output."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lmforge.config import OutputConfig, Section, TrainConfig


class CorpusConfig(Section):
    train: list[str] = Field(default_factory=list, description="Text files, folders or zoo corpora to pretrain on.")
    validation: list[str] | None = Field(
        None,
        description="Held-out files; when absent, data.validation_share of the documents is held out.",
    )
    validation_share: float = Field(
        0.01, ge=0.0, lt=0.5,
        description="Share of documents held out for evaluation (chosen by a hash of the text).",
    )
    max_eval_sequences: int = Field(256, ge=1, description="Held-out sequences evaluated each time.")
    documents: Literal["line", "blank_line"] = Field(
        "line",
        description="Text files: one document per line, or documents separated by blank lines.",
    )
    format: Literal["auto", "txt", "csv", "tsv", "jsonl", "parquet"] = Field(
        "auto",
        description="File format; 'auto' goes by the extension.",
    )
    encoding: str = Field("utf-8", description="Text encoding of the files.")
    text_column: str | list[str] = Field(
        "text",
        description="Column (or JSON field) of the text in tables; a list tries each name in turn.",
    )
    max_length: int = Field(128, ge=16, le=8192, description="Tokens per training sequence.")
    packing: bool = Field(
        True,
        description="Concatenate documents and cut them into full sequences (MLM, CLM); else one document per sequence.",
    )
    dedup: bool = Field(False, description="Drop exact duplicate documents (keeps an 8-byte hash per document).")
    max_documents: int | None = Field(None, gt=0, description="Read only the first N documents of the corpus.")
    normalize: Literal["nfkc", "nfc", "none"] = Field(
        "nfkc",
        description="Unicode normalization of every line (use the same when fine-tuning).",
    )
    lowercase: bool = Field(False, description="Lowercase every line.")
    fullwidth_to_halfwidth: bool = Field(False, description="Map full-width ASCII to half-width.")
    cache: bool = Field(True, description="Keep the tokenized corpus under LMFORGE_HOME/cache/pretrain for later runs.")

    @field_validator("train", "validation", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


DEFAULT_CHECKPOINT = "minilm-l6"


class PretrainModelConfig(Section):
    name: str | None = Field(None, description="Continue pretraining this checkpoint: zoo name, folder or lmforge run "
                                   f"({DEFAULT_CHECKPOINT} when neither name nor arch is set).")
    arch: Literal["bert", "roformer", "gpt2", "llama"] | None = Field(
        None,
        description="Build a new model of this architecture (needs model.tokenizer).",
    )
    size: Literal["tiny", "mini", "small", "base"] = Field("mini", description="Size preset of a new model.")
    tokenizer: str | None = Field(None, description="Tokenizer folder; the checkpoint's own when continuing.")
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Config attributes of a new model that replace the preset's (hidden_size...).",
    )
    dropout: float | None = Field(None, ge=0.0, lt=1.0, description="Hidden dropout; the preset's or checkpoint's when absent.")
    attention_dropout: float | None = Field(
        None, ge=0.0, lt=1.0,
        description="Attention dropout; the preset's or checkpoint's when absent.",
    )
    classifier_dropout: float | None = Field(None, ge=0.0, lt=1.0, description="Kept for symmetry with fine-tuning; unused here.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward to save memory.")

    @model_validator(mode="after")
    def _one_source(self) -> PretrainModelConfig:
        if self.name is None and self.arch is None:
            self.__dict__["name"] = DEFAULT_CHECKPOINT  # a default, not a choice: not in model_fields_set
        if (self.name is None) == (self.arch is None):
            raise ValueError("set exactly one of model.name (continue pretraining a checkpoint) or model.arch (a new model)")
        if self.arch is not None and not self.tokenizer:
            raise ValueError("a new model needs model.tokenizer: a folder made by `lmforge tokenizer train`")
        return self


class ObjectiveConfig(Section):
    mlm: bool | None = Field(None, description="Masked language modeling; on by default for encoders.")
    nsp: bool = Field(False, description="Next-sentence prediction beside MLM (BERT-style encoders).")
    clm: bool | None = Field(None, description="Causal language modeling; on by default for decoders.")
    mask_probability: float = Field(0.15, gt=0.0, lt=1.0, description="Share of tokens the MLM objective predicts.")
    mask_replace: float = Field(0.8, ge=0.0, le=1.0, description="Share of predicted tokens replaced by the mask token.")
    random_replace: float = Field(
        0.1, ge=0.0, le=1.0,
        description="Share of predicted tokens replaced by a random token (the rest stay).",
    )
    whole_word_masking: bool = Field(True, description="Mask all sub-tokens of a word together.")
    chinese_words: Literal["jieba", "chars"] = Field(
        "jieba",
        description="Words of Chinese text for whole-word masking: jieba segmentation, or single characters.",
    )
    short_seq_probability: float = Field(
        0.1, ge=0.0, le=1.0,
        description="NSP: share of pairs made shorter than max_length on purpose, as BERT does.",
    )

    @model_validator(mode="after")
    def _shares(self) -> ObjectiveConfig:
        if self.mask_replace + self.random_replace > 1.0:
            raise ValueError("objective.mask_replace + objective.random_replace must be at most 1")
        return self


class PretrainTrainConfig(TrainConfig):
    epochs: float = Field(3.0, gt=0, description="Passes over the corpus (train.max_steps overrides it).")
    head_lr: float | None = Field(
        None, gt=0, le=1.0,
        description="Learning rate of the MLM/NSP heads; train.lr when null (a head created on a pretrained encoder may want more).",
    )


class PretrainConfig(Section):
    """Everything ``lmforge pretrain`` needs."""

    data: CorpusConfig = Field(default_factory=CorpusConfig)
    model: PretrainModelConfig = Field(default_factory=PretrainModelConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    train: PretrainTrainConfig = Field(default_factory=PretrainTrainConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _needs_train(self) -> PretrainConfig:
        if not self.data.train:
            raise ValueError("data.train is required: text files, folders or zoo corpora to pretrain on")
        return self
