"""The serving engine: loaded models, a bounded queue and micro-batching, usable from Python without HTTP.

.. code-block:: python

    from lmforge.serving import Engine

    with Engine({"sentiment": "runs/sst2"}, max_batch_size=32, max_wait_ms=5) as engine:
        engine.classify(["great film"])                       # [{"label": "positive", "score": ..., ...}]
        for piece in engine.generate("Hello", model="chat", stream=True):
            print(piece, end="")

    with Engine({"entities": "runs/conll", "answers": "runs/squad"}) as engine:
        engine.ner(["Nokia opened a plant in Oulu."])        # [{"text": ..., "entities": [{"type": "ORG", "start": 0, ...}]}]
        engine.qa(["Where?"], ["Nokia opened a plant in Oulu."])  # [{"answer": "Oulu", "start": 24, "end": 28, "score": ...}]

Calls from many threads at once are batched together: each caller gets its own results. The HTTP
app (:mod:`lmforge.serving.http`) and the Ray Serve deployment (:mod:`lmforge.serving.ray`) are thin
faces over one engine.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Hashable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lmforge import config as config_mod
from lmforge.errors import LmforgeError
from lmforge.generation import GenerateConfig
from lmforge.serving.batching import Batcher, Job, QueueFull, Stopped
from lmforge.serving.config import ServeConfig
from lmforge.serving.guard import Guard, load_guard
from lmforge.serving.models import ModelSlot, load_models
from lmforge.serving.privacy import mask_pii

_LOG = logging.getLogger("lmforge.serving")
_END = object()


class UnknownModel(LmforgeError):
    """A request names a model the engine does not serve."""


class Unsupported(LmforgeError):
    """A request asks a model for something it cannot do (embed with a classifier...)."""


class RequestTimeout(LmforgeError):
    """A request was not answered within its timeout."""


class Observer(Protocol):
    """What the engine reports as it works (the metrics module implements it)."""

    def batch(self, model: str, operation: str, items: int, seconds: float) -> None: ...

    def queue_depth(self, depth: int, capacity: int) -> None: ...

    def model_loaded(self, model: str, seconds: float) -> None: ...


class _Quiet:
    def batch(self, model: str, operation: str, items: int, seconds: float) -> None:
        pass

    def queue_depth(self, depth: int, capacity: int) -> None:
        pass

    def model_loaded(self, model: str, seconds: float) -> None:
        pass


class Engine:
    """Models by name behind a bounded, micro-batching request queue.

    Args:
        models: Model name -> run directory, model folder or zoo name.
        default_model: Model used when a call names none; the first one when unset.
        max_batch_size: Most texts in one forward pass.
        max_wait_ms: How long a request waits for others to join its batch.
        queue_size: Most requests waiting; one more raises :class:`~lmforge.serving.batching.QueueFull`.
        threads: Threads running batches.
        redact_inputs: Mask PII in texts and prompts before the model sees them.
        redact_outputs: Mask PII in generated text.
        pii_kinds: PII kinds to mask (all when None).
        guard: Input and output filters of generation: a refused prompt is answered with the refusal and never reaches the model.
        device: ``cpu``, ``cuda``...; the GPU when there is one.
        observer: Receives batch sizes, queue depth and load times (metrics).
        start: Start the worker threads now; a server that forks workers starts them in each worker instead.
    """

    def __init__(self, models: Mapping[str, str | Path], default_model: str | None = None, *, max_batch_size: int = 32,
                 max_wait_ms: float = 5.0, queue_size: int = 256, threads: int = 1, redact_inputs: bool = False,
                 redact_outputs: bool = False, pii_kinds: list[str] | None = None, guard: Guard | None = None, device: str | None = None,
                 observer: Observer | None = None, start: bool = True) -> None:
        if not models:
            raise LmforgeError("an engine needs at least one model, e.g. Engine({'sentiment': 'runs/sst2'})")
        self.model_runs = {name: str(run) for name, run in models.items()}
        self.default_model = default_model or next(iter(models))
        self.redact_inputs, self.redact_outputs, self.pii_kinds, self.guard = redact_inputs, redact_outputs, pii_kinds, guard
        self.device, self.observer = device, observer or _Quiet()
        self.ready = False
        self._reload_lock = threading.Lock()
        self.slots: dict[str, ModelSlot] = self._load(self.model_runs)
        self.batcher = Batcher(self._run_batch, max_batch_size, max_wait_ms, queue_size, threads, self._on_batch, self._on_depth)
        if start:
            self.start()

    @classmethod
    def from_config(cls, cfg: ServeConfig, observer: Observer | None = None, start: bool = True) -> Engine:
        """An engine with the models, batching and privacy settings of a service config."""
        b, p = cfg.batching, cfg.privacy
        return cls(cfg.models, cfg.default, max_batch_size=b.max_batch_size, max_wait_ms=b.max_wait_ms, queue_size=b.queue_size,
                   threads=b.threads, redact_inputs=p.redact_inputs, redact_outputs=p.redact_outputs, pii_kinds=p.kinds,
                   guard=load_guard(cfg.guard), observer=observer, start=start)

    def _load(self, runs: Mapping[str, str]) -> dict[str, ModelSlot]:
        slots = load_models(runs, self.device)
        for slot in slots.values():
            self.observer.model_loaded(slot.name, slot.load_seconds)
        return slots

    def start(self, warmup: bool = True) -> None:
        """Start the worker threads and warm every model up (one tiny request each); then :attr:`ready` is True."""
        if self.ready:
            return
        self.batcher.start()
        if warmup:
            self.warmup(self.slots)
        self.ready = True

    def warmup(self, slots: Mapping[str, ModelSlot]) -> None:
        """Run one tiny request per model and operation, so the first caller does not pay for lazy initialization."""
        for slot in slots.values():
            if "classify" in slot.operations:
                slot.artifact.predict(["warm up"], top_k=1)
            if "embed" in slot.operations:
                slot.artifact.embed(["warm up"])
            if "generate" in slot.operations:
                slot.artifact.generate("warm up", max_new_tokens=1)
            if "ner" in slot.operations:
                slot.artifact.predict(["warm up"])
            if "qa" in slot.operations:
                slot.artifact.predict(["warm up ?"], ["warm up"])

    def close(self, drain: bool = True, timeout: float | None = None) -> bool:
        """Stop taking requests and, with ``drain``, answer the queued ones first; returns whether that finished in time."""
        self.ready = False
        return self.batcher.close(drain, timeout)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def models(self) -> list[dict[str, Any]]:
        """Every served model's description (name, kind, operations, labels, base, version)."""
        return [slot.describe() for slot in self.slots.values()]

    def slot(self, model: str | None, operation: str) -> ModelSlot:
        """The slot of ``model`` (the default when None), checked to support ``operation``.

        Raises:
            UnknownModel: No model of that name.
            Unsupported: The model cannot do ``operation``.
        """
        name = model or self.default_model
        slot = self.slots.get(name)
        if slot is None:
            raise UnknownModel(f"no model named {name!r}; served: {', '.join(self.slots)}")
        if operation not in slot.operations:
            can = ", ".join(slot.operations)
            raise Unsupported(f"model {name!r} ({slot.artifact.kind}) cannot {operation}; it can {can}")
        return slot

    def reload(self, models: Mapping[str, str | Path] | None = None) -> list[str]:
        """Load the models again (new versions of their runs, or a new ``models`` mapping) and swap them in.

        Requests already in a batch finish on the old version; every later batch uses the new one, so
        no request is dropped. Loading happens before the swap: on an error the old models stay.

        Returns:
            The names now served.
        """
        with self._reload_lock:
            runs = {name: str(run) for name, run in (models or self.model_runs).items()}
            slots = self._load(runs)
            self.warmup(slots)
            self.slots, self.model_runs = slots, runs
            if self.default_model not in slots:
                self.default_model = next(iter(slots))
        _LOG.info("reloaded %s", ", ".join(f"{s.name}@{s.version}" for s in slots.values()))
        return list(slots)

    def _mask(self, texts: list[str]) -> list[str]:
        return [mask_pii(t, self.pii_kinds) for t in texts] if self.redact_inputs else texts

    def submit(self, operation: str, inputs: list[str], model: str | None = None, pairs: list[str] | None = None,
               options: dict[str, Any] | None = None, stream: Any = None) -> Future:
        """Queue one request and return a future of its results (one per input); for async callers.

        Args:
            operation: ``classify``, ``embed``, ``generate``, ``ner`` or ``qa``.
            inputs: Texts (classify, embed, ner), prompts (generate) or questions (qa).
            model: Model name; the default model when None.
            pairs: Second texts of sentence-pair classifiers; the contexts of qa.
            options: ``top_k`` for classify; :class:`~lmforge.generation.GenerateConfig` keys for generate.
            stream: For one generate prompt: a function called with each piece of text as it is decoded.

        Raises:
            UnknownModel, Unsupported: Raised at once, before queueing.
            QueueFull: The queue is full (retry after ``retry_after`` seconds).
        """
        slot = self.slot(model, operation)
        options = dict(options or {})
        if operation == "generate":
            options = config_mod.build(GenerateConfig, options, "generate options").model_dump(exclude_defaults=True)
        if operation == "qa" and pairs is None:
            raise LmforgeError("question answering needs a context for every question (pass the contexts as pairs)")
        if pairs is not None and len(pairs) != len(inputs):
            raise LmforgeError(f"pairs has {len(pairs)} texts for {len(inputs)} inputs; give one second text per text")
        alone = stream is not None or options.get("seed") is not None
        key = (slot.name, operation, pairs is not None, json.dumps(options, sort_keys=True))
        job = Job(key, self._mask(list(inputs)), {"pairs": self._mask(pairs) if pairs else None, "options": options,
                                                  "stream": stream}, alone=alone)
        return self.batcher.submit(job)

    def _on_depth(self, depth: int) -> None:
        self.observer.queue_depth(depth, self.batcher.queue_size)

    def _on_batch(self, key: Hashable, items: int, seconds: float) -> None:
        self.observer.batch(key[0], key[1], items, seconds)  # type: ignore[index]

    def _run_batch(self, key: Hashable, jobs: list[Job]) -> list[list[Any]]:
        name, operation = key[0], key[1]  # type: ignore[index]
        # The slot is looked up when the batch runs, so batches after a reload use the new version.
        artifact = self.slot(name, operation).artifact
        inputs = [item for job in jobs for item in job.items]
        options = jobs[0].payload["options"]
        if operation == "classify":
            pairs = [p for job in jobs for p in job.payload["pairs"]] if jobs[0].payload["pairs"] else None
            rows = artifact.predict(inputs, pairs, top_k=options.get("top_k", 1), batch_size=self.batcher.max_batch_size)
            outputs: list[Any] = [{k: v for k, v in row.items() if k != "text"} for row in rows]
        elif operation == "embed":
            outputs = list(artifact.embed(inputs, batch_size=self.batcher.max_batch_size))
        elif operation in ("ner", "qa"):
            pairs = [p for job in jobs for p in job.payload["pairs"]] if operation == "qa" else None
            outputs = [_span_result(operation, row) for row in artifact.predict(inputs, pairs, batch_size=self.batcher.max_batch_size)]
        else:
            outputs = self._generate(artifact, inputs, options, jobs[0].payload["stream"])
        split, start = [], 0
        for job in jobs:
            split.append(outputs[start:start + len(job.items)])
            start += len(job.items)
        return split

    def _generate(self, artifact: Any, prompts: list[str], options: dict[str, Any], stream: Any) -> list[str]:
        verdicts = [self.guard.check_input(p) for p in prompts] if self.guard else []
        allowed = [v.text for v in verdicts if v.allowed] if self.guard else prompts
        whole = self.redact_outputs or (self.guard is not None and self.guard.filters_output)
        opts = {**options, "batch_size": max(1, min(len(allowed), self.batcher.max_batch_size))}
        if not allowed:
            texts: list[str] = []
        elif stream is not None and not whole:
            texts = [artifact.generate(allowed[0], opts, stream=stream)]
        else:
            texts = artifact.generate(allowed, opts)
        if self.redact_outputs:
            texts = [mask_pii(t, self.pii_kinds) for t in texts]
        if self.guard is not None:
            # Refused prompts never reached the model: their answer is the refusal, in their place.
            made = iter(self.guard.check_output(t) for t in texts)
            texts = [next(made) if v.allowed else v.text for v in verdicts]
        if stream is not None and (whole or not allowed):
            # Filtering needs the whole text: a phone number or a blocked term may span pieces, so a filtered stream is one piece.
            stream(texts[0])
        return texts

    def _wait(self, future: Future, timeout: float | None) -> list[Any]:
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise RequestTimeout(f"no answer within {timeout:g} s; retry, or raise server.request_timeout_s") from None

    def classify(self, texts: list[str] | str, pairs: list[str] | None = None, model: str | None = None, top_k: int = 1,
                 timeout: float | None = None) -> list[dict[str, Any]]:
        """Labels, probabilities and the ``top_k`` likeliest labels of each text (batched with other callers)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        return self._wait(self.submit("classify", texts, model, pairs, {"top_k": top_k}), timeout) if texts else []

    def ner(self, texts: list[str] | str, model: str | None = None, timeout: float | None = None) -> list[dict[str, Any]]:
        """The named entities of each text: ``{"text", "entities": [{"type", "text", "start", "end", "score"}]}``.

        Offsets index ``text``, which is the input (masked, when the engine masks PII in inputs).
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        return self._wait(self.submit("ner", texts, model), timeout) if texts else []

    def qa(self, questions: list[str] | str, contexts: list[str] | str, model: str | None = None,
           timeout: float | None = None) -> list[dict[str, Any]]:
        """The answer of each question picked from its context: ``{"answer", "start", "end", "score"}`` ("" and -1 for none)."""
        questions = [questions] if isinstance(questions, str) else list(questions)
        contexts = [contexts] if isinstance(contexts, str) else list(contexts)
        if len(contexts) != len(questions):
            raise LmforgeError(f"{len(questions)} questions and {len(contexts)} contexts; give one context per question")
        return self._wait(self.submit("qa", questions, model, contexts), timeout) if questions else []

    def embed(self, texts: list[str] | str, model: str | None = None, timeout: float | None = None) -> np.ndarray:
        """Unit vectors (N, D) of ``texts`` (batched with other callers)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        rows = self._wait(self.submit("embed", texts, model), timeout) if texts else []
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def generate(self, prompt: str, model: str | None = None, stream: bool = False, timeout: float | None = None,
                 **options: Any) -> str | Iterator[str]:
        """Continue ``prompt``; with ``stream``, an iterator of text pieces as they are decoded.

        ``options`` are :class:`~lmforge.generation.GenerateConfig` keys (max_new_tokens, temperature, stop...).
        """
        if not stream:
            return self._wait(self.submit("generate", [prompt], model, options=options), timeout)[0]
        pieces: queue.Queue = queue.Queue()
        future = self.submit("generate", [prompt], model, options=options, stream=pieces.put)
        future.add_done_callback(lambda _: pieces.put(_END))
        return self._stream(pieces, future, timeout)

    def _stream(self, pieces: queue.Queue, future: Future, timeout: float | None) -> Iterator[str]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                piece = pieces.get(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                future.cancel()
                raise RequestTimeout(f"generation did not finish within {timeout:g} s") from None
            if piece is _END:
                future.result()  # raises what the generation raised
                return
            yield piece


def _span_result(operation: str, row: dict[str, Any]) -> dict[str, Any]:
    """What the service answers for one span prediction: the entities with the text they index, or the answer and its offsets."""
    if operation == "ner":
        return {"text": row["text"], "entities": row["entities"]}
    return {"answer": row["answer"], "start": row["start"], "end": row["end"], "score": row["score"]}


__all__ = ["Engine", "Observer", "QueueFull", "RequestTimeout", "Stopped", "UnknownModel", "Unsupported"]
