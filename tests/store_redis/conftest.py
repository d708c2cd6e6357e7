"""A real ``redis-server`` on a free loopback port, started by the tests themselves.

The session server runs without persistence (``--save '' --appendonly no``)
and is flushed before every test that asks for ``redis_url``. Tests that kill
or reconfigure a server start their own with ``RedisServer``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

REDIS_SERVER = shutil.which("redis-server")
SKIP_REASON = "redis-server is not on PATH (install the Debian package redis-server)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ping(port: int, password: str | None = None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            if password is not None:
                sock.sendall(f"AUTH {password}\r\n".encode())
                sock.recv(64)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process; ``kill`` and ``start`` again keep its port."""

    def __init__(self, directory: Path, *extra: str, port: int | None = None) -> None:
        if REDIS_SERVER is None:
            pytest.skip(SKIP_REASON)
        self.directory = directory
        self.extra = extra
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.password: str | None = None
        if "--requirepass" in extra:
            self.password = extra[extra.index("--requirepass") + 1]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory),
             "--logfile", str(self.directory / "redis.log"), *self.extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not ping(self.port, self.password):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                self.kill()
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log}")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def client(self):  # type: ignore[no-untyped-def]
        """An independent client (redis-py, sync) to look at what the store wrote."""
        import redis

        return redis.Redis(port=self.port, password=self.password, decode_responses=True)


STORE_COMMANDS = ("eval", "evalsha", "script|load", "hgetall")
"""What the store sends (the commands its scripts run are counted apart by Redis)."""


def sent_commands(client) -> Counter[str]:  # type: ignore[no-untyped-def]
    """Per command, how often clients sent it, as the server counts them (``INFO commandstats``).

    ``failed:<name>`` counts the ones that failed (an ``EVALSHA`` answered ``NOSCRIPT``).
    Subtract two snapshots to see what a store did in between.
    """
    stats = client.info("commandstats")
    seen: Counter[str] = Counter()
    for name in STORE_COMMANDS:
        entry = stats.get(f"cmdstat_{name}", {})
        seen[name] = entry.get("calls", 0) + entry.get("rejected_calls", 0)
        seen[f"failed:{name}"] = entry.get("failed_calls", 0) + entry.get("rejected_calls", 0)
    return seen


def round_trips(commands: Counter[str]) -> int:
    """Commands the store sent, from a ``sent_commands`` difference."""
    return sum(commands[name] for name in STORE_COMMANDS)


def bytes_received(client) -> int:  # type: ignore[no-untyped-def]
    """Bytes the server has read from all clients (``total_net_input_bytes``)."""
    return client.info("stats")["total_net_input_bytes"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def redis_client(redis_server: RedisServer, redis_url: str):  # type: ignore[no-untyped-def]
    with redis_server.client() as client:
        yield client


class ReplyGate:
    """A loopback TCP proxy in front of Redis that can hold the server's replies back.

    ``async with ReplyGate(port) as gate``: clients connect to ``gate.port``.
    Commands always pass; while ``hold()`` is in effect replies wait in the
    proxy. ``await gate.sent(text, times)`` returns once Redis has been sent ``text``
    ``times`` times, so a test knows a command is on its way.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.upstream = bytearray()
        self._released = trio.Event()
        self._released.set()

    async def __aenter__(self) -> ReplyGate:
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        listeners = await self._nursery.start(trio.serve_tcp, self._handle, 0)
        self.port = listeners[0].socket.getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> bool | None:
        self._nursery.cancel_scope.cancel()
        return await self._nursery_manager.__aexit__(*exc_info)

    def hold(self) -> None:
        self._released = trio.Event()

    def release(self) -> None:
        self._released.set()

    async def sent(self, text: bytes, times: int = 1) -> None:
        while self.upstream.count(text) < times:
            await trio.sleep(0.005)

    async def _handle(self, client) -> None:  # type: ignore[no-untyped-def]
        server = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        async with client, server, trio.open_nursery() as nursery:

            async def up() -> None:
                async for data in client:
                    self.upstream += data
                    await server.send_all(data)
                nursery.cancel_scope.cancel()

            async def down() -> None:
                async for data in server:
                    await self._released.wait()
                    await client.send_all(data)
                nursery.cancel_scope.cancel()

            nursery.start_soon(up)
            nursery.start_soon(down)
