"""``lmforge serve``: a supervisor that loads the models once and forks the workers that serve them.

The supervisor loads every model, binds the port, then forks ``server.workers`` processes: each
inherits the loaded weights as copy-on-write pages that inference never writes, so the weights
are in memory once however many workers there are. Each worker runs uvicorn on the shared socket.

Signals to the supervisor:

* ``SIGTERM``/``SIGINT``: every worker stops accepting, finishes its in-flight requests (up to
  ``server.drain_timeout_s``), and exits; then the supervisor exits.
* ``SIGHUP``: hot reload. The supervisor loads the runs again (re-reading ``serve.yaml``), forks new
  workers, waits until they are ready, then drains the old ones: no request is dropped.

A worker that dies is replaced.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import uvicorn

from lmforge.errors import LmforgeError
from lmforge.serving.config import ServeConfig, load_serve_config
from lmforge.serving.engine import Engine
from lmforge.serving.http import create_app
from lmforge.serving.logs import setup_service_logging
from lmforge.serving.metrics import Metrics, process_exited, start_metrics_server, use_multiprocess
from lmforge.serving.ray_serve import run_ray

_LOG = logging.getLogger("lmforge.serving")
_READY_TIMEOUT_S = 600.0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` that every worker accepts from."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LmforgeError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another port with --port") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def torch_threads(cfg: ServeConfig) -> int:
    """Torch threads per worker: ``server.threads``, or the cores divided among the workers."""
    return cfg.server.threads or max(1, (os.cpu_count() or 1) // cfg.server.workers)


class DrainingServer(uvicorn.Server):
    """uvicorn that drains without racing its clients: no keep-alive connection is closed under a request on its way.

    On shutdown it stops accepting, then answers every further request with ``Connection: close``
    and waits (up to the keep-alive timeout) for clients to close their connections after their
    last answer; only then does uvicorn's own shutdown close what is left and wait for running requests.
    """

    def __init__(self, config: uvicorn.Config, service: Any) -> None:
        super().__init__(config)
        self.service = service

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop accepting, let the clients leave, then shut down as uvicorn does."""
        for server in self.servers:
            server.close()
        self.service.draining = True
        deadline = time.monotonic() + min(self.config.timeout_keep_alive + 1, self.config.timeout_graceful_shutdown or 30)
        while self.server_state.connections and time.monotonic() < deadline and not self.force_exit:
            await asyncio.sleep(0.05)
        await super().shutdown(sockets)


