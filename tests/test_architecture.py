"""The layering of docs/architecture.md, held by reading the source: no cycles, no upward imports, one writer each."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _architecture():
    spec = importlib.util.spec_from_file_location("lmforge_architecture", REPO / "benchmarks" / "architecture.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


arch = _architecture()
MODULES = arch.read_modules()


def test_no_import_cycles() -> None:
    assert arch.cycles(MODULES) == []


def test_no_upward_imports() -> None:
    assert arch.layer_violations(MODULES) == []


def test_every_module_has_a_layer() -> None:
    assert [name for name in MODULES if arch.layer_of(name) is None] == []


def test_imports_inside_functions_are_optional_dependencies_only() -> None:
    assert arch.deferred(MODULES) == []


def test_one_writer_of_lmforge_json_and_one_generation_path() -> None:
    assert [w.split()[-1] for w in arch.meta_writers(MODULES)] == ["write_meta"]
    assert [g.split()[-1] for g in arch.generation_paths(MODULES)] == ["generate_ids"]


def test_the_checks_catch_what_they_look_for(tmp_path: Path) -> None:
    pkg = tmp_path / "src" / "lmforge"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("")
    (pkg / "data" / "a.py").write_text("from lmforge.artifacts import b\n\ndef f():\n    import lmforge.data.c\n")
    (pkg / "artifacts").mkdir()
    (pkg / "artifacts" / "__init__.py").write_text("")
    (pkg / "artifacts" / "b.py").write_text("import lmforge.data.a\nMETA_FILE = 'lmforge.json'\n\n"
                                            "def save(p):\n    (p / META_FILE).write_text('{}')\n")
    (pkg / "data" / "c.py").write_text("def g(model):\n    return model.generate()\n")
    old = arch.SRC, arch.REPO
    arch.SRC, arch.REPO = tmp_path / "src", tmp_path
    try:
        mods = arch.read_modules(pkg)
        assert arch.cycles(mods) == [["lmforge.artifacts.b", "lmforge.data.a"]]
        assert len(arch.layer_violations(mods)) == 1 and len(arch.deferred(mods)) == 1
        assert len(arch.meta_writers(mods)) == 1 and len(arch.generation_paths(mods)) == 1
    finally:
        arch.SRC, arch.REPO = old


def _import_alone(name: str) -> tuple[str, str]:
    done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd=REPO,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "src")})
    return name, done.stderr.strip().splitlines()[-1] if done.returncode else ""


@pytest.mark.slow
def test_every_module_imports_in_a_fresh_interpreter() -> None:
    # With no cycles, importing every module that nothing else imports imports every module, each after its own
    # dependencies only: a module that fails alone fails here.
    imported = {t for m in MODULES.values() if not m.name.endswith("__main__") for t, _, inner in m.imports if not inner}
    names = [n for n in MODULES if n not in imported and not n.endswith("__main__")]
    assert len(names) < len(MODULES)
    with ThreadPoolExecutor(2) as pool:
        failures = {n: err for n, err in pool.map(_import_alone, names) if err}
    assert failures == {}
