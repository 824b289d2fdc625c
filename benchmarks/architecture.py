"""The shape of the code, measured: import cycles, deferred imports, writers of ``lmforge.json``, generation paths.

Reads ``src/lmforge`` with the ``ast`` module (nothing is imported or run) and prints one JSON line:

* ``import_cycles``: strongly connected groups of modules in the import graph (every import, at any depth);
* ``deferred_imports``: imports inside functions that are neither an optional dependency (marked
  ``# optional: lmforge[extra]``) nor the command line's deferred recipes;
* ``meta_writers``: functions that write ``lmforge.json``;
* ``generation_paths``: functions that call a model's ``generate``;
* ``layer_violations``: imports that reach up the layers of ``docs/architecture.md``.

Targets: 0, 0, 1, 1, 0. ``tests/test_architecture.py`` holds the code to them.
"""

from __future__ import annotations

import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

# Lowest first. A module may import its own layer and those below; packages are matched by prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("lmforge", "lmforge.errors", "lmforge.registry", "lmforge.config", "lmforge.zoo", "lmforge.devices",
                    "lmforge.logs")),
    ("data and models", ("lmforge.data", "lmforge.models", "lmforge.generation")),
    ("library", ("lmforge.tasks", "lmforge.tuning", "lmforge.prompting", "lmforge.pretraining", "lmforge.training",
                 "lmforge.evaluation")),
    ("artifacts", ("lmforge.artifacts",)),
    ("products", ("lmforge.runs", "lmforge.compression", "lmforge.serving", "lmforge.studio")),
    ("recipes", ("lmforge.recipes",)),
    ("command line", ("lmforge.cli", "lmforge.__main__")),
]


@dataclass
class Module:
    """One source file: its dotted name, imports (with line and whether inside a function) and tree."""

    name: str
    path: Path
    tree: ast.Module
    lines: list[str]
    imports: list[tuple[str, int, bool]] = field(default_factory=list)


def module_name(path: Path) -> str:
    """``src/lmforge/data/tokenize.py`` -> ``lmforge.data.tokenize``."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def read_modules(root: Path = SRC / "lmforge") -> dict[str, Module]:
    """Every module of the package, parsed."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        out[module_name(path)] = Module(module_name(path), path, ast.parse(text), text.splitlines())
    for module in out.values():
        module.imports = list(_imports(module, out))
    return out


def _in_functions(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            ids |= {id(sub) for sub in ast.walk(node) if isinstance(sub, (ast.Import, ast.ImportFrom))}
    return ids


def _resolve_from(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.name.split(".")
    base = base if module.path.name == "__init__.py" else base[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: Module, known: dict[str, Module]):
    """(imported module, line, inside a function) for every import statement; ``from p import m`` counts as ``p.m``."""
    inner = _in_functions(module.tree)
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, id(node) in inner
        elif isinstance(node, ast.ImportFrom):
            target = _resolve_from(module, node)
            for alias in node.names:
                full = f"{target}.{alias.name}"
                yield (full if full in known else target), node.lineno, id(node) in inner


def layer_of(name: str) -> int | None:
    """Index in :data:`LAYERS` of the longest matching prefix."""
    best, where = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, where = len(prefix), index
    return where


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself), Tarjan's algorithm."""
    graph = {n: sorted({t for t, _, _ in m.imports if t in modules and t != n}) for n, m in modules.items()}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def deferred(modules: dict[str, Module]) -> list[str]:
    """Imports inside functions that are not allowed: not an optional dependency, not the command line's recipes."""
    bad = []
    for m in modules.values():
        for target, line, inner in m.imports:
            if not inner:
                continue
            if m.name.startswith("lmforge.cli") and target.startswith("lmforge"):
                continue  # the command line defers its recipes so that `lmforge --help` stays fast
            if "# optional: lmforge[" in m.lines[line - 1] and not target.startswith("lmforge"):
                continue
            bad.append(f"{m.path.relative_to(REPO)}:{line} imports {target}")
    return bad


def layer_violations(modules: dict[str, Module]) -> list[str]:
    """Imports that reach a higher layer, a recipe importing another recipe, or anything but the CLI importing it."""
    bad = []
    for m in modules.values():
        mine = layer_of(m.name)
        for target, line, _ in m.imports:
            if not target.startswith("lmforge") or target not in modules:
                continue
            theirs = layer_of(target)
            where = f"{m.path.relative_to(REPO)}:{line}"
            if mine is not None and theirs is not None and theirs > mine:
                bad.append(f"{where}: {LAYERS[mine][0]} module {m.name} imports {LAYERS[theirs][0]} module {target}")
            elif m.name.startswith("lmforge.recipes.") and target.startswith("lmforge.recipes.") and target != m.name:
                bad.append(f"{where}: recipe {m.name} imports recipe {target}")
    return bad


def _calls(node: ast.AST, attr: str) -> list[ast.Call]:
    return [c for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute) and c.func.attr == attr]


def _functions(modules: dict[str, Module]):
    for m in modules.values():
        for node in ast.walk(m.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield m, node


def meta_writers(modules: dict[str, Module]) -> list[str]:
    """Functions that name ``lmforge.json`` (or ``META_FILE``) and write a file."""
    out = []
    for m, fn in _functions(modules):
        names = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)} | {
            n.value for n in ast.walk(fn) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        if not ({"META_FILE", "lmforge.json"} & names):
            continue
        writes = _calls(fn, "write_text") + _calls(fn, "write_bytes") + _calls(fn, "dump")
        if writes:
            out.append(f"{m.path.relative_to(REPO)}:{fn.lineno} {fn.name}")
    return out


def generation_paths(modules: dict[str, Module]) -> list[str]:
    """Functions that call ``<model>.generate(...)`` on a transformers model."""
    out = []
    for m, fn in _functions(modules):
        for call in _calls(fn, "generate"):
            owner = ast.unparse(call.func.value)
            if owner.split(".")[-1] in ("model", "_model"):
                out.append(f"{m.path.relative_to(REPO)}:{fn.lineno} {fn.name}")
                break
    return out


def measure() -> dict:
    """Every figure, with the offending places listed."""
    modules = read_modules()
    found = {"import_cycles": cycles(modules), "deferred_imports": deferred(modules), "meta_writers": meta_writers(modules),
             "generation_paths": generation_paths(modules), "layer_violations": layer_violations(modules)}
    return {**{k: len(v) for k, v in found.items()}, "modules": len(modules), "details": found}


def main() -> None:
    """Print the details on stderr and the JSON line on stdout."""
    result = measure()
    for key, items in result.pop("details").items():
        for item in items:
            print(f"{key}: {item}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
