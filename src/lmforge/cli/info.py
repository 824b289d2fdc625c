"""Verbs that inform: ``zoo`` (named models and datasets) and ``config`` (every key of a recipe, resolved)."""

from __future__ import annotations

import argparse
import importlib

# Recipe name -> its config class (imported when asked for), for `lmforge config RECIPE`.
CONFIGS: dict[str, str] = {
    "finetune": "lmforge.config:FinetuneConfig",
    "pretrain": "lmforge.pretraining.config:PretrainConfig",
    "prompt": "lmforge.prompting.config:PromptConfig",
    "ensemble": "lmforge.config:EnsembleConfig",
    "search": "lmforge.config:SearchConfig",
}
PLACEHOLDER = "TRAIN_FILE"


def add_zoo(sub: argparse._SubParsersAction) -> None:
    """``lmforge zoo [list|fetch NAME...]``."""
    p = sub.add_parser("zoo", help="list or fetch the named models and datasets")
    p.add_argument("action", choices=["list", "fetch"], nargs="?", default="list")
    p.add_argument("names", nargs="*", help="entries to fetch")


def run_zoo(args: argparse.Namespace) -> int:
    """List the zoo with what is cached, or fetch entries."""
    from lmforge import zoo

    if args.action == "fetch":
        for name in args.names:
            print(f"{name}: {zoo.fetch(name)}")
        return 0
    rows = zoo.list_rows()
    print(f"{'name':<18}{'kind':<9}{'cached':<8}description")
    for row in rows:
        print(f"{row['name']:<18}{row['kind']:<9}{'yes' if row['cached'] else 'no':<8}{row['description']}")
    print(f"\ncache: {zoo.home()}  (set LMFORGE_HOME to move it)")
    return 0


def add_config(sub: argparse._SubParsersAction) -> None:
    """``lmforge config RECIPE [CONFIG] [key=value ...]``."""
    p = sub.add_parser("config", help="print every config key of a recipe with its value and meaning, as it would run")
    p.add_argument("recipe", choices=sorted(CONFIGS))
    p.add_argument("config", nargs="?", help="a YAML config to resolve (its values, every default filled in)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. tuning.method=lora")


def run_config(args: argparse.Namespace) -> int:
    """Print the resolved config: the file and overrides with every default, method defaults included."""
    from lmforge import config as config_mod

    module, name = CONFIGS[args.recipe].split(":")
    cls = getattr(importlib.import_module(module), name)
    source, overrides = args.config, list(args.overrides)
    if source and "=" in source and not source.endswith((".yaml", ".yml")):
        source, overrides = None, [source, *overrides]  # only overrides were given
    tree = config_mod.read_yaml(source) if source else {}
    config_mod.apply_overrides(tree, overrides)
    data = tree.get("data")
    if "data" in cls.model_fields and not (isinstance(data, dict) and data.get("train")):
        config_mod.set_key(tree, "data.train", PLACEHOLDER)  # the one key without a default
    resolved = config_mod.build(cls, tree, source or "config")
    print("\n".join(config_mod.annotated(cls, defaults=resolved)))
    return 0
