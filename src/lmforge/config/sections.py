"""The sections of the fine-tuning, ensemble and search configs, grouped by concern.

A recipe's config is a tree of these small pydantic models; every field carries the one-line
description that ``lmforge config`` and the docs show.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from lmforge.config.base import Section
from lmforge.config.tuning import TuningConfig, parse_options

PositiveFloat = Annotated[float, Field(gt=0)]
Rate = Annotated[float, Field(gt=0, le=1.0)]


class SplitConfig(Section):
    validation: float = Field(0.1, ge=0.0, lt=1.0, description="Share of train held out for validation when no validation file is given.")
    test: float = Field(0.0, ge=0.0, lt=1.0, description="Share of train held out for testing when no test file is given.")
    seed: int = Field(42, description="Seed of the split.")
    stratify: bool = Field(True, description="Keep label proportions in every split.")
    folds: int | None = Field(None, ge=2,
        description="Hold out fold `fold` of a k-fold partition of train as validation, instead of a random share.")
    fold: int = Field(0, ge=0, description="Which fold is held out when `folds` is set (0-based).")
    group_by: str | None = Field(None,
        description="Keep related rows on one side of every split: 'containing_text' groups each text with the longest text "
                    "of the file that contains it (phrases cut from sentences, as in SST-2); any other value names a column "
                    "whose equal values stay together (documents, users, articles).")
    held_out: Literal["all", "longest"] = Field("all",
        description="With group_by: what validation and test keep of each held-out group: every row, or only its longest "
                    "text (the whole sentence, not its phrases), so that the scores are on full unseen texts.")

    @model_validator(mode="after")
    def _consistent(self) -> SplitConfig:
        if self.folds is not None and self.fold >= self.folds:
            raise ValueError(f"data.split.fold must be below data.split.folds={self.folds} (got {self.fold})")
        if self.held_out == "longest" and not self.group_by:
            raise ValueError("data.split.held_out=longest needs data.split.group_by (which rows form a group)")
        return self


class AugmentConfig(Section):
    ops: list[str] = Field(default_factory=list,
        description="Operations: swap, delete, insert, synonym, typo, contextual, paraphrase, back_translation; none when empty.")
    factor: float = Field(1.0, ge=0.0, le=20.0,
        description="Augmented copies per training example; 0.5 gives half the examples one copy.")
    rate: float = Field(0.1, gt=0.0, le=0.5, description="Share of words (or characters) an operation changes, at least one.")
    seed: int = Field(0, description="Seed of every random choice of the augmentation.")
    units: Literal["auto", "word", "char"] = Field("auto",
        description="What token operations act on: 'auto' is words, segmented with jieba for Chinese text.")
    synonyms: str | None = Field(None,
        description="Word-list file (one group per line: 'word syn1 syn2'); the model's embedding neighbours when absent.")
    neighbours: int = Field(5, ge=1, le=50, description="Embedding neighbours considered as synonyms of a word.")
    mlm_model: str | None = Field(None,
        description="Masked-LM model that refills masked words for 'contextual'; the fine-tuned model when absent.")
    generator: str = Field("smollm2-135m",
        description="Causal LM, or a name in lmforge.data.augment_models.GENERATORS, for paraphrase and back_translation.")
    pivot_language: str = Field("French", description="Language that back_translation translates through.")
    filter_model: str | None = Field(None,
        description="Trained run whose label every copy must keep; the fine-tuned model when that is an lmforge run.")
    filter: bool = Field(True,
        description="Drop copies that filter_model labels unlike the original (required for generated text).")
    log_samples: int = Field(5, ge=0, description="Augmented examples written to the log so you can see them.")


class DataConfig(Section):
    train: str | None = Field(None, description="Training file (CSV, TSV, JSONL, Parquet, TXT) or zoo dataset name.")
    validation: str | None = Field(None, description="Validation file; split from train when absent.")
    test: str | None = Field(None, description="Test file; split from train when data.split.test > 0.")
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet", "txt", "conll", "squad"] = Field("auto",
        description="File format; 'auto' goes by the extension (ner: CoNLL or JSONL by content; qa: SQuAD JSON or JSONL).")
    encoding: str = Field("utf-8", description="Text encoding of CSV/TSV/JSONL/TXT files.")
    text_column: str = Field("text", description="Column holding the text.")
    text_pair_column: str | None = Field(None, description="Column holding the second text of a sentence pair.")
    label_column: str = Field("label", description="Column holding the label.")
    labels: list[str] | None = Field(None, description="Label names in order; inferred from the training data when absent.")
    label_separator: str = Field(",", description="Separator between labels of one row in multi-label data.")
    tag_scheme: Literal["auto", "bio", "iob2", "iob1", "bioes", "iobes", "bilou", "bmes"] = Field("auto",
        description="ner: tag scheme of the files, converted to BIO on read; 'auto' tells it from the tag prefixes.")
    tag_column: int = Field(-1, description="ner: CoNLL column holding the tag (the last by default).")
    split: SplitConfig = Field(default_factory=SplitConfig)
    max_train_samples: int | None = Field(None, gt=0, description="Use a seeded random subset of this many training examples.")
    max_eval_samples: int | None = Field(None, gt=0, description="Use a seeded random subset of this many validation/test examples.")
    max_length: int = Field(128, ge=8, le=8192, description="Longest input in tokens; longer inputs are truncated.")
    normalize: Literal["nfkc", "nfc", "none"] = Field("nfkc", description="Unicode normalization of every text.")
    lowercase: bool = Field(False, description="Lowercase every text.")
    fullwidth_to_halfwidth: bool = Field(False, description="Map full-width ASCII and the ideographic space to half-width.")
    on_bad_rows: Literal["error", "skip"] = Field("error", description="Stop at the first bad row, or skip bad rows and report how many.")
    batching: Literal["length_grouped", "token_budget", "random"] = Field("length_grouped", description="How training batches are formed.")
    max_tokens: int | None = Field(None, gt=0, description="Token budget per batch (padded tokens) when batching is token_budget.")
    cache: bool = Field(True, description="Cache tokenized data under LMFORGE_HOME/cache.")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)


class ModelConfig(Section):
    name: str = Field("minilm-l6", description="Zoo name, local folder, lmforge run directory, or hub id.")
    dropout: float | None = Field(None, ge=0.0, lt=1.0, description="Hidden dropout; the checkpoint's value when absent.")
    attention_dropout: float | None = Field(None, ge=0.0, lt=1.0, description="Attention dropout; the checkpoint's value when absent.")
    classifier_dropout: float | None = Field(None, ge=0.0, lt=1.0, description="Dropout before the task head.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward to save memory.")
    init_seed: int | None = Field(None,
        description="Seed of the new head's initialization; train.seed when absent (fix it to soup members).")


class TaskConfig(Section):
    name: str = Field("classification", description="Task name, e.g. classification or regression.")
    multi_label: bool = Field(False, description="Each example may carry several labels (sigmoid + BCE).")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="Probability above which a label is predicted in multi-label tasks.")
    prompt: str | None = Field(
        None, description="Chat tasks: the user message, with {text} (and {pair}, {labels}) filled in; a task default when absent.")
    system_prompt: str | None = Field(None, description="Chat tasks: a system message put before every prompt.")
    max_new_tokens: int = Field(128, ge=1, description="Chat tasks: longest generated answer, in tokens.")
    crf: bool = Field(False, description="ner: a CRF layer over the word tag scores (Viterbi decoding) instead of a softmax per word.")
    casing: bool | None = Field(None,
        description="ner: feed each word's casing (lower, Title, UPPER, mixed, none) through the token-type embeddings; "
                    "on when the tokenizer lowercases and the model has token types.")
    stride: int = Field(128, ge=0, description="qa: context tokens shared by consecutive windows of a long context; 0 allows one window only.")
    max_answer_length: int = Field(30, ge=1, description="qa: longest answer, in tokens.")
    null_answers: bool = Field(False, description="qa: questions may have no answer (SQuAD 2.0); the model may answer with nothing.")
    n_best: int = Field(20, ge=1, le=100, description="qa: start and end candidates tried per window.")
    language: Literal["auto", "en", "zh"] = Field("auto",
        description="qa: scoring convention, en (SQuAD token F1) or zh (CMRC character F1); 'auto' decides by the text.")


class AdversarialConfig(Section):
    method: Literal["none", "fgm", "pgd", "freelb", "text"] = Field("none",
        description="Adversarial training: on the embeddings (fgm, pgd, freelb) or on the text (text: worst of N "
                    "perturbed copies), or none.")
    epsilon: float = Field(1.0, gt=0.0,
        description="Largest perturbation norm (the whole embedding matrix for fgm/pgd, each example for freelb).")
    alpha: float = Field(0.3, gt=0.0, description="Ascent step size of pgd and freelb.")
    steps: int = Field(3, ge=1, le=20, description="Ascent steps K of pgd and freelb.")
    perturbation: str = Field("typos", description="text: the perturbation the adversary draws from (typos, case, swap).")
    candidates: int = Field(4, ge=1, le=64, description="text: perturbed copies per example; the one of highest loss is trained on.")
    rate: float = Field(0.2, gt=0.0, le=1.0, description="text: share of words (characters for Chinese) perturbed in a copy.")
    consistency: float = Field(0.0, ge=0.0,
        description="text: weight of a KL term that pulls the prediction on the worst copy toward the (fixed) "
                    "prediction on the clean example, as in TRADES; off at 0.")


class TrainConfig(Section):
    epochs: PositiveFloat | Literal["auto"] = Field("auto",
        description="Passes over the training data; 'auto': 3 to 10, more for small training sets (at least 1,000 steps where "
                    "10 epochs allow), chosen and logged when the data is read.")
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimizer steps (overrides epochs).")
    batch_size: int = Field(32, ge=1, description="Examples per optimizer step across all processes, before accumulation.")
    eval_batch_size: int = Field(128, ge=1, description="Examples per evaluation batch.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    lr: float = Field(5e-5, gt=0, le=1.0, description="Peak learning rate.")
    head_lr: Rate | Literal["auto"] | None = Field("auto",
        description="Learning rate of the new task head (and pooler); train.lr when null; 'auto': train.lr x labels/2, "
                    "between train.lr and 2e-3 (a head of many labels has more to learn), logged when the data is read.")
    layer_lr_decay: float = Field(1.0, gt=0, le=1.0, description="Layer-wise learning-rate decay: layer l gets lr * decay^(L - l).")
    weight_decay: float = Field(0.01, ge=0.0, description="AdamW weight decay (never applied to biases and norms).")
    adam_betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
    adam_eps: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    scheduler: Literal["linear", "cosine", "constant"] = Field("linear", description="Learning-rate schedule after warmup.")
    warmup_ratio: float = Field(0.06, ge=0.0, lt=1.0, description="Warmup as a share of all steps.")
    warmup_steps: int | None = Field(None, ge=0, description="Warmup in steps (overrides warmup_ratio).")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Clip the gradient norm to this; no clipping when null.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto",
        description="'auto': bf16/fp16 on GPUs that support it, bf16 on CPUs with AMX tiles, fp32 on other CPUs.")
    seed: int = Field(42, description="Seed of everything random in the run.")
    eval_every: int | None = Field(None, gt=0, description="Evaluate every N optimizer steps, besides each epoch end.")
    save_every: int | None = Field(None, gt=0, description="Write a resumable checkpoint every N optimizer steps.")
    keep_checkpoints: int = Field(2, ge=1, description="Resumable checkpoints kept (oldest deleted first).")
    metric: str = Field("auto", description="Validation metric for best checkpoint and early stopping; 'auto' picks the task's.")
    early_stopping_patience: int | None = Field(None, ge=1, description="Stop after this many evaluations without improvement.")
    log_every: int = Field(10, ge=1, description="Log training loss every N steps.")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch; all physical cores when absent.")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="Label smoothing of the classification loss.")
    rdrop_alpha: float = Field(0.0, ge=0.0, description="R-Drop: weight of the KL term between two dropout passes; off at 0.")
    ema_decay: float | None = Field(None, gt=0.0, lt=1.0,
        description="Keep an exponential moving average of the weights (e.g. 0.99), used for evaluation and saving.")
    adversarial: AdversarialConfig = Field(default_factory=AdversarialConfig)


class OutputConfig(Section):
    dir: str = Field("runs/{name}", description="Run directory; {name} and {time} are filled in.")
    name: str = Field("run", description="Run name used in the directory and report.")
    overwrite: bool = Field(False, description="Allow writing into an existing run directory.")
    tensorboard: bool = Field(True, description="Write TensorBoard event files (the default of trackers).")
    trackers: list[Literal["tensorboard", "wandb", "mlflow"]] | None = Field(
        None, description="Where scalars and the resolved config go besides metrics.jsonl; [tensorboard] (or [] with tensorboard: false) "
                          "when unset. wandb and mlflow need pip install 'lmforge[track]'.")
    project: str = Field("lmforge", description="W&B project and MLflow experiment the run is logged under.")
    wandb_mode: Literal["offline", "online"] = Field("offline", description="offline writes wandb/ in the run directory "
                                                                           "(upload later with `wandb sync`); online needs `wandb login`.")
    mlflow_uri: str | None = Field(None, description="MLflow tracking URI; MLFLOW_TRACKING_URI, else a local mlruns/ folder, when unset.")
    report: bool = Field(True, description="Write report.md with plots at the end.")
    baseline: bool = Field(True, description="Also fit TF-IDF + logistic regression on the same splits and report it beside the model.")


class FinetuneConfig(Section):
    """Everything ``lmforge finetune`` needs."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tuning: SerializeAsAny[TuningConfig] = Field(default_factory=TuningConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @field_validator("tuning", mode="before")
    @classmethod
    def _tuning_options(cls, value: Any) -> TuningConfig:
        return parse_options(value)

    @model_validator(mode="after")
    def _needs_train(self) -> FinetuneConfig:
        if not self.data.train:
            raise ValueError("data.train is required: a training file or zoo dataset name")
        return self

    @model_validator(mode="after")
    def _method_lr(self) -> FinetuneConfig:
        # A method that trains few parameters needs a far higher learning rate than full
        # fine-tuning; when train.lr is not given, use the method's usual one.
        if "lr" not in self.train.model_fields_set and self.tuning.default_lr is not None:
            self.train.lr = self.tuning.default_lr
        return self


