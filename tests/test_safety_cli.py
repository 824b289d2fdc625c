"""``lmforge explain`` (tables, HTML, JSON, the global view, generators) and ``lmforge audit`` (report files)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import lmforge
from forge_testing import toy_rows, write_csv
from lmforge.cli import main
from lmforge.errors import LmforgeError
from lmforge.evaluation.explainer import Explainer
from serving_support import build_classifier_run

needs_captum = pytest.mark.skipif(importlib.util.find_spec("captum") is None, reason="Captum is not installed (lmforge[explain])")


@pytest.fixture(scope="module")
def clf_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_classifier_run(tiny_bert, tmp_path_factory.mktemp("safety") / "clf")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = toy_rows(40) + [{"text": "he was a good actor", "label": "positive"}, {"text": "she was a bad actor", "label": "negative"}]
    return write_csv(tmp_path_factory.mktemp("safety-data") / "test.csv", rows)


@needs_captum
def test_explain_prints_a_table_and_writes_highlighted_html(clf_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    page = tmp_path / "out" / "explain.html"
    assert main(["explain", str(clf_run), "the movie was good", "--html", str(page), "--steps", "8"]) == 0
    out = capsys.readouterr().out
    assert "integrated_gradients" in out and "good" in out and "score" in out
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and "background:rgba(" in text and ">good</span>" in text


def test_explain_occlusion_json_names_a_class_and_scores_every_word(clf_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["explain", str(clf_run), "a bad plot", "--method", "occlusion", "--target", "positive", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["method"] == "occlusion" and row["label"] == "positive"
    assert row["words"] == ["a", "bad", "plot"] and len(row["scores"]) == 3


def test_explain_global_view_lists_words_per_class(clf_run: Path, data_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["explain", str(clf_run), "--data", str(data_file), "--top", "3", "--sample", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "occlusion" and result["num_texts"] == 20
    assert set(result["classes"]) <= {"negative", "positive"}
    for view in result["classes"].values():
        assert len(view["for"]) <= 3 and len(view["against"]) <= 3
    assert main(["explain", str(clf_run), "--data", str(data_file), "--top", "2", "--sample", "10"]) == 0
    assert "most influential words (occlusion, 10 texts)" in capsys.readouterr().out


def test_explain_a_generator_shows_token_logprobs(tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    page = tmp_path / "lp.html"
    assert main(["explain", str(tiny_llama), "good movie", "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "mean log-probability" in out and "logprob" in out
    assert "lmforge-logprobs" in page.read_text(encoding="utf-8")


def test_explain_errors_are_one_line(clf_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["explain", str(clf_run)]) == 2
    assert "give texts to explain" in capsys.readouterr().err
    assert main(["explain", str(clf_run), "good", "--method", "occlusion", "--target", "neutral"]) == 2
    assert "not a class of this run" in capsys.readouterr().err


def test_explainer_refuses_an_encoder(tiny_bert: Path) -> None:
    with pytest.raises(LmforgeError, match="cannot be explained"):
        Explainer(lmforge.load(tiny_bert))


def test_audit_writes_markdown_json_and_reliability_diagram(clf_run: Path, data_file: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "audit"
    assert main(["audit", str(clf_run), "--data", str(data_file), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "# Safety audit" in printed and "## Calibration" in printed and "reliability.png" in printed
    result = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    assert result["num_texts"] == 42 and result["language"] == "en"
    assert result["bias"]["data"]["overall"]["pairs"] >= 2  # he/she and the names of the two extra rows
    assert 0.0 <= result["calibration"]["ece"] <= 1.0
    assert (out / "reliability.png").stat().st_size > 1000 and (out / "audit.md").is_file()
    assert set(result["robustness"]) == {"clean", "typos", "case", "swap"}
