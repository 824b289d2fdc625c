"""Every saved run is an artifact: one door to save and load them, whatever their kind.

``lmforge.artifacts.load(run)`` reads ``lmforge.json``, checks it and hands the folder to the
loader of its kind. Each kind is one module here that registers itself:

==============  ==============================================================================
classifier      a fully fine-tuned model with its task head (plain transformers folder)
adapter         a parameter-efficient run over its base model (peft format for peft methods)
prompt, setfit  prompt-based and SetFit classifiers
ensemble        several runs answering as one, or a model soup
generator       a causal LM: pretraining runs, chat-tuned runs, zoo decoders
encoder         a pretrained encoder: embeddings and fill-mask
compressed      a run made smaller by ``lmforge compress``: ONNX, int8 or head-pruned
==============  ==============================================================================
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmforge.artifacts import adapter, classifier, compressed, encoder, ensemble, generator, prompt  # noqa: F401  (registration)
from lmforge.artifacts.adapter import AdapterSet, load_adapters, save_adapter
from lmforge.artifacts.base import (
    ARTIFACTS,
    CAPABILITIES,
    META_FILE,
    Artifact,
    ArtifactBase,
    Scored,
    input_examples,
    labeled_examples,
    legacy_kind,
    load,
    model_dir,
    read_meta,
    write_meta,
)
from lmforge.artifacts.classifier import TaskModel, full_kind, save_model
from lmforge.artifacts.encoder import EncoderModel
from lmforge.artifacts.ensemble import EnsemblePredictor, assemble
from lmforge.artifacts.generator import LanguageModel
from lmforge.artifacts.prompt import PromptPredictor, save_artifact


def generate(model: str | Path, prompts: str | Sequence[str], **options: Any) -> str | list[str]:
    """Load ``model`` (zoo name, folder or run) and continue ``prompts`` with ``options`` (see ``GenerateConfig``)."""
    return load(model).generate(prompts, **options)


__all__ = [
    "ARTIFACTS", "CAPABILITIES", "META_FILE", "AdapterSet", "Artifact", "ArtifactBase", "EncoderModel", "EnsemblePredictor",
    "LanguageModel", "PromptPredictor", "Scored", "TaskModel", "assemble", "full_kind", "generate", "input_examples",
    "labeled_examples", "legacy_kind", "load", "load_adapters", "model_dir", "read_meta", "save_adapter", "save_artifact",
    "save_model", "write_meta",
]