class EnsembleSection(Section):
    members: int = Field(5, ge=2, le=50, description="Models trained for the ensemble.")
    strategy: Literal["seeds", "kfold"] = Field("seeds",
        description="Members differ by seed, or each holds out one fold of train (k = members).")
    combine: Literal["mean", "vote", "soup"] = Field("mean",
        description="Logit averaging, majority vote, or one model with averaged weights (soup).")
    seeds: list[int] | None = Field(None, description="Seed of each member; train.seed, train.seed + 1, ... when absent.")


class EnsembleConfig(FinetuneConfig):
    """Everything ``lmforge ensemble`` needs: a fine-tuning config plus how to build the ensemble."""

    ensemble: EnsembleSection = Field(default_factory=EnsembleSection)

    @model_validator(mode="after")
    def _consistent(self) -> EnsembleConfig:
        if self.ensemble.strategy == "kfold" and self.data.validation:
            raise ValueError("ensemble.strategy=kfold holds out one fold of data.train per member; remove data.validation")
        if self.ensemble.seeds is not None and len(self.ensemble.seeds) != self.ensemble.members:
            raise ValueError(f"ensemble.seeds lists {len(self.ensemble.seeds)} seeds for {self.ensemble.members} members")
        if self.ensemble.combine == "vote" and self.task.name == "regression":
            raise ValueError("ensemble.combine=vote needs classes; use mean for regression")
        if self.task.name in ("ner", "qa"):
            raise ValueError(f"ensembles combine label scores per example; task {self.task.name} predicts spans and cannot "
                             "be ensembled (train one run with lmforge finetune)")
        return self


class SearchSection(Section):
    space: dict[str, dict[str, Any] | list[Any]] = Field(
        default_factory=dict,
        description="Dotted key -> {type: float|int|categorical, low, high, log, step, choices}, or a list of choices.")
    trials: int = Field(20, ge=1, description="Trials in the study (a resumed study runs only the missing ones).")
    jobs: int | None = Field(None, ge=1, description="Trials run at once, each in its own process; all cores when absent.")
    pruner: Literal["median", "none"] = Field("median",
        description="Stop trials whose validation metric falls below the median of earlier trials at the same step.")
    sampler_seed: int = Field(0, description="Seed of the TPE sampler.")
    keep_models: bool = Field(False, description="Keep every trial's model; by default only the best trial's is kept.")


class SearchConfig(FinetuneConfig):
    """Everything ``lmforge search`` needs: a fine-tuning config plus the search settings."""

    search: SearchSection = Field(default_factory=SearchSection)
