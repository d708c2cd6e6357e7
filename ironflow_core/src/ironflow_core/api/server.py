"""Serving the app: Hypercorn's trio worker beside the nursery that runs the flows.

This is the only module that knows Hypercorn. The listener is bound here
first, so a bind failure is a clear start-up error, and handed to Hypercorn
as a file descriptor. Runs left behind by dead processes are reconciled
before serving and every 30 s while serving (``reconcile.py``). On
SIGINT/SIGTERM the run manager drains (readiness turns 503, accepted runs get
the grace period, the rest are cancelled and recorded ``cancelled``); only
then does Hypercorn stop, so every waiting ``POST /flows/run`` still receives
its answer. A second signal skips the remaining grace.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from ironflow_core.api.settings import ServerSettings
from ironflow_core.errors import IronflowError
from ironflow_core.specs import StateStore

if TYPE_CHECKING:
    from ironflow_core.registry import Registry

log = logging.getLogger("ironflow.api")

HTTP_GRACE_SECONDS = 5.0
"""How long Hypercorn lets open connections finish once the runs are done."""


class ServerStartError(IronflowError):
    """The server could not start (the listener could not be bound)."""


def bind_listener(host: str, port: int) -> socket.socket:
    """Bind and listen now, so the error names the address (CLI-70)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        family, kind, proto, _name, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(1024)
        except BaseException:
            sock.close()
            raise
    except OSError as exc:
        raise ServerStartError(
            f"failed to bind API server to {host}:{port}: {exc.strerror or exc}"
        ) from None
    sock.setblocking(False)
    return sock


async def serve_asgi(app: Any, sock: socket.socket, *,
                     shutdown_trigger: Callable[[], Awaitable[None]],
                     task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` on the bound ``sock`` with Hypercorn's trio worker.

    ``task_status.started`` receives the listening URL. Returns once
    ``shutdown_trigger`` has returned and open connections have closed
    (bounded by ``HTTP_GRACE_SECONDS``). Takes ownership of ``sock``.
    """
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    http_log = logging.getLogger("ironflow.api.http")
    http_log.setLevel(logging.WARNING)  # drop Hypercorn's own "Running on" banner
    config.errorlog = http_log
    config.graceful_timeout = HTTP_GRACE_SECONDS
    sock.detach()  # Hypercorn's socket object owns the descriptor from here on

    class _Started:
        @staticmethod
        def started(binds: list[str] | None = None) -> None:
            task_status.started(binds[0] if binds else "")

    await serve(app, config, shutdown_trigger=shutdown_trigger,
                task_status=_Started())  # type: ignore[arg-type]


async def _watch_signals(settings: ServerSettings, runs: Any, nursery: trio.Nursery) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if not runs.draining:
                log.info("received %s: draining", signal.Signals(signum).name)
                nursery.start_soon(runs.shutdown, settings.shutdown_grace_seconds)
            else:
                log.info("received %s again: cancelling remaining runs",
                         signal.Signals(signum).name)
                runs.skip_grace()


async def serve_app(
    settings: ServerSettings,
    *,
    store: StateStore,
    registry: Registry,
    env: Mapping[str, str],
    sock: socket.socket,
    on_listening: Callable[[str], None] | None = None,
    queue: Any = None,
) -> None:
    """Serve until a signal has drained every run; call inside ``trio.run``.

    With a shared ``queue`` (issue 16) runs go to workers: the server follows
    their events, and recovery only reconciles (the workers resume runs).
    """
    from ironflow_core.api.app import build_app
    from ironflow_core.api.reconcile import keep_reconciling
    from ironflow_core.engine.recovery import Recovery, RecoverySettings

    app, runs = build_app(settings, store=store, registry=registry, env=env, queue=queue)
    try:
        async with trio.open_nursery() as run_nursery:
            runs.nursery = run_nursery
            async with trio.open_nursery() as nursery:

                async def serve_http(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                    try:
                        await serve_asgi(app, sock, shutdown_trigger=runs.stopped.wait,
                                         task_status=task_status)
                    finally:
                        nursery.cancel_scope.cancel()  # stops the signal watcher

                nursery.start_soon(_watch_signals, settings, runs, nursery)
                if runs.queue is not None:
                    await nursery.start(partial(runs.queue.follow, runs.relay_event))
                recovery = Recovery(store, settings=RecoverySettings.from_env(env),
                                    start=runs.start_recovery if runs.queue is None else None,
                                    observers=registry.observers)
                # CLI-70: before serving; resumed runs start in the run nursery
                await nursery.start(partial(keep_reconciling, store, recovery=recovery))
                if settings.schedules:
                    from ironflow_core.schedules import Scheduler

                    scheduler = Scheduler(settings.schedules, runs=runs, registry=registry,
                                          env=env)
                    await nursery.start(scheduler.run)
                url = await nursery.start(serve_http)
                if on_listening is not None:
                    on_listening(url)
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()
            if queue is not None:
                await queue.aclose()


def run_server(settings: ServerSettings, *, open_store: Callable[[], StateStore],
               registry: Registry, env: Mapping[str, str],
               open_queue: Callable[[], Any] | None = None) -> None:
    """Bind, open the store, serve, drain: the body of ``ironflow serve``."""
    from ironflow_core.engine.lease import lease_ttl
    from ironflow_core.engine.recovery import RecoverySettings

    RecoverySettings.from_env(env)  # invalid recovery settings stop before binding
    lease_ttl(env)
    queue = open_queue() if open_queue is not None else None  # a bad setting fails first
    sock = bind_listener(settings.host, settings.port)
    try:
        store = open_store()
    except BaseException:
        sock.close()
        raise

    def announce(url: str) -> None:
        print(f"IronFlow API listening on {url}", file=sys.stderr, flush=True)

    trio.run(lambda: serve_app(settings, store=store, registry=registry, env=env, sock=sock,
                               on_listening=announce, queue=queue))
