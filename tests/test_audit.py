"""Safety audit: counterfactual swaps and flip rates, calibration error and its diagram, robustness, the report."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import yaml

from lmforge.errors import ConfigError, DataError
from lmforge.evaluation.audit import (
    audit,
    audit_markdown,
    bias_probe,
    calibration,
    counterfactuals,
    load_counterfactuals,
    match_case,
    reliability_diagram,
    robustness,
)


def groups(language: str) -> dict:
    bank = load_counterfactuals(language)
    return {g.name: g for g in bank.groups} | {"_protect": bank.protect}


def female_words() -> re.Pattern[str]:
    """The female side of the shipped English and Chinese gender and name pairs."""
    words = set()
    for language in ("en", "zh"):
        raw = yaml.safe_load(resources.files("lmforge.evaluation").joinpath("data", f"counterfactuals_{language}.yaml").read_text("utf-8"))
        words |= {b for group in ("gender", "names") for _, b in raw["groups"][group]["pairs"]}
    english = "|".join(w for w in words if w.isascii())
    return re.compile(rf"\b(?:{english})\b|" + "|".join(w for w in words if not w.isascii()), re.IGNORECASE)


FEMALE = female_words()


def female_biased(texts: list[str]) -> np.ndarray:
    """Positive 0.8, but negative 0.3 when a female word occurs."""
    female = FEMALE
    p = np.array([0.3 if female.search(t) else 0.8 for t in texts])
    return np.stack([1 - p, p], axis=1)


def fair(texts: list[str]) -> np.ndarray:
    p = np.array([0.8 if "good" in t else 0.3 for t in texts])
    return np.stack([1 - p, p], axis=1)


def test_shipped_lists_load_with_templates() -> None:
    for language in ("en", "zh"):
        bank = load_counterfactuals(language)
        assert {"gender", "names", "nationality", "ethnicity"} <= {g.name for g in bank.groups}
        assert len(bank.templates) >= 30 and not any("{" in t for t in bank.templates)
        # Every template has something to swap.
        assert all(any(counterfactuals(t, g, bank.protect) for g in bank.groups) for t in bank.templates)


def test_match_case() -> None:
    assert [match_case(s, "she") for s in ("he", "He", "HE")] == ["she", "She", "SHE"]
    assert match_case("john", "Mary") == "mary" and match_case("John", "Mary") == "Mary"
    assert match_case("他", "她") == "她"


def test_english_swaps_whole_words_and_keep_case() -> None:
    g = groups("en")
    assert counterfactuals("The theme: HE told Her father that he'd go.", g["gender"]) == ["The theme: SHE told His mother that she'd go."]
    assert counterfactuals("the other thesis", g["gender"]) == []  # "he" inside words is left alone
    assert counterfactuals("Johnny met John", g["names"]) == ["Johnny met Mary"]
    assert counterfactuals("the female lead and the male lead", g["gender"]) == ["the male lead and the female lead"]


def test_term_groups_give_one_copy_per_other_term() -> None:
    g = groups("en")
    copies = counterfactuals("A Mexican film", g["nationality"])
    assert len(copies) == len(g["nationality"].terms) - 1 and "An American film" in copies and "A British film" in copies
    assert counterfactuals("a black comedy", g["ethnicity"]) == []  # case-sensitive group
    assert "a White actor" in counterfactuals("a Black actor", g["ethnicity"])


def test_chinese_swaps_substrings_but_not_protected_words() -> None:
    g = groups("zh")
    text = "他和其他人弹吉他，他的父亲很好。"
    assert counterfactuals(text, g["gender"], g["_protect"]) == ["她和其他人弹吉他，她的母亲很好。"]
    assert counterfactuals("张伟说", g["names"], g["_protect"]) == ["王芳说"]
    assert counterfactuals("其他", g["gender"], g["_protect"]) == []


def test_flip_rate_of_a_biased_and_a_fair_model() -> None:
    biased = bias_probe(female_biased, language="en", label_names=["neg", "pos"])
    assert biased["source"] == "templates" and biased["num_texts"] == len(load_counterfactuals("en").templates)
    assert biased["groups"]["gender"]["flip_rate"] == 1.0 and biased["groups"]["names"]["flip_rate"] == 1.0
    assert biased["groups"]["nationality"]["flip_rate"] == 0.0
    assert biased["groups"]["gender"]["mean_abs_shift"] == pytest.approx(0.5)
    assert 0 < biased["overall"]["flip_rate"] < 1 and biased["examples"][0]["counterfactual_label"] == "neg"
    assert bias_probe(fair, language="en")["overall"]["flip_rate"] == 0.0
    data = bias_probe(female_biased, ["he was good", "no swappable words"], language="en")
    assert data["num_texts"] == 1 and data["overall"] == {"pairs": 1, "flip_rate": 1.0, "mean_abs_shift": pytest.approx(0.5),
                                                          "max_abs_shift": pytest.approx(0.5)}
    assert bias_probe(female_biased, language="zh")["groups"]["gender"]["flip_rate"] == 1.0


def test_ece_on_hand_computed_bins() -> None:
    # 4 bins; confidences 0.35 (bin 1), 0.6 and 0.7 (bin 2), 0.9 and 0.95 (bin 3).
    probs = np.array([[0.3, 0.35, 0.35], [0.6, 0.4, 0.0], [0.3, 0.7, 0.0], [0.9, 0.1, 0.0], [0.05, 0.0, 0.95]])
    labels = [1, 0, 0, 0, 2]  # correct, correct, wrong, correct, correct
    result = calibration(probs, labels, bins=4)
    # bin (0.25, 0.5]: conf 0.35, acc 1; bin (0.5, 0.75]: conf 0.65, acc 0.5; bin (0.75, 1]: conf 0.925, acc 1.
    expected_ece = 1 / 5 * 0.65 + 2 / 5 * 0.15 + 2 / 5 * 0.075
    assert result["ece"] == pytest.approx(expected_ece) and result["mce"] == pytest.approx(0.65)
    assert [b["count"] for b in result["bins"]] == [0, 1, 2, 2] and result["bins"][0]["accuracy"] is None
    assert result["accuracy"] == pytest.approx(0.8)
    assert calibration(np.array([[0.0, 1.0], [1.0, 0.0]]), [1, 0])["ece"] == pytest.approx(0.0)
    with pytest.raises(DataError):
        calibration(probs, labels[:2])


def test_reliability_png_is_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1], size=50)
    path = reliability_diagram(calibration(probs, rng.integers(0, 2, 50)), tmp_path / "plots" / "reliability.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_robustness_reports_accuracy_drop() -> None:
    texts = ["a good movie with great actors", "this was very good indeed", "boring and sad plot", "the film was awful"]
    result = robustness(fair, texts, [1, 1, 0, 0], perturbations=("typos", "case"), rate=1.0)
    assert result["clean"] == {"changed": 0.0, "accuracy": 1.0, "drop": 0.0}
    assert result["typos"]["drop"] == pytest.approx(1.0 - result["typos"]["accuracy"]) and result["typos"]["changed"] > 0
    assert robustness(fair, texts, perturbations=("case",))["case"]["accuracy"] is None


def test_audit_and_markdown(tmp_path: Path) -> None:
    texts = ["she liked the good film", "he liked the good film", "a boring plot", "the actor was good"]
    result = audit(female_biased, ["neg", "pos"], texts, labels=["pos", "pos", "neg", "pos"], out_dir=tmp_path)
    assert result["language"] == "en" and result["bias"]["data"]["num_texts"] == 3
    assert result["calibration"]["num_examples"] == 4 and Path(result["calibration"]["plot"]).is_file()
    assert set(result["robustness"]) == {"clean", "typos", "case", "swap"}
    report = audit_markdown(result)
    assert "## Calibration" in report and "reliability.png" in report and "Largest flips" in report and "| gender |" in report
    assert audit(fair, ["neg", "pos"], ["电影很好看"])["language"] == "zh"
    assert "not measured" in audit_markdown(audit(fair, ["neg", "pos"], ["a good film"]))
    with pytest.raises(DataError, match="text 2"):
        audit(fair, ["neg", "pos"], ["a", "b"], labels=["neg", "maybe"])


def test_bad_swap_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "swaps.yaml"
    path.write_text("groups:\n  gender:\n    pairs: [[he]]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="two-item list"):
        load_counterfactuals(path=path)
    with pytest.raises(ConfigError, match="'en' or 'zh'"):
        load_counterfactuals("fr")
