"""``lmforge app recommend ...`` and ``python -m lmforge_recommend``: the entry point, one-off answers, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lmforge.cli.apps import installed

from lmforge_recommend.cli import main


@pytest.fixture
def config(movie_dir: Path, tiny_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LMFORGE_RECOMMEND_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "config.yaml"
    model = {"text_model": str(tiny_encoder), "windows": 1, "ease_lambda": 5.0, "candidates": 10}
    path.write_text(yaml.safe_dump({"data": {"dir": str(movie_dir)}, "model": model, "serve": {"max_k": 20}}))
    return path


def test_the_application_is_found_through_the_lmforge_apps_entry_points() -> None:
    assert installed()["recommend"].value == "lmforge_recommend.cli:main"


def test_recommend_and_similar_print_json(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "recommend", "--user", "3", "-k", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 3 and out[0]["reason"].startswith("because you watched ")
    assert main(["--config", str(config), "similar", "1", "-k", "2"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


def test_user_errors_are_one_line_and_exit_2(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "recommend", "--user", "999"]) == 2
    err = capsys.readouterr().err
    # progress lines may come first (when logging is set up); the error itself is one line and no traceback
    assert err.strip().splitlines()[-1] == "error: user 999 has no ratings in the training file; pass liked_items or text for a new user"
    assert "Traceback" not in err
    assert main(["--config", str(tmp_path / "nope.yaml"), "similar", "1"]) == 2
    assert "does not exist; give the path of a config.yaml" in capsys.readouterr().err


def test_python_dash_m_prints_its_help() -> None:
    done = subprocess.run([sys.executable, "-m", "lmforge_recommend", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "serve" in done.stdout and "similar" in done.stdout
