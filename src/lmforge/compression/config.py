"""``CompressConfig``: what ``lmforge compress`` does to a run, one section per method.

The command line fills it from its flags (and ``key.sub=value`` overrides); the resolved config
is saved as ``config.yaml`` in the new run directory.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lmforge.config import Section, TrainConfig

METHODS = ("quantize", "onnx", "prune", "distill")


class QuantizeOptions(Section):
    max_drop: float | None = Field(None, ge=0.0, le=1.0,
        description="Largest loss of the run's metric allowed (0.01 = one point of accuracy): layers fall back to fp32, "
                    "most sensitive first, until it holds; no check when absent.")
    per_channel: bool = Field(True, description="One int8 scale per output channel of each weight (else one per matrix).")
    min_agreement: float | None = Field(None, ge=0.0, le=1.0,
        description="Least share of validation predictions equal to the fp32 model's (0.99); layers fall back to fp32 like max_drop.")
    keep: list[str] = Field(default_factory=list, description="Module names kept in fp32 besides the task head.")
    sample: int = Field(256, ge=8, description="Validation examples that rank layers by how much int8 changes the outputs.")
    scheme: Literal["auto", "dynamic", "weight_only"] = Field("auto",
        description="Language models: 'dynamic' = int8 weights and per-token int8 activations (the fast one on CPU), "
                    "'weight_only' = int8 weights, float products (GPUs); auto picks by device.")
    smooth: float = Field(0.75, ge=0.0, le=1.0,
        description="Language models, dynamic scheme: SmoothQuant strength (share of activation outliers moved into the "
                    "weights); 0 turns it off.")
    calibration: str | None = Field(None,
        description="Language models: texts (a file) whose activations set the smoothing; the --data file when absent.")
    calibration_samples: int = Field(32, ge=1, description="Texts of the calibration file used.")
    max_increase: float | None = Field(0.02, ge=0.0,
        description="Language models, dynamic scheme: largest perplexity increase on the calibration texts (0.02 = 2%); "
                    "the layers whose int8 version costs most go back to fp32 until it holds; none = no check.")


class OnnxOptions(Section):
    precision: Literal["fp32", "int8", "fp16"] = Field("int8",
        description="Weights of the exported graph: fp32, int8 (ONNX Runtime quantization) or fp16 (for GPUs).")
    calibration: str | None = Field(None,
        description="Texts (a file) that calibrate static int8 quantization of activations; dynamic quantization when absent.")
    optimization: Literal["none", "basic", "extended", "all"] = Field("all",
        description="ONNX Runtime graph optimization level applied to the saved graph and used when it runs.")
    fuse: bool = Field(True, description="Fuse attention, layer norm and GELU with ONNX Runtime's transformer optimizer.")
    opset: int = Field(18, ge=14, le=23, description="ONNX opset of the export.")
    calibration_samples: int = Field(256, ge=8, description="Texts of the calibration file used for static quantization.")
    max_drop: float | None = Field(None, ge=0.0, le=1.0,
        description="int8: largest loss of the run's metric allowed; weight matrices fall back to fp32, most sensitive first, "
                    "until it holds; no check when absent.")
    min_agreement: float | None = Field(None, ge=0.0, le=1.0,
        description="int8: least share of validation predictions equal to the PyTorch model's (0.99), held the same way.")
    sample: int = Field(256, ge=8, description="Validation examples that rank weight matrices by how much int8 changes the outputs.")


class PruneOptions(Section):
    heads: float = Field(0.0, ge=0.0, lt=1.0, description="Share of attention heads removed, least important first (BERT-style encoders).")
    layers: int = Field(0, ge=0, description="Transformer layers dropped, those whose removal costs least first.")
    sparsity: float = Field(0.0, ge=0.0, lt=1.0,
        description="Share of weights set to zero by magnitude (unstructured): smaller when compressed, not faster on CPU.")
    sample: int = Field(512, ge=8, description="Training examples that measure head and layer importance.")
    recover: bool = Field(True, description="Fine-tune briefly on the run's training data after each pruning step.")


class DistillOptions(Section):
    layers: int | None = Field(None, ge=1,
        description="Student layers, copied from evenly spaced teacher layers; half the teacher's when neither this nor student is set.")
    student: str | None = Field(None, description="Zoo model or folder to start the student from, instead of the teacher's layers.")
    temperature: float = Field(2.0, gt=0.0, description="Softmax temperature of the teacher and student logits in the KL term.")
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="Weight of the KL term; the hard-label loss gets 1 - alpha.")
    hidden_weight: float = Field(0.0, ge=0.0,
        description="Weight of hidden-state matching (MSE between student layers and the teacher layers they came from).")
    transfer: list[str] = Field(default_factory=list,
        description="Unlabeled text files added as transfer data: the student learns the teacher's outputs on them.")
    transfer_column: str = Field("text", description="Text column of tabular transfer files.")


def _short_training() -> TrainConfig:
    # Recovery and distillation start from trained weights: the head gets no rate of its own.
    return TrainConfig(head_lr=None, log_every=50)


# Epochs and learning rate when train.epochs / train.lr are not given: recovery is a short touch-up,
# while a student learns from scratch what the teacher knows.
TRAINING_DEFAULTS = {"prune": (1.0, 3e-5), "distill": (3.0, 1e-4)}


class CompressConfig(Section):
    """Everything ``lmforge compress`` needs."""

    method: Literal["quantize", "onnx", "prune", "distill"] = Field(description="Compression method.")
    data: str | None = Field(None,
        description="Labeled file that measures the cost in accuracy; the run's own validation data when absent.")
    train_data: str | None = Field(None,
        description="Labeled file for recovery fine-tuning and distillation; the run's own training data when absent.")
    train_samples: int | None = Field(None, gt=0, description="Use a seeded random subset of this many training examples.")
    eval_samples: int | None = Field(None, gt=0, description="Use a seeded random subset of this many validation examples.")
    batch_size: int = Field(64, ge=1, description="Examples per batch when scoring.")
    device: str | None = Field(None, description="cpu, cuda...; the GPU when there is one.")
    quantize: QuantizeOptions = Field(default_factory=QuantizeOptions)
    onnx: OnnxOptions = Field(default_factory=OnnxOptions)
    prune: PruneOptions = Field(default_factory=PruneOptions)
    distill: DistillOptions = Field(default_factory=DistillOptions)
    train: TrainConfig = Field(default_factory=_short_training)

    @model_validator(mode="after")
    def _method_options(self) -> CompressConfig:
        if self.method == "prune" and not (self.prune.heads or self.prune.layers or self.prune.sparsity):
            raise ValueError("prune needs prune.heads (a share), prune.layers (a count) or prune.sparsity (a share)")
        epochs, lr = TRAINING_DEFAULTS.get(self.method, (1.0, 3e-5))
        if "epochs" not in self.train.model_fields_set:
            self.train.epochs = epochs
        if "lr" not in self.train.model_fields_set:
            self.train.lr = lr
        return self
