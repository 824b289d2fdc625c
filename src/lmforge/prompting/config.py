"""``PromptConfig``: what ``lmforge prompt`` runs, reusing the data and output sections of fine-tuning."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from lmforge.config import DataConfig, OutputConfig, Section, TrainConfig

METHOD_NAMES = ("cloze", "similarity", "likelihood", "generate", "icl", "pet", "pet_decoder", "setfit", "head")


class TemplatesConfig(Section):
    cloze: str | None = Field(None, description="Cloze template for masked LMs, with {text} and {mask}; built-in when absent.")
    prompt: str | None = Field(None, description="Decoder prompt ending in {label}; also the shape of in-context demonstrations.")
    description: str | None = Field(None, description="Label description for embedding similarity, with {label} (a label word).")
    instruction: str | None = Field(None,
        description="User turn for an instruct model's chat, with {text}; the label choices are appended.")
    choices: str | None = Field(None,
        description="The line that lists the label choices, with {label} for the comma-joined names.")
    system: str | None = Field(None,
        description="System turn of a decoder prompt given as a chat (prompt.chat); plain text, built-in when absent.")


class PromptSection(Section):
    task: Literal["sentiment", "topic", "intent", "entailment"] = Field("sentiment",
        description="Picks the built-in templates and label words.")
    language: Literal["auto", "en", "zh"] = Field("auto",
        description="Language of the built-in templates and words; 'auto' looks at the texts.")
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)
    verbalizer: dict[str, list[str] | str] | None = Field(None,
        description="Label -> word(s) scored for it; built-in lists or the label name when absent.")
    names: dict[str, str] | None = Field(None, description="Label -> readable name offered as a choice to instruct models.")
    multi_token: Literal["mean", "first"] = Field("mean",
        description="Score a word of several tokens by the mean of its tokens' log-probs, or by its first token.")
    chat: bool | Literal["auto"] = Field("auto",
        description="Give likelihood and pet_decoder prompts to the decoder as a chat: the prompt template's last line "
                    "starts the answer, the lines before it are the user turn, after templates.system; 'auto' does so "
                    "when the decoder's tokenizer has a chat template.")
    calibrate: bool | Literal["both"] = Field(False,
        description="Contextual calibration (Zhao et al. 2021): divide by the label probabilities of content-free "
                    "inputs; 'both' reports each calibratable method as is and calibrated (<method>+cal).")


class ModelsConfig(Section):
    encoder: str = Field("minilm-l6",
        description="Sentence encoder for similarity, setfit, head and similar-demonstration selection.")
    mlm: str = Field("minilm-l6", description="Masked LM for cloze and pet (a missing MLM head is built, see docs).")
    decoder: str = Field("smollm2-135m", description="Decoder for likelihood, generate and icl; generate needs a chat template.")


class ShotsConfig(Section):
    k: list[int] = Field([0, 8, 16], description="Examples per class; 0 runs the zero-shot methods.")
    seeds: list[int] = Field([0, 1, 2, 3, 4], min_length=1, description="One k-shot draw per seed; mean ± std over them.")
    decoder_eval_samples: int | None = Field(1000, gt=0,
        description="Evaluate decoder methods on a seeded subset of this many examples (all when null).")
    eval_seed: int = Field(0, description="Seed of the decoder evaluation subset.")

    @field_validator("k")
    @classmethod
    def _k(cls, value: list[int]) -> list[int]:
        if not value or any(k < 0 for k in value):
            raise ValueError("shots.k must be a non-empty list of examples per class, each >= 0")
        return sorted(set(value))


class IclConfig(Section):
    selection: Literal["random", "similar"] = Field("random",
        description="Demonstrations drawn at random (one shared, cached prompt) or the most similar to each query.")
    max_tokens: int = Field(1024, ge=16,
        description="Token budget of the demonstrations; whole demonstrations are dropped to fit.")
    separator: str = Field("\n\n", description="Text between demonstrations.")


class FewShotTrain(Section):
    epochs: float = Field(20.0, gt=0, description="Passes over the k-shot examples (or pairs, for setfit).")
    max_steps: int | None = Field(None, gt=0, description="Cap on optimizer steps.")
    batch_size: int = Field(16, ge=1, description="Examples (or pairs) per step.")
    lr: float = Field(2e-5, gt=0, le=1.0, description="Peak learning rate.")
    head_lr: float | None = Field(None, gt=0, le=1.0, description="Learning rate of the head; lr when absent.")
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="Warmup as a share of all steps.")
    weight_decay: float = Field(0.01, ge=0.0, description="AdamW weight decay.")

    def train_config(self, seed: int) -> TrainConfig:
        """The training-loop settings of one run."""
        return TrainConfig(epochs=self.epochs, max_steps=self.max_steps, batch_size=self.batch_size, lr=self.lr,
                           head_lr=self.head_lr, warmup_ratio=self.warmup_ratio, weight_decay=self.weight_decay,
                           seed=seed, log_every=10**6, keep_checkpoints=1)


class SetFitConfig(FewShotTrain):
    epochs: float = Field(1.0, gt=0, description="Passes over the generated pairs.")
    iterations: int = Field(20, ge=1,
        description="Pair-generation rounds: each example gets one same-label and one other-label pair per round.")
    max_pairs: int | None = Field(3000, gt=0, description="Cap on generated pairs (many classes x k make many).")
    lr: float = Field(2e-5, gt=0, le=1.0, description="Peak learning rate of the encoder.")
    head_c: float = Field(1.0, gt=0, description="Inverse regularization strength of the logistic-regression head.")


class PromptConfig(Section):
    """Everything ``lmforge prompt`` needs."""

    data: DataConfig = Field(default_factory=DataConfig)
    methods: list[str] = Field(["similarity", "likelihood", "setfit", "head"],
        description=f"Methods to compare: {', '.join(METHOD_NAMES)}.")
    prompt: PromptSection = Field(default_factory=PromptSection)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    shots: ShotsConfig = Field(default_factory=ShotsConfig)
    icl: IclConfig = Field(default_factory=IclConfig)
    pet: FewShotTrain = Field(default_factory=lambda: FewShotTrain(epochs=30, max_steps=300, batch_size=8, lr=2e-5, head_lr=1e-4))
    pet_decoder: FewShotTrain = Field(default_factory=lambda: FewShotTrain(epochs=20, max_steps=40, batch_size=16, lr=2e-5))
    setfit: SetFitConfig = Field(default_factory=SetFitConfig)
    head: FewShotTrain = Field(
        default_factory=lambda: FewShotTrain(epochs=30, max_steps=300, batch_size=8, lr=5e-5, head_lr=1e-3))
    output: OutputConfig = Field(default_factory=lambda: OutputConfig(name="prompt", tensorboard=False))
    save: Literal["first_seed", "none"] = Field("first_seed",
        description="Save an artifact per method and k from the first seed, or none.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto",
        description="Where models run; 'auto' picks the GPU when there is one.")

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in METHOD_NAMES]
        if unknown or not value:
            raise ValueError(f"methods {unknown or '[]'} not known; choose from {', '.join(METHOD_NAMES)}")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _needs_train(self) -> PromptConfig:
        if not self.data.train:
            raise ValueError("data.train is required: the labeled file the k-shot examples are drawn from "
                             "(its held-out part, or data.validation, is the evaluation set)")
        return self
