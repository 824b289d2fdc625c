"""Every shipped YAML under configs/ loads and validates; config errors are one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge import config
from lmforge.config import EnsembleConfig, FinetuneConfig, SearchConfig
from lmforge.errors import ConfigError
from lmforge.pretraining.config import PretrainConfig
from lmforge.prompting.config import PromptConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))
# Maps the `# recipe: NAME` first line of a shipped YAML to the config class that validates it.
RECIPES: dict[str, type] = {"finetune": FinetuneConfig, "pretrain": PretrainConfig, "prompt": PromptConfig,
                            "ensemble": EnsembleConfig, "search": SearchConfig}


def recipe_of(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# recipe:"), f"{path} must start with '# recipe: <name>'"
    return first.split(":", 1)[1].strip()


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_validates(path: Path) -> None:
    cfg = config.load(RECIPES[recipe_of(path)], path)
    assert config.dump(cfg)


def test_configs_exist() -> None:
    assert CONFIGS


def test_unknown_key_names_key_and_allowed() -> None:
    with pytest.raises(ConfigError) as err:
        config.load(FinetuneConfig, {"data": {"train": "x.csv"}, "train": {"lrr": 1}})
    msg = str(err.value)
    assert "train.lrr" in msg and "lr," in msg and "\n" not in msg


def test_wrong_type_and_range_and_choice() -> None:
    with pytest.raises(ConfigError, match=r"train\.lr .*number"):
        config.load(FinetuneConfig, {"data": {"train": "x.csv"}}, ["train.lr=abc"])
    with pytest.raises(ConfigError, match=r"train\.batch_size .*greater than or equal to 1"):
        config.load(FinetuneConfig, {"data": {"train": "x.csv"}}, ["train.batch_size=0"])
    with pytest.raises(ConfigError, match=r"train\.scheduler must be 'linear', 'cosine' or 'constant'"):
        config.load(FinetuneConfig, {"data": {"train": "x.csv"}}, ["train.scheduler=step"])


def test_missing_train_file_is_reported() -> None:
    with pytest.raises(ConfigError, match="data.train is required"):
        config.load(FinetuneConfig, {})


def test_overrides_are_typed_and_nested(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  train: a.csv\ntrain:\n  lr: 1.0e-4\n")
    cfg = config.load(FinetuneConfig, path, ["train.lr=3e-5", "data.split.seed=7", "data.labels=[a, b]"])
    assert cfg.train.lr == 3e-5 and cfg.data.split.seed == 7 and cfg.data.labels == ["a", "b"]
    with pytest.raises(ConfigError, match="key.sub=value"):
        config.load(FinetuneConfig, path, ["train.lr"])


def test_bad_yaml_names_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        config.load(FinetuneConfig, path)


def test_annotated_defaults_round_trip() -> None:
    import yaml

    text = "\n".join(config.annotated(FinetuneConfig))
    assert "# Peak learning rate." in text
    tree = yaml.safe_load(text)
    tree["data"]["train"] = "x.csv"
    assert config.load(FinetuneConfig, tree) == config.load(FinetuneConfig, {"data": {"train": "x.csv"}})


def test_partial_section_keeps_the_fields_own_defaults() -> None:
    # pet's field default sets lr and head_lr; giving only max_steps must not fall back to the class's values
    cfg = config.load(PromptConfig, {"data": {"train": "x.tsv"}, "pet": {"max_steps": 5}, "head": {"lr": 1e-4},
                                     "output": {"dir": "out"}})
    default = config.load(PromptConfig, {"data": {"train": "x.tsv"}})
    assert cfg.pet.max_steps == 5 and cfg.pet.lr == default.pet.lr and cfg.pet.head_lr == default.pet.head_lr
    assert cfg.head.lr == 1e-4 and cfg.head.head_lr == default.head.head_lr and cfg.head.batch_size == default.head.batch_size
    assert cfg.output.dir == "out" and cfg.output.name == "prompt" and cfg.output.tensorboard is False
    assert default.pet.lr != type(default.pet)().lr or default.pet.head_lr != type(default.pet)().head_lr


def test_pretrain_model_defaults_to_a_checkpoint_only_when_no_source_is_given() -> None:
    data = {"train": ["corpus.txt"]}
    assert config.load(PretrainConfig, {"data": data}).model.name == "minilm-l6"
    assert config.load(PretrainConfig, {"data": data, "model": {"size": "tiny"}}).model.name == "minilm-l6"
    new = config.load(PretrainConfig, {"data": data, "model": {"arch": "bert", "tokenizer": "tok"}}).model
    assert new.name is None and new.arch == "bert"
    with pytest.raises(ConfigError, match="exactly one"):
        config.load(PretrainConfig, {"data": data, "model": {"name": "minilm-l6", "arch": "bert", "tokenizer": "tok"}})


def test_annotated_shows_a_fields_own_defaults() -> None:
    import yaml

    tree = yaml.safe_load("\n".join(config.annotated(PromptConfig)))
    default = config.load(PromptConfig, {"data": {"train": "x.tsv"}})
    assert tree["head"]["head_lr"] == default.head.head_lr and tree["output"]["name"] == "prompt"
    tree["data"]["train"] = "x.tsv"
    assert config.load(PromptConfig, tree) == default
