"""The serving engine without HTTP: micro-batching, the bounded queue, model routing, adapters on one base, reload."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lmforge.compression import compress
from lmforge.serving.batching import Batcher, Job, QueueFull, Stopped
from lmforge.serving.engine import Engine, RequestTimeout, UnknownModel, Unsupported
from serving_support import build_adapter_run, build_classifier_run


@pytest.fixture(scope="module")
def classifier_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_classifier_run(tiny_bert, tmp_path_factory.mktemp("serve") / "clf")


TEXTS = ["the movie was good", "a very bad plot", "happy story", "boring actor", "nice film", "sad", "great", "poor plot"]


class Sizes:
    """An engine observer that keeps the batch sizes."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def batch(self, model: str, operation: str, items: int, seconds: float) -> None:
        self.sizes.append(items)

    def queue_depth(self, depth: int, capacity: int) -> None:
        pass

    def model_loaded(self, model: str, seconds: float) -> None:
        pass


def _echo(key: Any, jobs: list[Job]) -> list[list[Any]]:
    if any(item == "boom" for job in jobs for item in job.items):
        raise ValueError("boom")
    return [[f"{item}!" for item in job.items] for job in jobs]


def test_batcher_gives_each_caller_its_own_results_and_batches_them() -> None:
    sizes: list[int] = []
    batcher = Batcher(_echo, max_batch_size=16, max_wait_ms=20, on_batch=lambda key, n, s: sizes.append(n))
    batcher.start()
    with ThreadPoolExecutor(24) as pool:
        futures = [pool.submit(lambda i=i: batcher.submit(Job("k", [f"a{i}", f"b{i}"])).result(5)) for i in range(48)]
        results = [f.result() for f in futures]
    assert results == [[f"a{i}!", f"b{i}!"] for i in range(48)]
    assert max(sizes) > 2 and max(sizes) <= 16 and sum(sizes) == 96
    assert batcher.close()


def test_batcher_keeps_keys_apart_and_one_bad_request_fails_alone() -> None:
    seen: list[set[str]] = []

    def run(key: Any, jobs: list[Job]) -> list[list[Any]]:
        seen.append({job.key for job in jobs})
        return _echo(key, jobs)

    batcher = Batcher(run, max_batch_size=8, max_wait_ms=50)
    futures = [batcher.submit(Job(k, [x])) for k, x in [("a", "1"), ("b", "2"), ("a", "boom"), ("a", "3")]]
    batcher.start()
    assert futures[0].result(5) == ["1!"] and futures[1].result(5) == ["2!"] and futures[3].result(5) == ["3!"]
    with pytest.raises(ValueError, match="boom"):
        futures[2].result(5)
    assert all(len(keys) == 1 for keys in seen)
    batcher.close()


def test_a_full_queue_refuses_at_once_with_a_retry_time() -> None:
    batcher = Batcher(_echo, queue_size=2)  # not started: nothing drains the queue
    batcher.submit(Job("k", ["1"]))
    batcher.submit(Job("k", ["2"]))
    with pytest.raises(QueueFull) as info:
        batcher.submit(Job("k", ["3"]))
    assert info.value.retry_after >= 1.0 and batcher.depth == 2


def test_cancelled_requests_never_run_and_close_without_drain_fails_the_rest() -> None:
    ran: list[str] = []
    batcher = Batcher(lambda key, jobs: [ran.extend(j.items) or j.items for j in jobs], max_wait_ms=0)
    gone, kept = batcher.submit(Job("k", ["gone"])), batcher.submit(Job("k", ["kept"]))
    assert gone.cancel()
    batcher.start()
    assert kept.result(5) == ["kept"] and ran == ["kept"]
    batcher.close()
    with pytest.raises(Stopped):
        batcher.submit(Job("k", ["late"]))
    waiting = Batcher(_echo)
    future = waiting.submit(Job("k", ["x"]))
    waiting.close(drain=False)
    with pytest.raises(Stopped):
        future.result(1)


@pytest.fixture(scope="module")
def engine(classifier_run: Path, tiny_bert: Path, tiny_llama: Path) -> Engine:
    sizes = Sizes()
    with Engine({"clf": classifier_run, "enc": tiny_bert, "gen": tiny_llama}, max_batch_size=8, max_wait_ms=30,
                observer=sizes) as engine:
        engine.sizes = sizes  # type: ignore[attr-defined]
        yield engine


