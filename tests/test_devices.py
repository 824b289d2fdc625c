"""Device and precision choice: AMX detection by flags or a timed product, bf16 autocast where it is fast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmforge import devices


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(devices.CPU_BF16_ENV, raising=False)
    devices.cpu_bf16.cache_clear()
    yield monkeypatch
    devices.cpu_bf16.cache_clear()


def test_flags_decide_where_the_system_lists_them(fresh: pytest.MonkeyPatch) -> None:
    fresh.setattr(devices, "_cpu_flags", lambda: {"avx512f", "amx_bf16", "amx_tile"})
    assert devices.cpu_bf16() == (True, "the CPU has AMX bf16 tiles")
    devices.cpu_bf16.cache_clear()
    fresh.setattr(devices, "_cpu_flags", lambda: {"avx512f", "avx2"})
    assert devices.cpu_has_fast_bf16() is False
    assert devices.inference_dtype("cpu") is None


def test_a_timed_product_decides_where_flags_are_unknown(fresh: pytest.MonkeyPatch) -> None:
    fresh.setattr(devices, "_cpu_flags", lambda: None)
    fresh.setattr(devices, "_timed_bf16_ratio", lambda: 4.0)
    assert devices.cpu_bf16() == (True, "a timed matrix product ran 4.0x faster in bf16 than fp32")
    devices.cpu_bf16.cache_clear()
    fresh.setattr(devices, "_timed_bf16_ratio", lambda: 0.3)
    assert devices.cpu_has_fast_bf16() is False


def test_the_environment_forces_either_way(fresh: pytest.MonkeyPatch) -> None:
    fresh.setenv(devices.CPU_BF16_ENV, "1")
    assert devices.cpu_bf16() == (True, "LMFORGE_CPU_BF16=1")
    assert devices.inference_dtype("cpu") is torch.bfloat16
    assert "bf16" in devices.describe_precision("cpu")
    with devices.exact_inference():  # references that compression is measured against stay fp32
        assert devices.inference_dtype("cpu") is None and "exact" in devices.describe_precision("cpu")
        with devices.exact_inference():
            pass
        assert devices.inference_dtype("cpu") is None
    assert devices.inference_dtype("cpu") is torch.bfloat16


def test_bf16_inference_agrees_with_fp32(fresh: pytest.MonkeyPatch, tiny_bert: Path, toy_csv: Path, tmp_path: Path) -> None:
    import lmforge
    from forge_testing import tiny_config

    fresh.setenv(devices.CPU_BF16_ENV, "0")  # training in fp32, as the rest of the suite (accelerate's state is global)
    run = lmforge.finetune(tiny_config(tiny_bert, toy_csv, tmp_path / "run", train={"epochs": 4})).run_dir
    texts = ["the movie was good", "a very bad plot", "it is nice", "boring and sad"]
    fp32 = lmforge.load(run).predict(texts)
    devices.cpu_bf16.cache_clear()
    fresh.setenv(devices.CPU_BF16_ENV, "1")
    bf16 = lmforge.load(run).predict(texts)
    assert [r["label"] for r in bf16] == [r["label"] for r in fp32]
    for a, b in zip(bf16, fp32, strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=0.02)


def test_one_process_trains_in_fp32_then_bf16_then_fp32_again(tiny_bert: Path, toy_csv: Path, tmp_path: Path) -> None:
    from accelerate.state import AcceleratorState

    import lmforge
    from forge_testing import tiny_config

    # accelerate's state is process-wide and refuses a second precision; a notebook that trains twice must not care.
    for i, precision in enumerate(["fp32", "bf16", "fp32"]):
        cfg = tiny_config(tiny_bert, toy_csv, tmp_path / f"run{i}", train={"epochs": 1, "precision": precision})
        assert lmforge.finetune(cfg).status == "completed"
        assert AcceleratorState().mixed_precision == ("bf16" if precision == "bf16" else "no")
