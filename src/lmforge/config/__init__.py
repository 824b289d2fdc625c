"""Typed, validated configuration, grouped by concern.

A recipe's config is a tree of small pydantic models. YAML files and ``key.sub=value``
overrides are merged, then validated; any problem becomes one :class:`ConfigError`
sentence that names the key and what it accepts. The resolved config (every default filled
in, method defaults included) is what ``lmforge config`` prints and what a run saves.
"""

from lmforge.config.base import (
    M,
    Section,
    annotated,
    apply_overrides,
    build,
    describe_error,
    dump,
    load,
    parse_override,
    read_yaml,
    set_key,
)
from lmforge.config.sections import (
    AdversarialConfig,
    AugmentConfig,
    DataConfig,
    EnsembleConfig,
    EnsembleSection,
    FinetuneConfig,
    ModelConfig,
    OutputConfig,
    SearchConfig,
    SearchSection,
    SplitConfig,
    TaskConfig,
    TrainConfig,
)
from lmforge.config.tuning import OPTIONS, TuningConfig, parse_options

__all__ = [
    "M", "OPTIONS", "AdversarialConfig", "AugmentConfig", "DataConfig", "EnsembleConfig", "EnsembleSection",
    "FinetuneConfig", "ModelConfig", "OutputConfig", "SearchConfig", "SearchSection", "Section", "SplitConfig",
    "TaskConfig", "TrainConfig", "TuningConfig", "annotated", "apply_overrides", "build", "describe_error", "dump",
    "load", "parse_options", "parse_override", "read_yaml", "set_key",
]
