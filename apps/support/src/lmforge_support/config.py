"""``config.yaml``: the intent model's recipe, the dialogue thresholds, the store and the service, checked on load.

Relative paths (``intents.data``, ``kb.file``) start at the folder of the config file; ``data_dir`` may
start with ``~``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from lmforge import config as config_mod
from lmforge.config import Section
from pydantic import Field

PACKAGE_DIR = Path(__file__).resolve().parent


class IntentsConfig(Section):
    """The BANKING77 intent classifier: data, split and fine-tuning recipe."""

    data: str = Field("../../../shared/data/banking77/train.csv", description="BANKING77-format CSV (text,category) to train on.")
    text_column: str = Field("text", description="Column of the customer's message.")
    label_column: str = Field("category", description="Column of the intent.")
    test_share: float = Field(0.2, gt=0, lt=0.5, description="Stratified share held out for the test figures.")
    validation_share: float = Field(0.1, gt=0, lt=0.5, description="Share of the rest held out for checkpoint choice and temperature.")
    seed: int = Field(0, description="Seed of the splits and of the held-out intents.")
    model: str = Field("minilm-l6", description="Zoo name, folder or run to fine-tune.")
    epochs: float = Field(3, gt=0, description="Passes over the training rows.")
    lr: float = Field(1e-4, gt=0, description="Peak learning rate of the encoder.")
    batch_size: int = Field(32, ge=1, description="Examples per step.")
    max_length: int = Field(64, ge=8, description="Longest message in tokens (BANKING77 messages are short).")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the loss.")
    tfidf_weight: Literal["auto"] | float = Field("auto",
        description="Weight of the TF-IDF + logistic regression probabilities mixed into the model's; 'auto' picks it on validation.")
    scope_share: float = Field(0.03, gt=0, lt=0.5, description="Share of in-scope validation messages the out-of-scope detector may "
                               "turn away: sets its cut (more turns away more unknown requests and more real ones).")
    scope_neighbors: int = Field(5, ge=1, description="Nearest training utterances whose mean similarity measures how familiar a message is.")
    oos_intents: int = Field(10, ge=1, description="Intents held out of the second, smaller run that measures out-of-scope detection.")
    oos_epochs: float = Field(1, gt=0, description="Epochs of that run.")
    run: str | None = Field(None, description="An already trained intent run to use instead of training one.")


class DialogueConfig(Section):
    """When the bot answers, asks back or hands off."""

    confident: float = Field(0.6, gt=0, le=1, description="Calibrated probability at or above which the top intent is acted on.")
    clarify: float = Field(0.25, gt=0, le=1, description="Below `confident` and at or above this: ask which of the two likeliest intents.")
    max_failures: int = Field(2, ge=1, description="Consecutive turns not understood before the conversation goes to a person.")
    max_message_chars: int = Field(2000, ge=1, description="Longest customer message; longer ones get 413.")
    language: Literal["auto", "en", "zh"] = Field("auto", description="Answer language; auto follows the customer's message.")


class KbConfig(Section):
    """The knowledge base and its retrieval."""

    file: str = Field("", description="Knowledge-base YAML; the packaged fictional bank when empty.")
    encoder: str = Field("minilm-l6", description="Sentence encoder of the retrieval (zoo name or folder).")
    intent_bonus: float = Field(0.5, ge=0, description="Added to the cosine of entries of the predicted intent.")
    qa: str = Field("", description="An extractive QA run (lmforge finetune with task: {name: qa}): the span of the retrieved "
                                    "answer that answers the message is highlighted; off when empty.")
    qa_min_score: float | None = Field(None, description="Least span score (start + end logit) for a highlight; any when None.")


class StoreConfig(Section):
    """Where conversations, turns and handoffs are kept."""

    url: str = Field("", description="SQLAlchemy URL (postgresql+psycopg://...); sqlite:///<data_dir>/support.db when empty.")


class ServiceConfig(Section):
    """The HTTP service around the routes."""

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8010, ge=0, le=65535, description="Port (0 picks a free one).")
    auth: bool = Field(True, description="Require an lmforge API key (lmforge keys create) on the API routes.")
    keys: str | None = Field(None, description="Key store file; lmforge's default when unset.")


class SupportConfig(Section):
    """The whole file."""

    data_dir: str = Field("~/.cache/lmforge/apps/support", description="Runs, splits and the SQLite database.")
    intents: IntentsConfig = Field(default_factory=IntentsConfig)
    dialogue: DialogueConfig = Field(default_factory=DialogueConfig)
    kb: KbConfig = Field(default_factory=KbConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)

    def resolve(self, base: Path) -> SupportConfig:
        """This config with its relative paths made absolute against ``base`` (the config file's folder)."""
        def absolute(value: str) -> str:
            path = Path(value).expanduser()
            return str(path if path.is_absolute() else (base / path).resolve())

        intents = self.intents.model_copy(update={"data": absolute(self.intents.data),
                                                  "run": absolute(self.intents.run) if self.intents.run else None})
        kb = self.kb.model_copy(update={"file": absolute(self.kb.file) if self.kb.file else str(PACKAGE_DIR / "kb" / "bank.yaml")})
        data_dir = absolute(self.data_dir)
        store = self.store.model_copy(update={"url": self.store.url or f"sqlite:///{data_dir}/support.db"})
        return self.model_copy(update={"data_dir": data_dir, "intents": intents, "kb": kb, "store": store})

    @property
    def home(self) -> Path:
        """The data folder (made when missing)."""
        path = Path(self.data_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path


def load_config(source: str | Path | dict[str, Any] | None = None, overrides: list[str] | None = None) -> SupportConfig:
    """The checked config with absolute paths: a YAML file, a dict (relative to the working folder) or the defaults.

    Raises:
        ConfigError: One sentence naming the key and what it accepts.
    """
    cfg = config_mod.load(SupportConfig, source, overrides)
    base = Path(source).resolve().parent if isinstance(source, (str, Path)) else Path.cwd()
    return cfg.resolve(base)
