"""Tests for API keys, scopes, rate limits and the decision a request gets."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from lmforge.errors import LmforgeError
from lmforge.serving import auth
from lmforge.serving.auth import Authorizer, KeyStore, RateLimiter, create_key, list_keys, revoke_key

FAST_N = 2**4


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.json", scrypt_n=FAST_N)


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = auth._scrypt

    def counting(*args: object, **kwargs: object) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(auth, "_scrypt", counting)
    return calls


def test_create_verify_and_revoke(store: KeyStore) -> None:
    record, secret = store.create("support-bot", models=["bert-sst2"], endpoints=["classify"], rate_per_minute=60)
    assert secret.startswith(f"lmf_{record.id}_") and len(secret) == 4 + 8 + 1 + 32
    assert (record.name, record.models, record.endpoints, record.rate_per_minute, record.burst) == (
        "support-bot", ("bert-sst2",), ("classify",), 60, 10)
    assert store.verify(secret) == record
    assert [r.id for r in store.list()] == [record.id]
    store.revoke(record.id)
    assert store.verify(secret) is None
    assert store.get(record.id).revoked


def test_wrong_and_malformed_secrets_are_refused(store: KeyStore) -> None:
    record, secret = store.create("a")
    other = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for bad in [other, f"lmf_{'0' * 8}_{secret[-32:]}", secret + "x", secret[:-1], "lmf_", "", "Bearer " + secret, secret.upper()]:
        assert store.verify(bad) is None, bad
    assert store.verify(None) is None  # type: ignore[arg-type]
    assert store.verify(secret) == record


def test_store_file_is_0600_and_holds_no_secret(store: KeyStore) -> None:
    _, secret = store.create("a")
    _, secret2 = store.create("b", models=["m1", "m2"])
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    text = store.path.read_text(encoding="utf-8")
    for s in (secret, secret2):
        assert s not in text and s[-32:] not in text
    data = json.loads(text)
    assert {k["name"] for k in data["keys"]} == {"a", "b"}
    assert all(len(bytes.fromhex(k["hash"])) == 32 and k["scrypt"] == {"n": FAST_N, "r": 8, "p": 1} for k in data["keys"])
    assert not list(store.path.parent.glob(".keys.json.*.tmp"))


def test_list_has_no_hashes(store: KeyStore) -> None:
    store.create("a")
    (row,) = list_keys(store.path)
    assert set(row) == {"id", "name", "models", "endpoints", "rate_per_minute", "burst", "created", "revoked"}
    assert row["models"] == ["*"] and row["revoked"] is False


def test_revoke_in_another_instance_is_seen_after_reload(store: KeyStore, scrypt_calls: list[int]) -> None:
    record, secret = store.create("a")
    assert store.verify(secret) == record
    calls = len(scrypt_calls)
    assert store.verify(secret) == record and len(scrypt_calls) == calls, "a verified secret is cached"
    KeyStore(store.path, scrypt_n=FAST_N).revoke(record.id)
    assert store.verify(secret) is None, "the cache must not keep a revoked key alive"


def test_cache_is_dropped_when_the_file_changes(store: KeyStore, scrypt_calls: list[int]) -> None:
    _, secret = store.create("a")
    store.verify(secret)
    KeyStore(store.path, scrypt_n=FAST_N).create("b")
    before = len(scrypt_calls)
    assert store.verify(secret) is not None
    assert len(scrypt_calls) == before + 1


def test_default_cost_keys_verify_once_then_from_cache(tmp_path: Path, scrypt_calls: list[int]) -> None:
    store = KeyStore(tmp_path / "keys.json")
    record, secret = store.create("real-cost")
    assert json.loads(store.path.read_text())["keys"][0]["scrypt"]["n"] == 2**14
    for _ in range(3):
        assert store.verify(secret) == record
    assert len(scrypt_calls) == 2  # one to create, one to verify


def test_keys_keep_their_own_cost_when_the_default_changes(store: KeyStore) -> None:
    _, secret = store.create("a")
    assert KeyStore(store.path, scrypt_n=2**5).verify(secret) is not None


def test_unknown_id_and_corrupt_store_are_one_line_errors(store: KeyStore, tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match=r"no key with id 'deadbeef' in .*keys\.json; `lmforge keys list` shows the ids"):
        store.revoke("deadbeef")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(LmforgeError, match=r"key store .*bad\.json is not valid JSON \(.* at line 1\); restore bad\.json"):
        list_keys(bad)
    bad.write_text('{"keys": [{"id": "x"}]}', encoding="utf-8")
    with pytest.raises(LmforgeError, match=r"key #1 in key store .*bad\.json lacks 'name'"):
        KeyStore(bad)
    with pytest.raises(LmforgeError, match="cannot read key store"):
        KeyStore(tmp_path)


def test_invalid_arguments_are_refused(store: KeyStore) -> None:
    with pytest.raises(LmforgeError, match="non-empty name"):
        store.create(" ")
    with pytest.raises(LmforgeError, match="key models must be a non-empty list"):
        store.create("a", models=[])
    with pytest.raises(LmforgeError, match="rate_per_minute must be a whole number >= 0"):
        store.create("a", rate_per_minute=-1)
    with pytest.raises(LmforgeError, match="burst must be a whole number >= 1"):
        store.create("a", burst=0)
    with pytest.raises(LmforgeError, match="scrypt_n must be a power of two"):
        KeyStore(store.path, scrypt_n=1000)
    assert store.create("a", models="bert")[0].models == ("bert",)


def test_command_line_functions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LMFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(auth, "KeyStore", lambda path: KeyStore(path, scrypt_n=FAST_N))
    secret = create_key(None, "ci", ["bert"], ["classify", "embed"], 120)
    assert capsys.readouterr().out == ""
    assert auth.default_store_path() == (tmp_path / "home").resolve() / "keys.json"
    (row,) = list_keys()
    assert (row["name"], row["models"], row["endpoints"], row["rate_per_minute"]) == ("ci", ["bert"], ["classify", "embed"], 120)
    assert KeyStore(auth.default_store_path()).verify(secret) is not None
    revoke_key(None, row["id"])
    assert list_keys()[0]["revoked"] is True
    assert KeyStore(auth.default_store_path()).verify(secret) is None


def test_rate_limiter_bucket_and_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    assert [limiter.acquire("k", 60, 3)[0] for _ in range(4)] == [True, True, True, False]
    allowed, retry = limiter.acquire("k", 60, 3)
    assert not allowed and retry == pytest.approx(1.0)
    clock.now += 0.5
    assert limiter.acquire("k", 60, 3) == (False, pytest.approx(0.5))
    clock.now += 0.5
    assert limiter.acquire("k", 60, 3) == (True, 0.0)
    assert limiter.acquire("other", 60, 3) == (True, 0.0)
    clock.now += 3600
    assert [limiter.acquire("k", 60, 3)[0] for _ in range(4)] == [True, True, True, False], "refill stops at the burst"
    assert all(limiter.acquire("free", 0, 1)[0] for _ in range(100))


def test_rate_limiter_is_thread_safe() -> None:
    limiter = RateLimiter(FakeClock())
    results: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        got = [limiter.acquire("k", 60, 50)[0] for _ in range(100)]
        with lock:
            results.extend(got)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 400 and sum(results) == 50


def test_authorizer_statuses(store: KeyStore) -> None:
    record, secret = store.create("bot", models=["bert"], endpoints=["classify", "embed"], rate_per_minute=60, burst=2)
    clock = FakeClock()
    authorizer = Authorizer(store, RateLimiter(clock))
    bearer = f"Bearer {secret}"
    cases = [
        (None, "bert", "classify", 401, "missing API key"),
        ("", "bert", "classify", 401, "missing API key"),
        ("Basic abc", "bert", "classify", 401, "malformed Authorization header"),
        ("Bearer not-a-key", "bert", "classify", 401, "malformed API key"),
        ("Bearer " + secret[:-1] + "!", "bert", "classify", 401, "malformed API key"),
        ("Bearer " + secret[:-2] + ("zz" if secret[-2:] != "zz" else "yy"), "bert", "classify", 401, "unknown or revoked API key"),
        (bearer, "gpt2", "classify", 403, f"key {record.id} may not use model 'gpt2'"),
        (bearer, "bert", "generate", 403, f"key {record.id} may not call the 'generate' endpoint"),
        (f"bearer  {secret} ", "bert", "classify", 200, "ok"),
        (bearer, None, "embed", 200, "ok"),
        (bearer, "bert", "classify", 429, f"key {record.id} is over its limit of 60 requests per minute; retry in 1.0 s"),
    ]
    for header, model, endpoint, status, message in cases:
        decision = authorizer.check(header, model, endpoint)
        assert (decision.status, decision.ok) == (status, status == 200), header
        assert decision.message.startswith(message)
        assert secret[-32:] not in decision.message
        assert decision.key == (record if status in (200, 403, 429) else None)
    assert decision.retry_after == pytest.approx(1.0)
    clock.now += 1.0
    assert authorizer.check(bearer, "bert", "classify").status == 200


def test_authorizer_refuses_a_key_revoked_elsewhere(store: KeyStore) -> None:
    record, secret = store.create("bot")
    authorizer = Authorizer(store)
    assert authorizer.check(f"Bearer {secret}", "m", "generate").ok
    revoke_key(store.path, record.id)
    decision = authorizer.check(f"Bearer {secret}", "m", "generate")
    assert (decision.status, decision.message) == (401, "unknown or revoked API key.")


def test_forbidden_requests_do_not_use_up_the_rate(store: KeyStore) -> None:
    _, secret = store.create("bot", endpoints=["classify"], rate_per_minute=60, burst=1)
    authorizer = Authorizer(store, RateLimiter(FakeClock()))
    for _ in range(5):
        assert authorizer.check(f"Bearer {secret}", None, "generate").status == 403
    assert authorizer.check(f"Bearer {secret}", None, "classify").status == 200


def test_concurrent_writers_lose_no_key(store: KeyStore) -> None:
    # flock locks of separate open() calls exclude each other even within one process, as between processes.
    def create_three(i: int) -> None:
        writer = KeyStore(store.path, scrypt_n=FAST_N)
        for j in range(3):
            writer.create(f"w{i}-{j}")

    threads = [threading.Thread(target=create_three, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.list()) == 12


def test_a_store_readable_by_others_is_warned_about(store: KeyStore, caplog: pytest.LogCaptureFixture) -> None:
    store.create("a")
    store.path.chmod(0o644)
    with caplog.at_level("WARNING", logger="lmforge.serving.auth"):
        KeyStore(store.path)
    assert "is readable by other users; run `chmod 600" in caplog.text