class Supervisor:
    """Loads the models, forks the workers, and handles drain, reload and crashed workers.

    Args:
        source: The ``serve.yaml`` path, a run directory, or a config dict.
        overrides: ``key=value`` items laid over it.
        started: ``time.perf_counter()`` when the command started (for the time-to-ready log line).
    """

    def __init__(self, source: str | Path | dict[str, Any], overrides: list[str] | None = None, started: float | None = None) -> None:
        if not hasattr(os, "fork"):
            raise LmforgeError("lmforge serve forks its workers, which this platform cannot; use --engine ray or WSL")
        self.source, self.overrides = source, list(overrides or [])
        self.cfg = load_serve_config(source, self.overrides)
        self.started = started if started is not None else time.perf_counter()
        self.workers: dict[int, int] = {}
        self.generation = 0
        self.flags: dict[str, bool] = {"stop": False, "reload": False}
        self.restarts: list[float] = []

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; returns the exit status."""
        cfg = self.cfg
        setup_service_logging(cfg.logging.level)
        # Tokenizers' Rust threads do not survive a fork; workers tokenize on their own threads instead.
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        metrics_dir = tempfile.mkdtemp(prefix="lmforge-metrics-")
        use_multiprocess(metrics_dir)
        self.metrics = Metrics()
        self.sock = bind(cfg.server.host, cfg.server.port)
        self.port = self.sock.getsockname()[1]
        self.engine = Engine.from_config(cfg, observer=self.metrics, start=False)
        self.metrics_pid = self._fork(lambda: self._metrics_process(cfg), track=False) if cfg.server.metrics_port else None
        self._install_signals()
        self._spawn(cfg.server.workers)
        seconds = time.perf_counter() - self.started
        _LOG.info("ready in %.1f s with %d worker(s)", seconds, cfg.server.workers)
        # On stdout, not in the log: the log masks IP addresses, and this line is for the person who started the service.
        print(f"serving http://{cfg.server.host}:{self.port} (ready in {seconds:.1f} s, {cfg.server.workers} worker(s))", flush=True)
        while not self.flags["stop"]:
            if self.flags["reload"]:
                self.flags["reload"] = False
                self._reload()
            self._reap()
            time.sleep(0.1)
        return self._shutdown()

    def _install_signals(self) -> None:
        def stop(signum: int, frame: Any) -> None:
            self.flags["stop"] = True

        def reload(signum: int, frame: Any) -> None:
            self.flags["reload"] = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def _fork(self, body: Callable[[], None], track: bool = True) -> int:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                body()
            except BaseException:  # noqa: BLE001  (a worker must never return into the supervisor's loop)
                logging.getLogger("lmforge.serving").exception("worker %d failed", os.getpid())
                code = 1
            finally:
                os._exit(code)
        if track:
            self.workers[pid] = self.generation
        return pid

    def _spawn(self, count: int) -> list[int]:
        """Fork ``count`` workers of the current generation and wait until each is ready."""
        read_fd, write_fd = os.pipe()
        pids = [self._fork(lambda: self._worker(write_fd)) for _ in range(count)]
        os.close(write_fd)
        ready, deadline = 0, time.monotonic() + _READY_TIMEOUT_S
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            while ready < count and time.monotonic() < deadline:
                if select.select([pipe], [], [], 0.5)[0]:
                    got = pipe.read(64)
                    if not got:
                        break  # every worker of this batch exited before it was ready
                    ready += len(got)
        if ready < count:
            raise LmforgeError(f"only {ready} of {count} workers became ready; the log above says why")
        return pids

    def _worker(self, ready_fd: int) -> None:
        torch.set_num_threads(torch_threads(self.cfg))
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        supervisor = os.getppid()
        app = create_app(self.engine, self.cfg, metrics=self.metrics,
                         reload=lambda: os.kill(supervisor, signal.SIGHUP) or "every worker is being replaced",
                         on_ready=lambda: os.write(ready_fd, b"r"))
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", server_header=False,
                                timeout_graceful_shutdown=self.cfg.server.drain_timeout_s, timeout_keep_alive=5)
        DrainingServer(config, app.state.lmforge).run(sockets=[self.sock])

    def _metrics_process(self, cfg: ServeConfig) -> None:
        start_metrics_server(int(cfg.server.metrics_port or 0), cfg.server.host)
        while True:
            signal.pause()  # SIGTERM's default action ends the process

    def _reload(self) -> None:
        """Load the runs again, start new workers on them, then drain the old workers."""
        _LOG.info("reloading: loading the runs again")
        try:
            cfg = load_serve_config(self.source, self.overrides) if not isinstance(self.source, dict) else self.cfg
            engine = Engine.from_config(cfg, observer=self.metrics, start=False)
        except LmforgeError as exc:
            _LOG.error("reload failed, the current version stays: %s", exc)
            return
        old = [pid for pid, gen in self.workers.items() if gen == self.generation]
        self.cfg, self.engine, self.generation = cfg, engine, self.generation + 1
        try:
            self._spawn(cfg.server.workers)
        except LmforgeError as exc:
            _LOG.error("reload failed, the current version stays: %s", exc)
            return
        for pid in old:
            self._signal(pid, signal.SIGTERM)
        _LOG.info("reloaded: %d new worker(s) serve, %d old one(s) drain", cfg.server.workers, len(old))

    def _signal(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            process_exited(pid)
            generation = self.workers.pop(pid, None)
            if generation == self.generation and not self.flags["stop"]:
                self._replace(pid, status)

    def _replace(self, pid: int, status: int) -> None:
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < 60] + [now]
        if len(self.restarts) > 5:
            _LOG.error("workers keep dying (%d in a minute); stopping", len(self.restarts))
            self.flags["stop"] = True
            return
        _LOG.warning("worker %d exited (status %d); starting another", pid, status)
        try:
            self._spawn(1)
        except LmforgeError as exc:
            _LOG.error("could not replace worker %d: %s", pid, exc)

    def _shutdown(self) -> int:
        _LOG.info("draining %d worker(s)", len(self.workers))
        children = list(self.workers) + ([self.metrics_pid] if self.metrics_pid else [])
        for pid in children:
            self._signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.cfg.server.drain_timeout_s + 10
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.05)
            else:
                process_exited(pid)
        else:
            for pid in children:
                self._signal(pid, signal.SIGKILL)
        self.sock.close()
        _LOG.info("stopped")
        return 0


def serve(source: str | Path | dict[str, Any], overrides: list[str] | None = None, started: float | None = None) -> int:
    """Serve ``source`` (a ``serve.yaml``, a run directory or zoo name, or a config dict) until stopped.

    Args:
        source: What to serve.
        overrides: ``key=value`` items (``server.workers=4``).
        started: ``time.perf_counter()`` when the command started.

    Returns:
        The exit status.
    """
    cfg = load_serve_config(source, overrides)
    if cfg.server.engine == "ray":
        return run_ray(cfg)
    return Supervisor(source, overrides, started).run()
