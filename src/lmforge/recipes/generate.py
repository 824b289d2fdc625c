"""``lmforge generate``: prompts from the command line (streamed) or a file (batched) -> text."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from lmforge.artifacts import load
from lmforge.data.sources import read_table
from lmforge.errors import DataError
from lmforge.generation import GenerateConfig
from lmforge.serving.guard import Guard

log = logging.getLogger("lmforge")


def read_prompts(path: str | Path, column: str = "prompt") -> list[str]:
    """Prompts of a file: one per line in text files, the ``column`` of CSV, TSV, JSONL or Parquet rows."""
    table = read_table(path)
    if table.columns == ["text"] and column not in table.columns:
        column = "text"  # plain text: every line is a prompt
    if column not in table.columns:
        raise DataError(f"{path} has no column '{column}' (columns: {', '.join(table.columns)}); pass --column NAME")
    prompts = [str(row.get(column) or "") for row in table.rows]
    for prompt, line in zip(prompts, table.lines, strict=True):
        if not prompt.strip():
            raise DataError(f"{path}, line {line}: empty prompt in column '{column}'; fill it in or delete the row")
    return prompts


def _generator(model: Any) -> Any:
    """An artifact that generates: loaded from a name or run, or given already loaded."""
    return load(model) if isinstance(model, (str, Path)) else model


def generate_file(model: Any, source: str | Path, out: str | Path, options: GenerateConfig,
                  column: str = "prompt", guard: Guard | None = None) -> int:
    """Generate for every prompt of ``source`` and write ``{"prompt", "output"}`` JSON lines to ``out``, in order.

    With a ``guard``, refused prompts get the refusal without reaching the model, and outputs are filtered.

    Returns:
        The number of prompts.
    """
    generator = _generator(model)
    prompts = read_prompts(source, column)
    outputs = guarded_generate(generator, prompts, options, guard)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with Path(out).open("w", encoding="utf-8") as f:
        for prompt, output in zip(prompts, outputs, strict=True):
            f.write(json.dumps({"prompt": prompt, "output": output}, ensure_ascii=False) + "\n")
    return len(prompts)


def guarded_generate(generator: Any, prompts: list[str], options: GenerateConfig, guard: Guard | None) -> list[str]:
    """``generator.generate(prompts)`` through the guard's filters: only allowed (PII-masked) prompts reach the model."""
    if guard is None:
        return generator.generate(prompts, options)
    verdicts = [guard.check_input(p) for p in prompts]
    for i, verdict in enumerate(verdicts):
        if not verdict.allowed:
            log.warning("prompt %d refused: %s", i + 1, verdict.reason)
    allowed = [v.text for v in verdicts if v.allowed]
    made = iter(guard.check_output(t) for t in (generator.generate(allowed, options) if allowed else []))
    return [next(made) if v.allowed else v.text for v in verdicts]


def generate_prompts(model: Any, prompts: list[str], options: GenerateConfig, stream: bool = True,
                     guard: Guard | None = None) -> list[str]:
    """Generate for each prompt in turn, printing tokens as they come when ``stream``.

    With a ``guard``, each answer is printed whole, once filtered (a blocked term or a phone number may span pieces).
    """
    generator = _generator(model)
    outputs: list[str] = []
    if guard is not None:
        for prompt in prompts:
            outputs.append(guarded_generate(generator, [prompt], options, guard)[0])
            print(outputs[-1], flush=True)
        return outputs
    for prompt in prompts:
        text: Any = generator.generate(prompt, options, stream=stream)
        if stream:
            print(flush=True)
        else:
            print(text, flush=True)
        outputs.append(text)
    return outputs
