"""``lmforge app``: applications found through the ``lmforge.apps`` entry points receive the rest of the command line."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from lmforge.cli import apps, main

received: list[list[str]] = []


def fake_main(argv: list[str]) -> int:
    received.append(argv)
    return 3


def test_app_hands_arguments_to_its_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    point = EntryPoint(name="demo", value=f"{__name__}:fake_main", group=apps.GROUP)
    monkeypatch.setattr(apps, "installed", lambda: {"demo": point})
    assert main(["app", "demo", "serve", "--port", "9"]) == 3
    assert received[-1] == ["serve", "--port", "9"]
    assert main(["app"]) == 0
    assert "demo" in capsys.readouterr().out


def test_unknown_app_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(apps, "installed", lambda: {})
    assert main(["app", "nothing"]) == 2
    assert "pip install -e apps/nothing" in capsys.readouterr().err
