"""Perturbations (typos, case, swap) and ``lmforge evaluate --perturb``."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import lmforge
from forge_testing import tiny_config, toy_rows, write_csv
from lmforge.evaluation.perturb import PERTURBATIONS, perturb_texts, typo_word

TEXTS = ["the movie was surprisingly good", "an awful plot and boring actors", "这部电影非常好看，演员也很棒"]


@pytest.mark.parametrize("name", ["typos", "case", "swap"])
def test_perturbations_are_seeded_and_change_text(name: str) -> None:
    first = perturb_texts(TEXTS, name, 0.3, seed=1)
    assert first == perturb_texts(TEXTS, name, 0.3, seed=1)
    assert first != perturb_texts(TEXTS, name, 0.3, seed=2)
    assert first[0] != TEXTS[0]
    if name != "case":
        assert first[2] != TEXTS[2]  # Chinese text is perturbed too


def test_typos_keep_words_recognizable() -> None:
    rng = random.Random(0)
    for word in ["movie", "surprisingly", "boring"]:
        slipped = typo_word(word, rng)
        assert slipped != word or len(set(word)) < len(word)
        assert abs(len(slipped) - len(word)) <= 1
    assert PERTURBATIONS.get("typos")("a an it", random.Random(0), 1.0) == "a an it"  # short words are left alone


def test_swap_and_case_keep_the_words() -> None:
    swapped = perturb_texts(TEXTS[:1], "swap", 0.5)[0]
    assert sorted(swapped.split()) == sorted(TEXTS[0].split())
    cased = perturb_texts(TEXTS[:1], "case", 0.5)[0]
    assert cased.lower() == TEXTS[0]


def test_evaluate_reports_clean_and_perturbed(tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from lmforge.cli import main
    from lmforge.recipes.evaluate import evaluate

    run = lmforge.finetune(tiny_config(tiny_bert, write_csv(tmp_path / "t.csv", toy_rows(120)), tmp_path / "run")).run_dir
    held = write_csv(tmp_path / "held.csv", toy_rows(50, seed=9))
    result = evaluate(run, str(held), perturb=["typos", "case", "swap"], perturb_rate=0.5)
    assert set(result) == {"clean", "typos", "case", "swap"}
    assert result["clean"] == lmforge.load(run).evaluate(held)
    assert all(result[k]["num_examples"] == 50 for k in result)
    assert main(["evaluate", str(run), "--data", str(held), "--perturb", "typos,swap"]) == 0
    out = capsys.readouterr().out
    assert "clean" in out and "typos" in out and "drop" in out
    assert main(["evaluate", str(run), "--data", str(held), "--perturb", "typos", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out.strip().splitlines()[-1])) == {"clean", "typos"}
    assert main(["evaluate", str(run), "--data", str(held), "--perturb", "shout"]) == 2
    assert "unknown perturbation 'shout'" in capsys.readouterr().err
