"""``config.yaml``: data, model, store, ingest limits, alert rules and the service, checked on load.

Relative paths in the file start from the file's folder, so ``lmforge app monitor`` works from anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from lmforge.config import Section
from lmforge.errors import ConfigError
from pydantic import Field, ValidationError


class PathsConfig(Section):
    data_dir: str = Field("data", description="Folder of the database, the trained run, the split and the generated sample stream.")
    watchlist: str = Field("watchlist.yaml", description="Companies to follow: name, ticker, aliases (any language).")
    phrasebank: str | None = Field(None, description="Financial PhraseBank CSV (label,text) the sentiment model is trained on; "
                                   "when unset, $LMFORGE_SHARED_DATA/financial_phrasebank/train.csv, else the shared/data folder "
                                   "beside the repository.")


class ModelConfig(Section):
    run: str | None = Field(None, description="A trained lmforge run to use; when unset, <data_dir>/runs/sentiment, trained on first start.")
    base: str = Field("minilm-l6", description="Zoo name or folder of the model fine-tuned on first start.")
    epochs: float = Field(4, gt=0, description="Fine-tuning epochs.")
    lr: float = Field(8e-5, gt=0, description="Peak learning rate.")
    batch_size: int = Field(32, ge=1, description="Training batch size.")
    max_length: int = Field(96, ge=16, description="Longest sentence in tokens.")
    test_share: float = Field(0.2, gt=0, lt=0.5, description="Share of the PhraseBank held out (grouped by sentence, stratified).")
    seed: int = Field(0, description="Seed of the split and the training run.")
    batch: int = Field(64, ge=1, description="Sentences scored per model call when ingesting.")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="Scoring precision; auto: bf16 where the CPU has AMX tiles.")


class EntitiesConfig(Section):
    ner_run: str | None = Field(None, description="A named-entity run (lmforge finetune with task: ner); organizations it finds "
                                "that the watchlist does not name are listed as candidates. Watchlist only when unset.")
    types: list[str] = Field(default_factory=lambda: ["ORG"], description="Entity types that count as candidates.")
    min_score: float = Field(0.5, ge=0.0, le=1.0, description="Least mean tag probability of a candidate.")


class StoreConfig(Section):
    url: str | None = Field(None, description="SQLAlchemy URL (postgresql+psycopg://...); SQLite file <data_dir>/monitor.db when unset.")


class IngestConfig(Section):
    max_chars: int = Field(20_000, ge=100, description="Longer items are cut to this many characters (counted as 'huge').")
    future_tolerance_s: float = Field(300.0, ge=0, description="Timestamps further in the future than this are rejected.")
    missing_timestamp: Literal["now", "skip"] = Field("now", description="An item without a timestamp gets the ingest time, or is skipped.")


class RuleConfig(Section):
    name: str = Field(description="Unique rule name (appears in alerts).")
    kind: Literal["level", "zscore", "volume", "cusum"] = Field(description="level | zscore | volume | cusum.")
    entities: list[str] | None = Field(None, description="Tickers the rule watches; all when unset.")
    window_s: float = Field(3600.0, gt=0, description="Seconds of items each check looks at.")
    history_s: float = Field(7 * 86400.0, gt=0, description="zscore/volume/cusum: seconds of history before the window.")
    threshold: float = Field(-0.3, description="level: mean sentiment at or below this fires; zscore: z at or below; "
                                               "volume: ratio to the hourly mean at or above; cusum: decision limit h.")
    min_items: int = Field(3, ge=1, description="Fewer items in the window never fire.")
    drift: float = Field(0.1, ge=0, description="cusum: allowance k per item (in sentiment units).")
    cooldown_s: float = Field(6 * 3600.0, ge=0, description="Seconds before the same rule may fire again for the same entity.")


class AlertsConfig(Section):
    webhook: str | None = Field(None, description="URL that gets each alert as a JSON POST; log only when unset.")
    rules: list[RuleConfig] = Field(default_factory=list, description="The rules, checked after every ingest batch.")


class ServiceConfig(Section):
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8030, ge=0, le=65535, description="Port (0 picks a free one).")
    auth: bool = Field(True, description="Require an lmforge API key on /ingest and the API (lmforge keys create ...).")
    keys: str | None = Field(None, description="Key store file; lmforge's default when unset.")


class MonitorConfig(Section):
    paths: PathsConfig = Field(default_factory=PathsConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    entities: EntitiesConfig = Field(default_factory=EntitiesConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    root: str = Field(".", description="Folder relative paths start from (set on load to the config file's folder).")

    def path(self, value: str) -> Path:
        """``value`` resolved against the config file's folder (``~`` expanded)."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (Path(self.root) / p).resolve()

    @property
    def data_dir(self) -> Path:
        """The app's data folder, created on demand."""
        folder = self.path(self.paths.data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def phrasebank(self) -> Path:
        """The labeled training CSV."""
        if self.paths.phrasebank:
            return self.path(self.paths.phrasebank)
        shared = os.environ.get("LMFORGE_SHARED_DATA") or self.path("../../../shared/data")
        return Path(shared) / "financial_phrasebank" / "train.csv"

    @property
    def store_url(self) -> str:
        """The database URL."""
        return self.store.url or f"sqlite:///{self.data_dir / 'monitor.db'}"


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> MonitorConfig:
    """The checked config; the packaged defaults when ``path`` is None.

    Raises:
        ConfigError: The file is missing, not YAML, or has an unknown key or a bad value.
    """
    raw: dict[str, Any] = {}
    root = Path.cwd()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; give the path of a monitor config.yaml (apps/monitor/config.yaml)")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None
        root = path.parent.resolve()
    raw = {**raw, **(overrides or {}), "root": str(root)}
    try:
        cfg = MonitorConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path or 'config'}: {where}: {err['msg']}; fix that key") from None
    names = [r.name for r in cfg.alerts.rules]
    if len(names) != len(set(names)):
        raise ConfigError(f"{path or 'config'}: alerts.rules has two rules with one name; give each rule its own name")
    return cfg
