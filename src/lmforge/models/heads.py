"""Which parts of a model are its task head: the one answer for the optimizer and the tuning methods.

The head is what fine-tuning adds on top of a pretrained backbone (a classifier, a score layer,
an MLM transform) plus any layer the checkpoint did not hold. The optimizer trains it at
``train.head_lr``; a parameter-efficient method trains it in full beside its own parameters.
"""

from __future__ import annotations

import logging
from pathlib import Path

from safetensors import safe_open
from torch import nn
from transformers import PreTrainedModel

log = logging.getLogger("lmforge.model")


def under(name: str, modules: list[str]) -> bool:
    """Whether the parameter or module ``name`` lies inside one of ``modules``."""
    return any(name == m or name.startswith(m + ".") for m in modules)


def checkpoint_keys(source: str) -> set[str] | None:
    """Tensor names stored in the safetensors files of the checkpoint folder ``source`` (None if it has none)."""
    shapes = checkpoint_shapes(source)
    return None if shapes is None else set(shapes)


def checkpoint_shapes(source: str) -> dict[str, tuple[int, ...]] | None:
    """Shape of every tensor stored in the safetensors files of the checkpoint folder ``source`` (None if it has none)."""
    files = sorted(Path(source).glob("*.safetensors")) if source and Path(source).is_dir() else []
    if not files:
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        with safe_open(str(file), "pt") as handle:
            shapes.update({key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()})
    return shapes


def fresh_parameters(model: nn.Module) -> list[str]:
    """Parameters of ``model`` that its checkpoint did not hold, or held in another shape (a resized embedding)."""
    shapes = checkpoint_shapes(str(getattr(getattr(model, "config", None), "_name_or_path", "")))
    if shapes is None:
        return []
    prefix = getattr(model, "base_model_prefix", "")

    def stored(name: str, shape: tuple[int, ...]) -> bool:
        found = next((shapes[k] for k in (name, name.removeprefix(prefix + "."), f"{prefix}.{name}") if k in shapes), None)
        return found == shape

    return [n for n, p in model.named_parameters() if not stored(n, tuple(p.shape))]


def core_model(model: nn.Module) -> PreTrainedModel | None:
    """The outermost transformers model inside wrappers (peft, a pretraining wrapper), or None."""
    return next((m for m in model.modules() if isinstance(m, PreTrainedModel)), None)


def _pooler(model: nn.Module) -> list[str]:
    backbone = getattr(model, "base_model_prefix", "")
    base = getattr(model, backbone, model)
    if getattr(base, "pooler", None) is None:
        return []
    return ["pooler"] if base is model else [f"{backbone}.pooler"]


def head_modules(model: nn.Module, with_pooler: bool = False, fresh: bool = True) -> list[str]:
    """Module names of the task head of the transformers model ``model``.

    Every child module outside the pretrained backbone except a tied or pretrained LM output
    layer: ``["classifier"]`` for ``BertForSequenceClassification``, ``["score"]`` for
    ``LlamaForSequenceClassification``, none for a causal LM or a bare backbone. Layers that
    ``from_pretrained`` had to initialize at random (a BERT pooler missing from an MLM checkpoint)
    are added (``fresh``): left frozen, they would be random noise. ``with_pooler`` adds the
    backbone's pooler, which the optimizer trains at the head's rate.
    """
    backbone = getattr(model, "base_model_prefix", "")
    get_output = getattr(model, "get_output_embeddings", None)
    lm_head = get_output() if get_output is not None else None
    bare = getattr(model, backbone, None) is None
    head = [] if bare else [name for name, child in model.named_children()
                            if name != backbone and child is not lm_head and any(True for _ in child.parameters())]
    new = sorted({n.rsplit(".", 1)[0] for n in fresh_parameters(model) if not under(n, head)}) if fresh else []
    if new:
        log.info("%s not in the checkpoint (initialized at random); trained with the head", ", ".join(new))
    extra = [p for p in _pooler(model) if with_pooler and not under(p, head + new)]
    return head + new + extra


def head_parameter_ids(model: nn.Module) -> set[int]:
    """``id()`` of every head parameter of ``model`` (pooler included), wherever wrappers put it.

    A parameter shared with the backbone (an output layer tied to the input embeddings) is not
    head: it is pretrained. Parameters a tuning method adds are not head either, even though no
    checkpoint holds them: they train at the method's rate.
    """
    core = core_model(model)
    if core is None:
        return set()
    head = head_modules(core, with_pooler=True, fresh=False)
    inside = {id(p) for name in head for p in core.get_submodule(name).parameters()}
    outside = {id(p) for n, p in core.named_parameters(remove_duplicate=False) if not under(n, head)}
    return inside - outside