def test_engine_classifies_embeds_and_generates_by_model_name(engine: Engine) -> None:
    rows = engine.classify(TEXTS[:2], top_k=2)
    assert [set(r) >= {"label", "score", "probabilities", "top_k"} for r in rows] == [True, True]
    assert len(rows[0]["top_k"]) == 2 and "text" not in rows[0]
    vectors = engine.embed(["good movie", "bad plot"], model="enc")
    assert vectors.shape == (2, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    text = engine.generate("good", model="gen", max_new_tokens=4)
    assert isinstance(text, str)
    assert "".join(engine.generate("good", model="gen", stream=True, max_new_tokens=4)) == text
    assert {m["name"]: m["operations"] for m in engine.models()} == {"clf": ["classify"], "enc": ["embed"], "gen": ["generate"]}


def test_engine_batches_concurrent_callers_and_each_gets_its_own_result(engine: Engine) -> None:
    alone = {t: engine.classify([t])[0]["probabilities"] for t in TEXTS}
    engine.sizes.sizes.clear()  # type: ignore[attr-defined]
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda i: (TEXTS[i % 8], engine.classify([TEXTS[i % 8]])[0]["probabilities"]), range(64)))
    for text, probs in got:
        assert probs == pytest.approx(alone[text], abs=1e-4)
    assert max(engine.sizes.sizes) > 1  # type: ignore[attr-defined]


def test_engine_refuses_unknown_models_and_operations_at_once(engine: Engine) -> None:
    with pytest.raises(UnknownModel, match="no model named 'nope'; served: clf, enc, gen"):
        engine.classify(["x"], model="nope")
    with pytest.raises(Unsupported, match="cannot embed; it can classify"):
        engine.embed(["x"], model="clf")


def test_engine_times_out_a_request_it_cannot_answer_in_time(classifier_run: Path) -> None:
    engine = Engine({"clf": classifier_run}, start=False)
    engine.batcher.start()  # threads without warm-up, and a model that takes its time
    slow = engine.slots["clf"].artifact
    engine.slots["clf"].artifact = type("Slow", (), {"predict": lambda self, *a, **k: time.sleep(0.5) or slow.predict(*a, **k)})()
    with pytest.raises(RequestTimeout, match="no answer within 0.05 s"):
        engine.classify(["x"], timeout=0.05)
    engine.close()


def test_redacted_inputs_reach_the_model_masked(classifier_run: Path) -> None:
    engine = Engine({"clf": classifier_run}, redact_inputs=True, start=False)
    seen: list[str] = []
    real = engine.slots["clf"].artifact
    engine.slots["clf"].artifact = type("Spy", (), {"predict": lambda self, texts, *a, **k: seen.extend(texts) or real.predict(texts, *a, **k)})()
    engine.start(warmup=False)
    engine.classify(["mail john.doe@example.com or call 13812345678"])
    assert seen == ["mail [EMAIL] or call [PHONE]"]
    engine.close()


def test_adapters_over_one_base_share_its_weights(tiny_bert: Path, tmp_path: Path) -> None:
    runs = {name: build_adapter_run(tiny_bert, tmp_path / name, seed) for seed, name in enumerate(["a", "b"])}
    with Engine(runs) as engine:
        a, b = engine.slots["a"].artifact.model, engine.slots["b"].artifact.model
        shared = [(pa, pb) for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()) if "word_embeddings" in na]
        assert shared and all(pa.data_ptr() == pb.data_ptr() for pa, pb in shared)
        assert engine.slots["a"].shared_base == str(tiny_bert)
        assert engine.classify(["good"], model="a")[0]["probabilities"] != engine.classify(["good"], model="b")[0]["probabilities"]


def test_reload_under_load_loses_no_request_and_serves_the_new_version(tiny_bert: Path, tmp_path: Path) -> None:
    run = build_classifier_run(tiny_bert, tmp_path / "clf", seed=0)
    with Engine({"clf": run}, max_wait_ms=2) as engine:
        before = engine.classify(["good"])[0]["probabilities"]
        old_version = engine.slots["clf"].version
        stop, errors, answered = threading.Event(), [], [0]

        def load() -> None:
            while not stop.is_set():
                try:
                    engine.classify(["good movie", "bad plot"], timeout=10)
                    answered[0] += 1
                except Exception as exc:  # noqa: BLE001
                    errors.append(exc)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        time.sleep(0.01)  # a new mtime for the rewritten lmforge.json
        build_classifier_run(tiny_bert, tmp_path / "clf", seed=1)
        engine.reload()
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join()
        assert errors == [] and answered[0] > 0
        assert engine.slots["clf"].version != old_version
        assert engine.classify(["good"])[0]["probabilities"] != before


def test_a_compressed_onnx_run_is_served_by_onnx_runtime_with_the_same_labels(classifier_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'lmforge[export]')")
    onnx_run = compress(classifier_run, tmp_path / "onnx", {"method": "onnx", "onnx": {"precision": "fp32"}})
    with Engine({"torch": classifier_run, "onnx": onnx_run}, max_batch_size=8, max_wait_ms=5) as engine:
        assert {m["name"]: m["kind"] for m in engine.models()} == {"torch": "classifier", "onnx": "compressed"}
        with ThreadPoolExecutor(4) as pool:
            served = list(pool.map(lambda text: engine.classify([text], model="onnx")[0], TEXTS))
        reference = engine.classify(TEXTS, model="torch")
    assert [r["label"] for r in served] == [r["label"] for r in reference]
    assert np.allclose([r["score"] for r in served], [r["score"] for r in reference], atol=1e-4)
