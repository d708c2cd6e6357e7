"""What plugins hand to the engine: frozen spec records and the protocols behind them.

A hook returns specs; the engine keeps them in a frozen ``Registry``. All I/O
lives in the async callables a spec points to, never in the hook itself.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from ironflow_core.model import (
    Event,
    FlowDefinition,
    FlowSourceRecord,
    LeaseInfo,
    RunOrigin,
    RunPage,
    RunRecord,
    RunStatus,
    TaskRecord,
)

if TYPE_CHECKING:
    from ironflow_core.context import NodeContext
    from ironflow_core.registry import Registry

NodeRun = Callable[["NodeContext", Any], Awaitable[Mapping[str, Any]]]
"""``async def run(ctx, config) -> outputs``.

``ctx`` is a read-only mapping of the phase snapshot (plus overlays) that also
carries ``ctx.step_name``, ``ctx.interpolate(text)`` and the run's services.
``config`` is an instance of the spec's ``config`` class (structured with
cattrs when the flow is loaded), or the raw JSON dict when ``config`` is None.
Return the output keys; raise ``NodeError`` (or ``NodeFailure`` with an
output) for a controlled failure.
"""


@attrs.frozen
class NodeSpec:
    """A node type.

    Example::

        @attrs.frozen
        class GreetConfig:
            name: str
            output_key: str = "greeting"

        async def greet(ctx, config: GreetConfig) -> dict:
            return {config.output_key: f"Hello, {ctx.interpolate(config.name)}!"}

        NodeSpec(name="greet", run=greet, config=GreetConfig, summary="Say hello")
    """

    name: str
    run: NodeRun
    config: type | None = None
    """An attrs class the Lua table is structured into at load time (None = raw dict)."""
    summary: str = ""
    """One line for ``ironflow nodes`` and ``GET /nodes``."""


@attrs.frozen
class StoreSettings:
    """Everything a store factory may need, resolved from CLI > env > yaml > default."""

    store_dir: str = "data/runs"
    url: str | None = None
    prefix: str | None = None
    ttl_seconds: int | None = None
    env: Mapping[str, str] = attrs.field(factory=dict)


@runtime_checkable
class StateStore(Protocol):
    """Async persistence of runs (semantics.md#stores).

    Every mutation costs O(what changed): an ``upsert_task`` never rewrites the
    whole run. Mutations of one run are serialised so a late writer cannot
    resurrect a deleted run (ST-13).

    Fencing: the writes a run makes while it executes carry its owner's lease
    token (``owner``). A store refuses such a write with ``LeaseLostError``
    when the run's lease no longer names that owner (taken over, reconciled,
    released or deleted), so a process that wakes up after losing its lease
    cannot overwrite the new owner's work. ``owner=None`` is an unfenced
    write (child runs, tools).
    """

    async def create_run(self, record: RunRecord) -> None:
        """Persist a new run with its tasks; ``RunConflictError`` if the id exists."""

    async def set_status(
        self, run_id: str, status: RunStatus, *, at: str | None = None, owner: str | None = None
    ) -> None:
        """Set the run status; the first terminal status also sets ``finished`` (ST-12)."""

    async def reopen_run(self, run_id: str, *, owner: str | None = None) -> None:
        """Resume in place: status back to ``running`` and ``finished`` cleared."""

    async def upsert_tasks(
        self, run_id: str, tasks: Iterable[TaskRecord], *, owner: str | None = None
    ) -> None:
        """Insert or replace task records by name."""

    async def merge_context(
        self, run_id: str, ctx: Mapping[str, Any], *, owner: str | None = None
    ) -> None:
        """``ctx.update(new)``: keys are only added or overwritten."""

    # What a run started from travels with it, beside the record and never in
    # its ``ctx`` (the context stays what upstream leaves): the flow source,
    # content-addressed and stored once per distinct source, and the run's
    # ``RunOrigin`` (flow digest, initial context, sub-flows, recoveries).

    async def save_flow(self, flow: FlowSourceRecord) -> str:
        """Store a flow source under its digest (idempotent); returns the digest."""

    async def load_flow(self, digest: str) -> FlowSourceRecord | None:
        """The stored flow with this digest, or ``None``."""

    async def set_origin(self, run_id: str, origin: RunOrigin, *, owner: str | None = None) -> None:
        """Store (replace) the origin of an existing run."""

    async def get_origin(self, run_id: str) -> RunOrigin | None:
        """The run's origin, ``None`` for a run stored without one (older or foreign runs)."""

    async def get_run(self, run_id: str) -> RunRecord:
        """The full record; ``RunNotFoundError`` when absent."""

    async def list_runs(
        self, *, status: RunStatus | None = None, limit: int = 100, after: str | None = None
    ) -> RunPage:
        """A page of summaries in ST-20 order, strictly after the ``after`` cursor."""

    async def delete_run(self, run_id: str) -> None:
        """Remove the run and its lease; ``RunNotFoundError`` when absent.

        A ``pending``/``running`` run whose owner lease is still live is
        refused with ``RunConflictError("Run '<id>' is still executing")`` (ST-35).
        """

    # Owner leases (ST-50..52). A lease is (owner token, expiry in wall-clock
    # microseconds) per run. The process executing a run holds one and renews
    # it; when that process dies the lease expires and ``ironflow serve``
    # reconciles the run. Leases are independent of the run's other writes.

    async def acquire_lease(self, run_id: str, owner: str, ttl_s: float) -> None:
        """Make ``owner`` the run's owner for ``ttl_s`` seconds from now.

        Taking over an expired lease (or re-taking one's own) is allowed;
        another owner's live lease is a ``RunConflictError``, a missing run
        ``RunNotFoundError``.
        """

    async def renew_lease(self, run_id: str, owner: str, ttl_s: float) -> None:
        """Extend ``owner``'s lease to ``ttl_s`` seconds from now.

        ``RunConflictError`` when ``owner`` no longer holds a live lease: it
        expired, was reconciled or released, was taken by another owner, or
        the run was deleted. The caller must then stop writing the run.
        """

    async def release_lease(self, run_id: str, owner: str) -> None:
        """Drop ``owner``'s lease; a no-op when ``owner`` holds none (idempotent)."""

    async def get_lease(self, run_id: str) -> LeaseInfo | None:
        """The run's lease as stored (possibly expired), ``None`` when it has none."""

    async def reconcile_expired(self, now_micros: int) -> list[str]:
        """Close the runs of dead owners (ST-52); returns the IDs it stalled.

        For every lease that expired at ``now_micros`` (``expires <= now``)
        whose run is still ``pending``/``running``: the run becomes
        ``stalled`` (``finished`` set if unset), its ``running`` tasks
        ``failed`` and other unfinished tasks ``skipped``, each with error
        ``task stopped after execution-owner lease expired``. Every expired
        lease is then removed (also those of finished or deleted runs).
        Runs without a lease are never touched.
        """

    async def aclose(self) -> None:
        """Release connections and files."""


