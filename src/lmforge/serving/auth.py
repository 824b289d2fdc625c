"""API keys with model and endpoint scopes, per-key rate limits, and the decision each request gets.

Keys live in one JSON file (``lmforge.zoo.home() / "keys.json"`` by default) that the command line
writes and every server worker reads. Only a salted scrypt hash of each secret is stored. A secret
reads ``lmf_<id>_<32 random characters>``, so its record is found by id without trying every hash.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.zoo import home

try:
    import fcntl
except ImportError:  # Windows: concurrent writers of one store are not serialized there
    fcntl = None

_LOG = logging.getLogger(__name__)
_SECRET = re.compile(r"lmf_([0-9a-f]{8})_([A-Za-z0-9_-]{32})")
_SCRYPT_R, _SCRYPT_P, _DKLEN = 8, 1, 32
_FIELDS = ("id", "name", "models", "endpoints", "rate_per_minute", "burst", "created", "revoked", "salt", "hash", "scrypt")


@dataclass(frozen=True)
class KeyRecord:
    """What a key may do, without its secret or hash.

    Attributes:
        id: Eight hex characters, also the second part of the secret.
        name: A label for people ("support-bot").
        models: Model names the key may use, or ``("*",)`` for all.
        endpoints: Endpoints the key may call ("classify", "embed", "generate", "ingest", ...), or ``("*",)``.
        rate_per_minute: Sustained requests per minute; 0 means no limit.
        burst: Requests allowed at once before the rate applies.
        created: Creation time, ISO 8601 in UTC.
        revoked: Whether the key has been revoked.
    """

    id: str
    name: str
    models: tuple[str, ...]
    endpoints: tuple[str, ...]
    rate_per_minute: int
    burst: int
    created: str
    revoked: bool = False

    def allows_model(self, model: str) -> bool:
        """Whether the key is scoped for ``model``."""
        return "*" in self.models or model in self.models

    def allows_endpoint(self, endpoint: str) -> bool:
        """Whether the key is scoped for ``endpoint``."""
        return "*" in self.endpoints or endpoint in self.endpoints

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready values (lists for the scopes)."""
        return {**asdict(self), "models": list(self.models), "endpoints": list(self.endpoints)}


def default_store_path() -> Path:
    """The key store the command line and the server use unless told otherwise: ``home() / "keys.json"``."""
    return home() / "keys.json"


def _record(entry: dict[str, Any]) -> KeyRecord:
    return KeyRecord(
        id=entry["id"],
        name=entry["name"],
        models=tuple(entry["models"]),
        endpoints=tuple(entry["endpoints"]),
        rate_per_minute=int(entry["rate_per_minute"]),
        burst=int(entry["burst"]),
        created=entry["created"],
        revoked=bool(entry["revoked"]),
    )


def _scrypt(secret: str, salt: bytes, n: int, r: int = _SCRYPT_R, p: int = _SCRYPT_P) -> bytes:
    # scrypt needs 128 * r * n bytes; the default cap (32 MiB) would refuse costs above n = 2**14.
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=_DKLEN, maxmem=256 * r * n + 2**20)


def _fix(path: Path) -> str:
    return f"restore {path.name} from a backup, or move it away and create new keys with `lmforge keys create`"


def _parse(path: Path, text: str) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise LmforgeError(f"key store {path} is not valid JSON ({e.msg} at line {e.lineno}); {_fix(path)}.") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise LmforgeError(f"key store {path} has no 'keys' list; {_fix(path)}.")
    entries = {}
    for i, entry in enumerate(data["keys"]):
        missing = [f for f in _FIELDS if not isinstance(entry, dict) or f not in entry]
        if missing:
            raise LmforgeError(f"key #{i + 1} in key store {path} lacks {missing[0]!r}; {_fix(path)}.")
        entries[entry["id"]] = entry
    return entries


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as f:
            mode = os.fstat(f.fileno()).st_mode
            text = f.read()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise LmforgeError(f"cannot read key store {path} ({getattr(e, 'strerror', None) or e}); check that it is a file you may read.") from None
    if mode & 0o077:
        _LOG.warning("key store %s is readable by other users; run `chmod 600 %s`.", path, path)
    return _parse(path, text)


