"""The machinery every config shares: the strict :class:`Section` base, YAML and ``key.sub=value``
overrides, one-sentence errors, the resolved config as YAML, and annotated listings."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from lmforge.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated.

    A sub-section whose field default sets its own values (``pet: FewShotTrain =
    Field(default_factory=lambda: FewShotTrain(lr=2e-5, ...))``) keeps them when the user gives
    only some of its keys: the user's keys are laid over that default, not over the class's.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _over_field_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for name, field in cls.model_fields.items():
            given = merged.get(name)
            if not isinstance(given, dict) or field.default_factory is None:
                continue
            default = field.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                merged[name] = _laid_over(default.model_dump(exclude_unset=True), given)
        return merged


def _laid_over(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, key by key, recursing where both hold a mapping."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _laid_over(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out



def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into its key path and YAML-parsed value."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def set_key(tree: dict[str, Any], key: str | list[str], value: Any) -> None:
    """Set the dotted ``key`` (or key path) to ``value`` in the nested dict ``tree``, making sections as needed."""
    *path, last = key.split(".") if isinstance(key, str) else key
    node = tree
    for part in path:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {'.'.join([*path, last])!r}: {part!r} is not a section")
        node = child
    node[last] = value


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each ``key.sub=value`` of ``overrides`` in the nested dict ``tree`` (in place)."""
    for item in overrides:
        set_key(tree, *parse_override(item))
    return tree


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (data:, model:, train: ...)")
    return tree


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names valid at ``loc`` (the parent of an unknown key)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None) if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


_UNION_TAG = re.compile(r"^(?:[a-z]+(?:-[a-z]+)+|literal\[.*\]|float|int|str|bool|none|list\[.*\]|dict\[.*\])$")


def _field_path(loc: tuple[Any, ...]) -> tuple[str, ...]:
    """The key path of a pydantic error location without the tags of union members (``constrained-float``...)."""
    return tuple(str(p) for p in loc if not _UNION_TAG.match(str(p)))


def describe_error(model: type[BaseModel], exc: ValidationError, source: str, prefix: tuple[str, ...] = ()) -> str:
    """Turn the first pydantic error into one sentence naming the key and what it accepts.

    ``prefix`` is the key path of ``model`` inside a larger config, for sections validated on their own.
    """
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = _field_path(err["loc"])
    key = ".".join(prefix + loc) or "config"
    kind, msg, got = err["type"], err["msg"], err.get("input")
    # A value that fits no member of a union (a number or 'auto'): say what the other members accept.
    also = [e["msg"].removeprefix("Input should be ") for e in errors[1:] if _field_path(e["loc"]) == loc and e["type"] == "literal_error"]
    if also and kind != "literal_error":
        msg = f"{msg}, or be {' or '.join(also)}"
    if kind == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(model, loc[:-1]))
        return f"{source}: unknown key '{key}'; allowed here: {allowed}"
    if kind == "value_error":
        return f"{source}: {msg.removeprefix('Value error, ')}"
    if kind == "literal_error":
        return f"{source}: {key} must be {msg.removeprefix('Input should be ')} (got {got!r})"
    return f"{source}: {key} {msg[0].lower() + msg[1:]} (got {got!r})"


def build(model: type[M], tree: dict[str, Any], source: str = "config") -> M:
    """Validate ``tree`` into ``model``, raising a one-line :class:`ConfigError`."""
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(describe_error(model, exc, source)) from None


def load(model: type[M], source: str | Path | dict[str, Any] | M | None, overrides: list[str] | None = None) -> M:
    """Load a config of type ``model`` from a YAML path, a dict or an instance, plus overrides."""
    if isinstance(source, model):
        tree = source.model_dump(mode="json")
        name = "config"
    elif isinstance(source, dict):
        tree, name = copy.deepcopy(source), "config"
    elif source is None:
        tree, name = {}, "config"
    else:
        tree, name = read_yaml(source), str(source)
    apply_overrides(tree, overrides or [])
    return build(model, tree, name)


def dump(cfg: BaseModel) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def _yaml_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip().removesuffix("...").strip()


def annotated(model: type[BaseModel], indent: int = 0, defaults: BaseModel | None = None) -> list[str]:
    """Every key of ``model`` with its default and description, as commented YAML lines.

    ``defaults`` is the instance whose values are shown (a resolved config, or a field's own default,
    which may differ from its class's); the class's defaults when None. A section holding a subclass
    of its declared type (a tuning method's options) lists the subclass's keys.
    """
    lines, pad = [], "  " * indent
    model = type(defaults) if defaults is not None else model
    for name, field in model.model_fields.items():
        annotation = field.annotation
        default = getattr(defaults, name) if defaults is not None else field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            annotation = type(default)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.append(f"{pad}{name}:")
            lines += annotated(annotation, indent + 1, default if isinstance(default, BaseModel) else None)
            continue
        value = _yaml_value(default.model_dump(mode="json") if isinstance(default, BaseModel) else default)
        lines.append(f"{pad}{name}: {value}" + (f"  # {field.description}" if field.description else ""))
    return lines