StoreFactory = Callable[[StoreSettings], StateStore]


@attrs.frozen
class StoreSpec:
    """A state store backend, selected by ``IRONFLOW_STORE`` (``json``, ``memory``, ``redis``)."""

    name: str
    open: StoreFactory
    summary: str = ""


@attrs.frozen
class FlowSource:
    """Flow text plus where it came from (``path`` is None for inline sources)."""

    text: str
    path: str | None = None


@attrs.frozen
class LoadOptions:
    registry: Registry
    env: Mapping[str, str] = attrs.field(factory=dict)
    analyze: bool = False
    """Validation mode: also compile string code sources and collect warnings."""
    cancel: tuple[threading.Event, ...] = ()
    """Events that stop Lua evaluation at its next hook (shutdown, a cancelled run)."""


@attrs.frozen
class LoaderSpec:
    """A flow loader, selected by file suffix (``.lua``)."""

    name: str
    suffixes: tuple[str, ...]
    load: Callable[[FlowSource, LoadOptions], FlowDefinition]
    summary: str = ""


class RunObserver:
    """Receives run and step lifecycle events; every method is optional.

    Methods are called synchronously on the engine's trio thread and must not
    block: hand work to a channel if it is slow. An exception is logged and
    ignored (ENG-162). Method names are the event types: ``run_started``,
    ``run_finished``, ``context_updated``, ``task_started``, ``task_succeeded``,
    ``task_failed``, ``task_skipped``, ``task_cancelled``, ``task_retrying``
    (each taking an ``Event``; a child run's events carry ``parent_run_id``
    and ``parent_step``), and the process events ``admission_decided``,
    ``admission_released``, ``schedule_decided``, ``lease_changed`` and
    ``store_failed`` (each taking a ``ProcessEvent``).
    """

    def run_started(self, event: Event) -> None: ...  # pragma: no cover


OutgoingHeaders = Callable[["NodeContext", str], "Mapping[str, str] | None"]
"""``headers(ctx, url) -> {name: value}`` for one outgoing request of a step."""


@attrs.frozen
class HeaderSpec:
    """Headers a plugin adds to the requests nodes send (trace context, tenant tags).

    ``headers(ctx, url)`` is called synchronously for every outgoing request
    of a node that honours this hook (the HTTP nodes do), with the step's
    ``NodeContext`` and the request URL; it returns the headers to add, or
    ``None``. A header the flow set itself is never replaced. It must be quick
    and must not raise (an exception is logged and the request goes on).

    Example::

        def tenant(ctx, url):
            return {"x-tenant": ctx.services.env.get("TENANT", "dev")}

        HeaderSpec(name="tenant", headers=tenant)
    """

    name: str
    headers: OutgoingHeaders


@attrs.frozen
class CommandSpec:
    """A CLI subcommand contributed by a plugin (a ``click.Command``)."""

    name: str
    command: Any


@attrs.frozen
class RouteSpec:
    """HTTP routes a plugin adds to ``ironflow serve`` (Starlette ``Route``/``Mount`` objects).

    They sit behind the API's authentication unless ``public`` is true, which
    is meant for static files only (a page's HTML, scripts and images): a
    browser cannot send the API key when it navigates to a page, and nothing
    public may carry run data. A plugin route never shadows a built-in one.
    """

    routes: tuple[Any, ...]
    public: bool = False
    summary: str = ""


@attrs.frozen
class QueueSettings:
    """What a queue factory may need: the chosen store backend and the Redis settings."""

    store_backend: str = "json"
    url: str | None = None
    prefix: str | None = None
    env: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class QueueSpec:
    """How runs reach an executor, selected by ``IRONFLOW_QUEUE`` (``inline``, ``redis``).

    ``open(settings)`` returns a ``RunQueue`` (``ironflow_core.queues``); it must
    not block. ``shared_store`` says the queue hands runs to other processes,
    so the state store must be one they reach too (not ``json``/``memory``).
    """

    name: str
    open: Callable[[QueueSettings], Any]
    summary: str = ""
    shared_store: bool = True