def _write(path: Path, entries: dict[str, dict[str, Any]]) -> None:
    """Write the store through a 0600 temporary file and os.replace, so readers see the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            json.dump({"version": 1, "keys": list(entries.values())}, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Serialize read-modify-write between processes (two `lmforge keys` commands at once) with a lock file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _signature(path: Path) -> tuple[int, ...] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    # os.replace gives the file a new inode, so a rewrite is seen even within one mtime tick.
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def _check_scope(what: str, names: Sequence[str]) -> tuple[str, ...]:
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise LmforgeError(f"key {what} must be a non-empty list of names, or ['*'] for all; got {list(names)!r}.")
    return tuple(n.strip() for n in names)


def _check_limits(rate_per_minute: int, burst: int | None) -> tuple[int, int]:
    if isinstance(rate_per_minute, bool) or not isinstance(rate_per_minute, int) or rate_per_minute < 0:
        raise LmforgeError(f"rate_per_minute must be a whole number >= 0 (0 means no limit); got {rate_per_minute!r}.")
    if burst is None:
        # Ten seconds' worth of requests at once, at least one.
        return rate_per_minute, max(1, math.ceil(rate_per_minute / 6))
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise LmforgeError(f"burst must be a whole number >= 1; got {burst!r}.")
    return rate_per_minute, burst


class KeyStore:
    """The API keys in one JSON file, shared by the command line and any number of server processes.

    Every call first checks the file's inode, mtime and size and reloads it when they changed, so a
    key revoked by another process is refused from that process's next request on. Successful
    verifications are cached by the SHA-256 of the secret (scrypt costs ~50 ms); a reload empties
    the cache, and the revoked flag is read from the current file before the cache is consulted.

    Args:
        path: The key store file; it need not exist yet.
        scrypt_n: scrypt's cost for new keys (a power of two); each key stores its own, so
            changing it never locks out existing keys.
    """

    def __init__(self, path: Path | str, scrypt_n: int = 2**14) -> None:
        if scrypt_n < 2 or scrypt_n & (scrypt_n - 1):
            raise LmforgeError(f"scrypt_n must be a power of two >= 2; got {scrypt_n}.")
        self.path = Path(path)
        self.scrypt_n = scrypt_n
        self._lock = threading.Lock()
        self._signature: tuple[int, ...] | None = None
        self._entries: dict[str, dict[str, Any]] = {}
        self._records: dict[str, KeyRecord] = {}
        self._verified: dict[bytes, str] = {}
        self._loaded = False
        self._refresh()

    def _refresh(self) -> None:
        signature = _signature(self.path)
        if self._loaded and signature == self._signature:
            return
        # Stat before reading: if the file changes in between, the next call sees a new signature and reads again.
        entries = _read(self.path)
        with self._lock:
            self._entries = entries
            self._records = {key_id: _record(e) for key_id, e in entries.items()}
            self._signature = signature
            self._verified.clear()
            self._loaded = True

    def _update(self, change: Callable[[dict[str, dict[str, Any]]], Any]) -> Any:
        with _exclusive(self.path):
            entries = _read(self.path)
            result = change(entries)
            _write(self.path, entries)
        self._refresh()
        return result

    def create(
        self,
        name: str,
        models: Sequence[str] = ("*",),
        endpoints: Sequence[str] = ("*",),
        rate_per_minute: int = 600,
        burst: int | None = None,
    ) -> tuple[KeyRecord, str]:
        """Create a key and return its record and its secret; the secret is shown this once and never stored.

        Args:
            name: A label for people.
            models: Model names the key may use, or ``("*",)``.
            endpoints: Endpoints the key may call, or ``("*",)``.
            rate_per_minute: Sustained requests per minute; 0 means no limit.
            burst: Requests allowed at once; default ten seconds' worth of the rate (at least 1).

        Returns:
            The new record and the secret ``lmf_<id>_<32 characters>``.

        Raises:
            LmforgeError: A name, scope or limit is invalid, or the store cannot be read.
        """
        if not isinstance(name, str) or not name.strip():
            raise LmforgeError("a key needs a non-empty name, such as 'support-bot'.")
        models, endpoints = _check_scope("models", models), _check_scope("endpoints", endpoints)
        rate_per_minute, burst = _check_limits(rate_per_minute, burst)

        def add(entries: dict[str, dict[str, Any]]) -> tuple[KeyRecord, str]:
            key_id = secrets.token_hex(4)
            while key_id in entries:
                key_id = secrets.token_hex(4)
            secret = f"lmf_{key_id}_{secrets.token_urlsafe(24)}"
            salt = secrets.token_bytes(16)
            created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            record = KeyRecord(key_id, name.strip(), models, endpoints, rate_per_minute, burst, created)
            entries[key_id] = {
                **record.to_dict(),
                "salt": salt.hex(),
                "hash": _scrypt(secret, salt, self.scrypt_n).hex(),
                "scrypt": {"n": self.scrypt_n, "r": _SCRYPT_R, "p": _SCRYPT_P},
            }
            return record, secret

        return self._update(add)

    def list(self) -> list[KeyRecord]:
        """All keys, revoked ones included, oldest first; records carry no salt or hash."""
        self._refresh()
        return sorted(self._records.values(), key=lambda r: (r.created, r.id))

    def get(self, key_id: str) -> KeyRecord | None:
        """The record of ``key_id``, or ``None`` when there is no such key."""
        self._refresh()
        return self._records.get(key_id)

    def revoke(self, key_id: str) -> KeyRecord:
        """Revoke a key for good (revoking twice is fine).

        Args:
            key_id: The key's id (``lmforge keys list`` shows them).

        Returns:
            The revoked record.

        Raises:
            LmforgeError: There is no key with that id.
        """

        def mark(entries: dict[str, dict[str, Any]]) -> KeyRecord:
            if key_id not in entries:
                raise LmforgeError(f"no key with id {key_id!r} in {self.path}; `lmforge keys list` shows the ids.")
            entries[key_id]["revoked"] = True
            return _record(entries[key_id])

        return self._update(mark)

    def verify(self, secret: str) -> KeyRecord | None:
        """Return the record of a valid, unrevoked secret, or ``None``.

        Args:
            secret: The secret as the client sent it.

        Returns:
            The key's record, or ``None`` for a malformed, unknown, wrong or revoked secret.
        """
        self._refresh()
        match = _SECRET.fullmatch(secret) if isinstance(secret, str) else None
        if match is None:
            return None
        key_id = match.group(1)
        digest = hashlib.sha256(secret.encode()).digest()
        with self._lock:
            entry = self._entries.get(key_id)
            cached = self._verified.get(digest) == key_id
        if entry is None or entry["revoked"]:
            return None
        if not cached:
            params = entry["scrypt"]
            computed = _scrypt(secret, bytes.fromhex(entry["salt"]), params["n"], params["r"], params["p"])
            if not hmac.compare_digest(computed, bytes.fromhex(entry["hash"])):
                return None
            with self._lock:
                # A reload during the hash replaced the entries; caching against the old ones would outlive it.
                if self._entries.get(key_id) is entry:
                    self._verified[digest] = key_id
        return self._records.get(key_id)


class RateLimiter:
    """A thread-safe token bucket per key id: ``burst`` requests at once, refilled at ``rate_per_minute``.

    Each server process keeps its own buckets, so N workers allow up to N times a key's rate.

    Args:
        clock: Seconds from any fixed origin; tests pass a fake one.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def acquire(self, key_id: str, rate_per_minute: float, burst: int) -> tuple[bool, float]:
        """Take one request from ``key_id``'s bucket.

        Args:
            key_id: Whose bucket.
            rate_per_minute: Refill rate; 0 or less means no limit.
            burst: The bucket's size (at least 1).

        Returns:
            ``(allowed, retry_after_seconds)``; ``retry_after`` is 0 when allowed, else the time until one request fits.
        """
        if rate_per_minute <= 0:
            return True, 0.0
        burst = max(1, burst)
        per_second = rate_per_minute / 60.0
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key_id, (float(burst), now))
            tokens = min(float(burst), tokens + max(0.0, now - last) * per_second)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return True, 0.0
            self._buckets[key_id] = (tokens, now)
            return False, (1.0 - tokens) / per_second


