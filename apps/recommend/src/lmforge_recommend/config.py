"""``config.yaml``: where the data is, the models' settings and the request limits, checked on load."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from lmforge.errors import ConfigError
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    """MovieLens files; ``dir`` is relative to the config file."""

    dir: str = Field("../../../shared/data/ml-100k", description="folder of the MovieLens files")
    ratings: str = Field("ua.base", description="training ratings (user, item, rating, timestamp; tab separated)")
    items: str = Field("u.item", description="item catalogue (id|title|release date|video date|URL|genre flags)")
    genres: str = Field("u.genre", description="genre names (name|index)")


class ALSConfig(_Section):
    """ALS settings (the ``implicit`` package)."""

    factors: int = Field(16, ge=1, description="latent dimensions")
    regularization: float = Field(0.1, ge=0, description="L2 strength")
    iterations: int = Field(10, ge=1, description="alternating sweeps")
    alpha: float = Field(1.0, gt=0, description="confidence scale of a rating")
    threads: int = Field(1, ge=1, le=2, description="CPU threads while fitting")


class ModelConfig(_Section):
    """The hybrid ranker and its base models."""

    text_model: str = Field("minilm-l6", description="sentence encoder of the item texts (zoo name or folder)")
    ease_lambda: float = Field(4000.0, gt=0, description="EASE regularization")
    als: ALSConfig = Field(default_factory=ALSConfig, description="ALS settings")
    knn_neighbours: int = Field(0, ge=0, description="item-kNN neighbours kept per item (0: all)")
    halflife: float = Field(2.0, ge=0, description="recency half-life in history positions (0: no weighting)")
    candidates: int = Field(100, ge=10, description="candidates per user that the ranker reorders")
    text_alpha: float = Field(10.0, gt=0, description="ridge strength of the text-to-ALS-factors map")
    windows: int = Field(2, ge=1, description="validation carve-outs (10 ratings per user each) the ranker learns from")
    validation: Literal["last", "random"] = Field("last", description="carve each user's latest ratings (predict what comes next) or random ones")
    seed: int = Field(0, description="seed of the ranker and ALS")


class ServeConfig(_Section):
    """Request limits."""

    max_k: int = Field(100, ge=1, description="largest k a request may ask for")
    text_weight: float = Field(1.0, ge=0, description="weight of a free-text request against the personal ranking")


class StoreConfig(_Section):
    """Where profiles (new users' liked films) and feedback (films served, liked, dismissed) are kept."""

    url: str | None = Field(None, description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db; "
                                               "a SQLite file recommend.sqlite in the application's data folder when unset")


class RecommendConfig(_Section):
    """The whole file."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    service: dict[str, Any] = Field(default_factory=dict, description="lmforge service settings (the keys of serve.yaml: "
                                    "server, auth, limits, logging...); models defaults to {text: model.text_model}")


def load_config(path: str | Path) -> tuple[RecommendConfig, Path]:
    """The checked config and the folder its relative paths start from.

    Raises:
        ConfigError: The file is missing, not YAML, or has an unknown key or a bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; give the path of a config.yaml")
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None
    try:
        return RecommendConfig.model_validate(raw), path.parent.resolve()
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: key '{key}': {first['msg']}; fix or remove it") from None
