"""Models: load a pretrained checkpoint (zoo, folder, run, hub) or build one from scratch."""

from lmforge.models.build import load_tokenizer, model_kwargs, quiet_transformers

__all__ = ["load_tokenizer", "model_kwargs", "quiet_transformers"]