@dataclass(frozen=True)
class Decision:
    """What to answer a request: 200 to go on, or 401, 403 or 429 with a short message.

    Attributes:
        status: HTTP status: 200, 401, 403 or 429.
        message: One sentence for the client; never contains the secret.
        key: The key's record once it is known (set for 200, 403 and 429).
        retry_after: Seconds until the key may try again (429 only).
    """

    status: int
    message: str
    key: KeyRecord | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the request may go on."""
        return self.status == 200


def _bearer(header: str | None) -> str | Decision:
    if header is None or not header.strip():
        return Decision(401, "missing API key; send the header 'Authorization: Bearer lmf_...'.")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return Decision(401, "malformed Authorization header; send 'Authorization: Bearer lmf_...'.")
    if _SECRET.fullmatch(token) is None:
        return Decision(401, "malformed API key; lmforge keys look like lmf_<id>_<32 characters>.")
    return token


class Authorizer:
    """Decide each request from its Authorization header: who it is, whether it may, and whether it must wait.

    Args:
        store: The key store.
        limiter: The rate limiter; requests refused for scope do not use up the key's rate.
    """

    def __init__(self, store: KeyStore, limiter: RateLimiter | None = None) -> None:
        self.store = store
        self.limiter = limiter or RateLimiter()

    def check(self, authorization_header: str | None, model: str | None, endpoint: str) -> Decision:
        """Authenticate, authorize and rate-limit one request.

        Args:
            authorization_header: The raw ``Authorization`` header, or ``None`` when absent.
            model: The model the request targets, or ``None`` for endpoints that use no model.
            endpoint: The endpoint's name ("classify", "embed", "generate", ...).

        Returns:
            The decision: 200, 401 (missing, malformed, unknown or revoked key), 403 (not scoped
            for this model or endpoint) or 429 (over its rate, with ``retry_after``).
        """
        token = _bearer(authorization_header)
        if isinstance(token, Decision):
            return token
        key = self.store.verify(token)
        if key is None:
            return Decision(401, "unknown or revoked API key.")
        if not key.allows_endpoint(endpoint):
            return Decision(403, f"key {key.id} may not call the {endpoint!r} endpoint.", key)
        if model is not None and not key.allows_model(model):
            return Decision(403, f"key {key.id} may not use model {model!r}.", key)
        allowed, retry_after = self.limiter.acquire(key.id, key.rate_per_minute, key.burst)
        if not allowed:
            message = f"key {key.id} is over its limit of {key.rate_per_minute} requests per minute; retry in {retry_after:.1f} s."
            return Decision(429, message, key, retry_after)
        return Decision(200, "ok", key)


def create_key(
    path: Path | None, name: str, models: Sequence[str] = ("*",), endpoints: Sequence[str] = ("*",), rate: int = 600
) -> str:
    """Create a key in the store at ``path`` (default: ``default_store_path()``) and return its secret.

    Args:
        path: The key store, or ``None`` for the default.
        name: A label for people.
        models: Model names the key may use, or ``("*",)``.
        endpoints: Endpoints the key may call, or ``("*",)``.
        rate: Requests per minute; 0 means no limit.

    Returns:
        The secret, which is not stored anywhere and cannot be shown again.
    """
    return KeyStore(path or default_store_path()).create(name, models, endpoints, rate)[1]


def list_keys(path: Path | None = None) -> list[dict[str, Any]]:
    """The keys in the store at ``path`` (default: ``default_store_path()``) as dicts, without salts or hashes."""
    return [record.to_dict() for record in KeyStore(path or default_store_path()).list()]


def revoke_key(path: Path | None, key_id: str) -> None:
    """Revoke key ``key_id`` in the store at ``path`` (default: ``default_store_path()``).

    Raises:
        LmforgeError: There is no key with that id, or the store cannot be read.
    """
    KeyStore(path or default_store_path()).revoke(key_id)
