"""A Redis that is down, goes away, restarts, hangs or wants a password (ST-40, ENG-12)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time

import pytest
import trio

from ironflow_core.errors import RunNotFoundError, StoreUnavailableError
from ironflow_core.model import RunStatus, TaskStatus
from ironflow_core.store_conformance import record, task
from ironflow_store_redis.address import parse_redis_url
from ironflow_store_redis.store import RedisStore

from .conftest import (
    REDIS_SERVER,
    RedisServer,
    ReplyGate,
    free_port,
    round_trips,
    sent_commands,
)


def open_store(url: str, **kwargs) -> RedisStore:
    return RedisStore(parse_redis_url(url), **kwargs)


async def test_st_40_redis_down_is_a_clear_unavailable_error_without_credentials():
    port = free_port()  # nothing listens there
    store = open_store(f"redis://admin:hunter2@127.0.0.1:{port}/2?socket_timeout=5")
    expected = f"^cannot reach Redis at redis://127.0.0.1:{port}/2: Connection refused$"
    calls = [
        lambda: store.create_run(record()),
        lambda: store.get_run("run-1"),
        lambda: store.list_runs(),
        lambda: store.upsert_tasks("run-1", [task("a")]),
        lambda: store.set_status("run-1", RunStatus.RUNNING),
        lambda: store.delete_run("run-1"),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailableError, match=expected) as caught:
            await call()
        assert "hunter2" not in str(caught.value) and "admin" not in str(caught.value)
        assert caught.value.__cause__ is None  # a message, not a chained traceback
    await store.aclose()


async def test_st_40_a_restarted_redis_is_reconnected_transparently(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    store = open_store(server.url)
    try:
        await store.create_run(record("before"))
        server.kill()
        server.start()  # same port; no persistence, so the data is gone
        # The pooled connection is stale; the pool replaces it before sending anything.
        assert (await store.list_runs()).runs == ()
        await store.create_run(record("after"))
        assert (await store.get_run("after")).id == "after"
        # The server's script cache was emptied too: NOSCRIPT made the store load it again.
        await store.upsert_tasks("after", [task("a", TaskStatus.RUNNING, attempt=1)])
        assert (await store.get_run("after")).tasks["a"].status is TaskStatus.RUNNING
    finally:
        await store.aclose()
        server.kill()


async def test_st_40_scripts_are_reloaded_after_script_flush(redis_url, redis_client):
    store = open_store(redis_url)
    await store.create_run(record(tasks={"a": task("a")}))
    await store.upsert_tasks("run-1", [task("a", TaskStatus.PENDING)])
    before = sent_commands(redis_client)
    await store.upsert_tasks("run-1", [task("a", TaskStatus.RUNNING, attempt=1)])
    assert round_trips(sent_commands(redis_client) - before) == 1
    redis_client.script_flush()
    before = sent_commands(redis_client)
    await store.upsert_tasks("run-1", [task("a", TaskStatus.SUCCESS, attempt=1)])
    sent = sent_commands(redis_client) - before
    # EVALSHA answered NOSCRIPT, SCRIPT LOAD, EVALSHA again.
    assert (sent["evalsha"], sent["failed:evalsha"], sent["script|load"]) == (2, 1, 1)
    assert round_trips(sent) == 3
    assert (await store.get_run("run-1")).tasks["a"].status is TaskStatus.SUCCESS
    await store.aclose()


async def test_st_40_a_server_that_never_answers_times_out():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    store = open_store(f"redis://127.0.0.1:{port}?socket_timeout=0.2")
    try:
        with pytest.raises(
            StoreUnavailableError,
            match=f"^cannot reach Redis at redis://127.0.0.1:{port}/0: no reply within 0.2 s$",
        ):
            await store.get_run("run-1")
    finally:
        await store.aclose()
        listener.close()


async def test_st_40_password_protected_redis(tmp_path):
    server = RedisServer(tmp_path / "redis", "--requirepass", "s3cret-pw")
    server.start()
    base = f"127.0.0.1:{server.port}"
    try:
        good = open_store(f"redis://:s3cret-pw@{base}/0")
        await good.create_run(record())
        assert (await good.get_run("run-1")).id == "run-1"
        await good.aclose()

        anonymous = open_store(f"redis://{base}/0")
        with pytest.raises(StoreUnavailableError,
                           match=f"^Redis at redis://{base}/0 refused a command: NOAUTH"):
            await anonymous.get_run("run-1")
        await anonymous.aclose()

        wrong = open_store(f"redis://default:not-the-pw@{base}/0")
        with pytest.raises(StoreUnavailableError,
                           match=f"^cannot use Redis at redis://{base}/0: WRONGPASS") as caught:
            await wrong.get_run("run-1")
        assert "not-the-pw" not in str(caught.value)
        await wrong.aclose()
    finally:
        server.kill()


async def test_st_40_a_database_number_selects_that_database(redis_server, redis_url):
    store = open_store(redis_url.rsplit("/", 1)[0] + "/3")
    await store.create_run(record())
    with redis_server.client() as client:
        assert client.exists("ironflow:runs:run-1") == 0
        client.select(3)
        assert client.exists("ironflow:runs:run-1") == 1
        client.flushdb()
    await store.aclose()


async def test_st_40_a_command_cancelled_mid_reply_never_desynchronises_the_pool(redis_server):
    async with ReplyGate(redis_server.port) as gate:
        # One connection, so a reply left unread on it would answer the next command.
        store = open_store(f"redis://127.0.0.1:{gate.port}/0?max_connections=1&socket_timeout=10")
        await store.create_run(record("run-1", flow_name="one"))
        await store.create_run(record("run-2", flow_name="two"))
        gate.hold()
        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.get_run, "run-1")
            await gate.sent(b"HGETALL")  # Redis has the command; its reply is held
            nursery.cancel_scope.cancel()
        # The caller left at once: it did not wait for the reply or the socket timeout.
        assert time.monotonic() - started < 8
        gate.release()
        assert (await store.get_run("run-2")).flow_name == "two"
        await store.aclose()


async def test_st_40_a_cancelled_command_on_a_hung_server_returns_at_once():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    store = open_store(f"redis://127.0.0.1:{port}?socket_timeout=10")
    try:
        started = time.monotonic()
        with trio.move_on_after(0.05) as scope:
            await store.get_run("run-1")
        # Cancelled: no error escapes, and nothing waits for the socket timeout.
        assert scope.cancelled_caught
        assert time.monotonic() - started < 8
    finally:
        await store.aclose()
        listener.close()


async def test_st_40_max_connections_bounds_the_pool(redis_url, redis_client):
    store = open_store(redis_url + "?max_connections=2")
    await store.create_run(record("run-1", flow_name="one"))
    seen = []

    async def read() -> None:
        seen.append((await store.get_run("run-1")).flow_name)

    redis_client.client_pause(100)  # every command waits, so callers pile up
    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(read)
    assert seen == ["one"] * 20
    mine = redis_client.client_id()
    # The store never held more than two connections (plus the checking client).
    assert len([c for c in redis_client.client_list() if c["id"] != str(mine)]) <= 2
    await store.aclose()


async def test_st_40_unix_socket_urls(tmp_path):
    socket_path = tmp_path / "redis.sock"
    server = RedisServer(tmp_path / "redis", "--unixsocket", str(socket_path),
                         "--unixsocketperm", "700")
    server.start()
    try:
        store = open_store(f"unix://{socket_path}?db=2")
        await store.create_run(record())
        assert (await store.get_run("run-1")).id == "run-1"
        await store.aclose()
        with server.client() as client:
            client.select(2)
            assert client.exists("ironflow:runs:run-1") == 1
        missing = open_store(f"unix://{tmp_path}/nothing.sock?db=3")
        with pytest.raises(StoreUnavailableError) as caught:
            await missing.get_run("run-1")
        assert str(caught.value) == (
            f"cannot reach Redis at unix://{tmp_path}/nothing.sock (db 3): No such file or directory"
        )
        await missing.aclose()
    finally:
        server.kill()


async def test_st_13_a_deleted_run_stays_deleted_under_the_ttl(redis_url):
    store = open_store(redis_url, ttl_seconds=60)
    await store.create_run(record())
    await store.delete_run("run-1")
    with pytest.raises(RunNotFoundError):
        await store.merge_context("run-1", {})
    await store.aclose()


# ------------------------------------------------------------------- TLS
def _make_certificate(directory) -> tuple[str, str]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


def _wait_tls(port: int) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw, \
                context.wrap_socket(raw) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.mark.skipif(REDIS_SERVER is None or shutil.which("openssl") is None,
                    reason="needs redis-server and openssl")
async def test_st_40_rediss_urls_speak_tls(tmp_path):
    cert, key = _make_certificate(tmp_path)
    port = free_port()
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", cert,
         "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _wait_tls(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.skip("this redis-server was built without TLS")
            time.sleep(0.05)
        verified = open_store(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}")
        await verified.create_run(record())
        first = await verified.client.call("CLIENT", "ID")
        assert (await verified.get_run("run-1")).id == "run-1"
        # The pooled TLS connection is reused (what TLS sends after the handshake
        # does not make it look stale).
        assert await verified.client.call("CLIENT", "ID") == first
        await verified.aclose()
        unverified = open_store(f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none")
        assert [s.id for s in (await unverified.list_runs()).runs] == ["run-1"]
        await unverified.aclose()
        untrusted = open_store(f"rediss://127.0.0.1:{port}/0")  # self-signed: refused
        with pytest.raises(StoreUnavailableError,
                           match=f"^cannot reach Redis at rediss://127.0.0.1:{port}/0: TLS"):
            await untrusted.get_run("run-1")
        await untrusted.aclose()
    finally:
        process.kill()
        process.wait()
