"""The API's building blocks on their own: settings precedence, webhook rules, the event memory."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
import trio

from ironflow_core.api.events import CursorGone, EventRecorder, MemoryEventStore
from ironflow_core.api.idempotency import fingerprint, run_id_for_key, valid_key
from ironflow_core.api.settings import resolve_settings
from ironflow_core.api.webhooks import (
    WebhookRequestError,
    forwarded_headers,
    parse_webhooks,
    verify_signature,
)
from ironflow_core.errors import ConfigError
from ironflow_core.model import Event, EventType

KEY = {"IRONFLOW_API_KEY": "k" * 20}


def test_cli_11_flag_beats_env_beats_yaml():
    config = {"port": 4000, "host": "10.0.0.1", "max_body": 10, "flows_dir": "yaml"}
    from_yaml = resolve_settings(KEY, config)
    assert (from_yaml.port, from_yaml.host, from_yaml.max_body, from_yaml.flows_dir) == (
        4000, "10.0.0.1", 10, "yaml")
    env = {**KEY, "PORT": "5000", "HOST": "127.0.0.2", "MAX_BODY": "20", "FLOWS_DIR": "env"}
    from_env = resolve_settings(env, config)
    assert (from_env.port, from_env.host, from_env.max_body, from_env.flows_dir) == (
        5000, "127.0.0.2", 20, "env")
    flags = resolve_settings(env, config, port=3000, host="127.0.0.3", max_body=30,
                             flows_dir="flag")
    assert (flags.port, flags.host, flags.max_body, flags.flows_dir) == (
        3000, "127.0.0.3", 30, "flag")  # a flag equal to the default still wins


def test_cli_13_defaults():
    settings = resolve_settings(KEY, {})
    assert (settings.host, settings.port, settings.max_body) == ("127.0.0.1", 3000, 1_048_576)
    assert settings.event_capacity == 10_000 and settings.max_list_records == 100
    assert settings.shutdown_grace_seconds == 30 and settings.max_concurrent_runs == 0
    assert settings.allow_adhoc_flows and settings.cors_origins == ()


@pytest.mark.parametrize(("env", "message"), [
    ({"IRONFLOW_ALLOW_ADHOC_FLOWS": "1"}, "must be either 'true' or 'false'"),
    ({"IRONFLOW_EVENT_MEMORY_CAPACITY": "0"}, "must be greater than zero"),
    ({"IRONFLOW_MAX_LIST_RECORDS": "x"}, "must be a non-negative integer"),
    ({"IRONFLOW_MAX_CONCURRENT_FLOW_LOADS": "0"}, "must be greater than zero"),
    ({"IRONFLOW_MAX_CONCURRENT_TASKS": "lots"}, "must be a non-negative integer"),
    ({"IRONFLOW_EVENT_STORE": "sqlite"}, "Unknown event store backend 'sqlite'"),
    ({"PORT": "70000"}, "PORT must be an integer between 0 and 65535"),
    ({"IRONFLOW_API_KEY": "   "}, "API authentication is required when binding to '127.0.0.1'"),
    ({"IRONFLOW_CORS_ORIGINS": "*,http://a.example"}, "cannot be combined"),
    ({"IRONFLOW_SHUTDOWN_GRACE_SECONDS": "3601"}, "must be between 0 and 3600"),
    ({"IRONFLOW_MAX_CONCURRENT_RUNS": "many"}, "must be a non-negative integer"),
    ({"IRONFLOW_MAX_CONCURRENT_WORKFLOWS": "-2"}, "must be a non-negative integer"),
    ({"IRONFLOW_MAX_RUN_SECONDS": "1.5"}, "must be a non-negative integer"),
])
def test_cli_14_invalid_values_are_fatal(env, message):
    with pytest.raises(ConfigError, match=message):
        resolve_settings({**KEY, **env}, {})


def test_api_4_cors_star_alone_is_fine():
    assert resolve_settings({**KEY, "IRONFLOW_CORS_ORIGINS": "*"}, {}).cors_origins == ("*",)
    assert resolve_settings(KEY, {"cors_origins": ["http://a", "http://b"]}).cors_origins == (
        "http://a", "http://b")


SECRET = "0123456789abcdef-secret"


def test_api_41_signature_over_the_exact_bytes():
    hooks = parse_webhooks({"h": {"flow": "f.lua", "signature": {
        "header": "X-Sig", "secret_env": "S", "prefix": "v1="}}}, {"S": SECRET})
    signature = hooks["h"].signature
    assert signature is not None and signature.header == "x-sig"
    body = b'{"a": 1}'
    good = "v1=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    verify_signature(signature, [(b"X-Sig", good.encode())], body)
    verify_signature(signature, [(b"x-sig", good.upper().replace("V1=", "v1=").encode())], body)
    for headers, raw in (([], body), ([(b"x-sig", good.encode())], body + b"\n"),
                         ([(b"x-sig", good[3:].encode())], body),
                         ([(b"x-sig", good.encode())] * 2, body)):
        with pytest.raises(WebhookRequestError) as info:
            verify_signature(signature, headers, raw)
        assert info.value.status == 403 and str(info.value) == "invalid webhook signature"


@pytest.mark.parametrize(("raw", "message"), [
    ("not a map", "'webhooks' in the config file must be a map"),
    ({"h": {"flow": "f", "signature": {"header": "x-s", "secret_env": "NOPE"}}},
     "environment variable NOPE is not set"),
    ({"h": {"flow": "f", "signature": {"header": "x-s", "secret_env": "S", "type": "md5"}}},
     "signature type must be one of hmac_sha256, stripe, slack"),
    ({"h": {"flow": "f", "signature": {"secret_env": "S", "type": "stripe",
                                       "tolerance_seconds": 0}}},
     "tolerance_seconds must be a positive integer"),
    ({"h": {"flow": "f", "signature": {"header": "cookie", "secret_env": "S"}}},
     "reserved credential header"),
    ({"h": {"flow": "f", "forward_headers": ["x-s"],
            "signature": {"header": "x-s", "secret_env": "S"}}}, "must not also be forwarded"),
    ({"h": {"flow": "f", "signature": {"header": "x-s", "secret_env": "S", "prefix": "é"}}},
     "prefix must be ASCII"),
    ({"h": {"flow": "f", "signature": {"header": "x-s", "secret_env": "bad-name"}}},
     "secret_env must be an environment variable name"),
    ({"h": {"forward_headers": []}}, "'flow' must be a non-empty path"),
    ({"h": {"flow": "f", "extra": 1}}, r"webhook 'h': unknown field\(s\): extra"),
    ({"h": {"flow": "f", "forward_headers": ["Authorization"]}},
     "forwarded header 'authorization' is a reserved credential header"),
])
def test_api_40_41_webhook_config_errors(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_webhooks(raw, {"S": SECRET})


def test_api_43_forwarded_headers():
    hook = parse_webhooks({"h": {"flow": "f", "forward_headers": ["X-Trace", "x-other"]}},
                          {})["h"]
    assert forwarded_headers(hook, [(b"x-trace", b"  abcdefgh  "), (b"x-unlisted", b"zz")]) == {
        "x-trace": "abcdefgh"}
    # No minimum length: GitHub's x-github-event is "push", "ping", "issues".
    assert forwarded_headers(hook, [(b"x-trace", b"push")]) == {"x-trace": "push"}
    for headers in ([(b"x-trace", b"abcdefgh\x01")],
                    [(b"x-trace", b"abcdefgh")] * 2, [(b"x-trace", "abcdefgh\u00e9".encode())]):
        with pytest.raises(WebhookRequestError) as info:
            forwarded_headers(hook, headers)
        assert info.value.status == 400


def _stripe_header(body: bytes, timestamp: int, secret: str = SECRET) -> bytes:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={'0' * 64},v1={mac.hexdigest()}".encode()


def test_webhook_stripe_signature_and_timestamp_window():
    signature = parse_webhooks({"h": {"flow": "f", "signature": {
        "type": "stripe", "secret_env": "S"}}}, {"S": SECRET})["h"].signature
    assert signature is not None and signature.header == "stripe-signature"
    body, now = b'{"id": "evt_1"}', 1_800_000_000
    verify_signature(signature, [(b"Stripe-Signature", _stripe_header(body, now))], body,
                     now=now + 299)
    cases = [
        ([(b"stripe-signature", _stripe_header(body, now))], now + 301,
         "webhook signature timestamp is outside the allowed window"),
        ([(b"stripe-signature", _stripe_header(body, now))], now - 301,
         "webhook signature timestamp is outside the allowed window"),
        ([(b"stripe-signature", _stripe_header(body + b" ", now))], now,
         "invalid webhook signature"),
        ([(b"stripe-signature", _stripe_header(body, now, "another-secret-0123"))], now,
         "invalid webhook signature"),
        ([(b"stripe-signature", f"v1={'a' * 64}".encode())], now, "invalid webhook signature"),
    ]
    for headers, at, message in cases:
        with pytest.raises(WebhookRequestError) as info:
            verify_signature(signature, headers, body, now=at)
        assert (info.value.status, str(info.value)) == (403, message)


def test_webhook_slack_signature_signs_the_timestamp():
    signature = parse_webhooks({"h": {"flow": "f", "signature": {
        "type": "slack", "secret_env": "S", "tolerance_seconds": 60}}}, {"S": SECRET})["h"].signature
    assert signature is not None
    body, now = b"{}", 1_800_000_000
    mac = hmac.new(SECRET.encode(), f"v0:{now}:".encode() + body, hashlib.sha256).hexdigest()
    good = [(b"x-slack-signature", f"v0={mac}".encode()),
            (b"x-slack-request-timestamp", str(now).encode())]
    verify_signature(signature, good, body, now=now + 60)
    for headers, at in ((good, now + 61), (good[:1], now),
                        ([good[0], (b"x-slack-request-timestamp", str(now + 1).encode())], now)):
        with pytest.raises(WebhookRequestError):
            verify_signature(signature, headers, body, now=at)


def test_api_20_21_keys_and_fingerprints():
    assert valid_key("a") and valid_key("A-z_0.9:x") and valid_key("k" * 128)
    assert not valid_key("") and not valid_key("k" * 129) and not valid_key("a b")
    assert run_id_for_key("k") == "idem-" + hashlib.sha256(b"k").hexdigest()
    base = fingerprint("source", "x", {"a": 1})
    assert base == fingerprint("source", "x", {"a": 1})
    different = [fingerprint("file", "x", {"a": 1}), fingerprint("source", "y", {"a": 1}),
                 fingerprint("source", "x", {"a": "1"}), fingerprint("source", "x", {"a": 1.0}),
                 fingerprint("source", "x", None), fingerprint("source", "x", {})]
    assert len({base, *different}) == 7


def _event(run_id: str, n: int, kind: EventType = EventType.TASK_STARTED) -> Event:
    return Event(id=f"{run_id}-e{n}", run_id=run_id, type=kind, timestamp="t")


def test_api_74_memory_events_are_bounded_oldest_first():
    store = MemoryEventStore(capacity=3)
    recorder = EventRecorder(store)
    recorder.on_event(_event("a", 1))
    recorder.on_event(_event("b", 1))
    recorder.on_event(_event("a", 2))
    recorder.on_event(_event("a", 3))
    assert len(store) == 3
    assert [e.id for e in store.after("a", None)] == ["a-e2", "a-e3"]
    assert [e.id for e in store.after("a", "a-e2")] == ["a-e3"]
    with pytest.raises(CursorGone):
        store.after("a", "a-e1")  # evicted
    with pytest.raises(CursorGone):
        store.after("a", "b-e1")  # another run's cursor
    assert store.after("nobody", None) == []


def test_api_63_delete_fences_late_events_until_the_id_is_reused():
    store = MemoryEventStore(capacity=10)
    store.append(_event("a", 1))
    assert store.delete_run("a") is True
    store.append(_event("a", 2))
    assert store.after("a", None) == []
    assert store.delete_run("a") is False
    store.open_run("a")
    store.append(_event("a", 3))
    assert [e.id for e in store.after("a", None)] == ["a-e3"]


async def test_api_71_waiting_streams_wake_on_a_new_event():
    store = MemoryEventStore(capacity=10)
    woke_at: list[float] = []

    async def waiter() -> None:
        await store.wait_for_change("a", timeout=5)
        woke_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(0.1)
        started = trio.current_time()
        store.append(_event("a", 1))
    assert woke_at and woke_at[0] - started < 0.1


class _Runs:
    """The slice of ``RunManager`` the event stream reads."""

    def __init__(self, active: set[str]) -> None:
        self.active = active
        self.stopped = trio.Event()

    def is_active(self, run_id: str) -> bool:
        return run_id in self.active


async def _running_store(run_id: str):
    from ironflow_core.model import RunRecord, RunStatus
    from ironflow_core.stores.memory import MemoryStore

    store = MemoryStore()
    await store.create_run(RunRecord(id=run_id, flow_name="f", status=RunStatus.RUNNING,
                                     started="2026-01-01T00:00:00.000000Z"))
    return store


async def test_api_71_keep_alive_then_live_events_until_run_finished(autojump_clock):
    from ironflow_core.api.sse import EventStream

    store = await _running_store("r1")
    events = MemoryEventStore(capacity=100)
    events.append(_event("r1", 1, EventType.RUN_STARTED))
    stream = EventStream(store, events, _Runs({"r1"}))
    received: list[tuple[float, bytes]] = []

    async def consume() -> None:
        async for chunk in stream._frames("r1", None, events.after("r1", None)):
            received.append((trio.current_time(), chunk))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.sleep(20)
        events.append(_event("r1", 2, EventType.TASK_STARTED))
        await trio.sleep(1)
        events.append(_event("r1", 3, EventType.RUN_FINISHED))
    kinds = [chunk.split(b"\n")[0] for _at, chunk in received]
    assert kinds == [b"id: r1-e1", b": keep-alive", b"id: r1-e2", b"id: r1-e3"]
    assert received[1][0] == pytest.approx(15, abs=0.01)  # after 15 s without frames
    assert received[2][0] == pytest.approx(20, abs=0.01)  # woken at once, no 1 s poll wait
    assert received[3][1].startswith(b"id: r1-e3\nevent: run_finished\ndata: {")


async def test_api_73_evicted_cursor_mid_stream_is_a_stream_error(autojump_clock):
    from ironflow_core.api.sse import EventStream

    store = await _running_store("r1")
    events = MemoryEventStore(capacity=2)
    events.append(_event("r1", 1))
    stream = EventStream(store, events, _Runs({"r1"}))
    frames = stream._frames("r1", None, events.after("r1", None))
    assert (await frames.__anext__()).startswith(b"id: r1-e1")
    for n in (2, 3, 4):  # the cursor r1-e1 is evicted before the stream polls again
        events.append(_event("other", n))
    error = await frames.__anext__()
    assert error.startswith(b"event: stream_error\ndata: ")
    data = json.loads(error.split(b"data: ")[1])
    assert data == {"error": "Event cursor is no longer available",
                    "code": "event_cursor_gone", "retryable": False}
    with pytest.raises(StopAsyncIteration):
        await frames.__anext__()


async def test_api_72_terminal_run_without_events_closes_after_one_poll(autojump_clock):
    from ironflow_core.api.sse import EventStream
    from ironflow_core.model import RunStatus

    store = await _running_store("r1")
    await store.set_status("r1", RunStatus.SUCCESS)
    stream = EventStream(store, MemoryEventStore(capacity=5), _Runs(set()))
    began = trio.current_time()
    assert [chunk async for chunk in stream._frames("r1", None, [])] == []
    assert trio.current_time() - began == pytest.approx(1.0)
