"""What plugins hand to the engine: frozen spec records and the protocols behind them.

A hook returns specs; the engine keeps them in a frozen ``Registry``. All I/O
lives in the async callables a spec points to, never in the hook itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from ironflow_core.model import (
    Event,
    FlowDefinition,
    FlowSourceRecord,
    LeaseInfo,
    ProcessEvent,
    RunOrigin,
    RunPage,
    RunRecord,
    RunStatus,
    TaskRecord,
)


class NodeContext(Protocol):
    """What a node's ``run`` receives as ``ctx``: the phase snapshot and the step's place.

    A read-only mapping of the context (with overlays) that also names the
    step and reaches the run's services. The engine's implementation is
    ``ironflow_core.context.NodeContext``; this protocol is what a node may
    rely on, without importing the engine.
    """

    step_name: str
    node_type: str
    raw_config: Mapping[str, Any]
    services: Any
    """``ironflow_core.services.RunServices``."""

    def __getitem__(self, key: str) -> Any: ...  # pragma: no cover

    def __contains__(self, key: object) -> bool: ...  # pragma: no cover

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover
        """A shallow copy with overlays applied."""

    @property
    def run_id(self) -> str:  # pragma: no cover
        """The ID of the run the step belongs to."""

    def interpolate(self, template: str) -> str:  # pragma: no cover
        """Render ``${ctx...}`` placeholders against this context."""

    def outgoing_headers(self, url: str) -> list[tuple[str, str]]:  # pragma: no cover
        """Headers plugins add to a request this step sends."""


NodeRun = Callable[[Any, Any], Awaitable[Mapping[str, Any]]]
"""``async def run(ctx, config) -> outputs``.

``ctx`` is typed ``Any`` here on purpose: a node annotates it with the engine's
``ironflow_core.NodeContext`` class, and a callable taking that class is not a
callable taking the :class:`NodeContext` protocol (parameters are
contravariant), so a narrower type would reject every correctly typed node.

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


def plugin_setting(
    env: Mapping[str, str], config: Mapping[str, Any], env_name: str, yaml_key: str
) -> Any:
    """A setting from the environment (an empty value counts as unset), else ``ironflow.yaml``."""
    value = env.get(env_name)
    if value is not None and value != "":
        return value
    return config.get(yaml_key)


@attrs.frozen
class NodeRef:
    """A node type named now and imported on first use: a plugin's cheap stand-in for a ``NodeSpec``.

    A hook may return ``NodeRef``s instead of ``NodeSpec``s so that listing the
    names costs no import: ``load()`` runs (once) when a flow first uses the
    node, or ``ironflow nodes`` lists it, and returns the ``NodeSpec`` named
    ``name``. A ``load`` that fails, or returns another node, is a ``PluginError``.

    Example::

        def _greet() -> NodeSpec:
            from greet_plugin.nodes import GREET   # heavy imports happen here
            return GREET

        NodeRef(name="greet", load=_greet)
    """

    name: str
    load: Callable[[], NodeSpec]

    def resolve(self) -> NodeSpec:
        """Call ``load`` and check that it returned this node's ``NodeSpec``."""
        from ironflow_core.errors import PluginError

        try:
            spec = self.load()
        except Exception as exc:
            raise PluginError(f"Node '{self.name}' could not be loaded: "
                              f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(spec, NodeSpec) or spec.name != self.name:
            raise PluginError(f"Node '{self.name}' could not be loaded: its loader returned "
                              f"{spec!r} instead of NodeSpec(name='{self.name}', ...)")
        return spec


def node_from_module(module: str, name: str) -> NodeSpec:
    """The ``NodeSpec`` called ``name`` in ``module.NODES`` (a loader for ``NodeRef``)."""
    import importlib

    for spec in importlib.import_module(module).NODES:
        if spec.name == name:
            return spec
    raise LookupError(f"{module}.NODES has no node '{name}'")


@attrs.frozen
class StoreSettings:
    """What every store factory gets; a store reads its own options with :meth:`option`.

    ``store_dir`` is resolved by the core (``--store-dir`` > ``IRONFLOW_STORE_DIR``
    > ``store_dir`` > ``data/runs``) for stores that keep files. ``env`` and
    ``config`` (the parsed ``ironflow.yaml``) hold everything else, so a store
    plugin owns its settings, their names and their errors.
    """

    store_dir: str = "data/runs"
    env: Mapping[str, str] = attrs.field(factory=dict)
    config: Mapping[str, Any] = attrs.field(factory=dict)

    def option(self, env_name: str, yaml_key: str) -> Any:
        """One of the store's own settings: ``env_name`` if set and non-empty, else ``yaml_key``."""
        return plugin_setting(self.env, self.config, env_name, yaml_key)


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


class CancelFlag(Protocol):
    """Something Lua's hook asks whether to stop: a ``threading.Event``, or trio's request.

    ``lua.state.TRIO_CANCEL`` is the flag of a trio worker thread (set when
    the task waiting for the thread is cancelled).
    """

    def is_set(self) -> bool:  # pragma: no cover
        """True once the work must stop."""
        ...


@attrs.frozen
class LoadOptions:
    """What a loader gets besides the source: the node table, the environment, the mode.

    A loader needs the node names only (the Lua DSL makes a factory per
    node); it does not check node types or configs: ``plan_flow`` does.
    """

    nodes: Mapping[str, NodeSpec] = attrs.field(factory=dict)
    env: Mapping[str, str] = attrs.field(factory=dict)
    analyze: bool = False
    """Validation mode: also compile string code sources and collect warnings."""
    cancel: tuple[CancelFlag, ...] = ()
    """Flags that stop Lua evaluation at its next hook (shutdown, a cancelled run)."""


@attrs.frozen
class LoaderSpec:
    """A flow loader, selected by file suffix (``.lua``)."""

    name: str
    suffixes: tuple[str, ...]
    load: Callable[[FlowSource, LoadOptions], FlowDefinition]
    summary: str = ""


@runtime_checkable
class RunObserver(Protocol):
    """What receives the lifecycle events of runs and of the process: metrics, tracing, progress.

    One method, ``on_event``, gets every event. Run and step events are
    ``Event``s whose ``type`` is an ``EventType`` (``run_started``,
    ``run_finished``, ``run_resumed``, ``context_updated``, ``task_started``,
    ``task_succeeded``, ``task_failed``, ``task_skipped``, ``task_cancelled``,
    ``task_retrying``; a child run's events carry ``parent_run_id`` and
    ``parent_step``). Process events are ``ProcessEvent``s whose ``type`` is a
    ``ProcessEventType`` (``admission_decided``, ``admission_released``,
    ``schedule_decided``, ``lease_changed``, ``store_failed``). An observer
    ignores the types it does not care about.

    It is called synchronously on the engine's trio thread and must not block:
    hand slow work to a channel. An exception is logged and ignored (ENG-162).
    Registration (``ironflow_register_observers``) checks that each object has
    ``on_event``; one without it fails its plugin with a message saying so.
    """

    def on_event(self, event: Event | ProcessEvent) -> None:
        """Handle one run or process event (look at ``event.type``)."""


OutgoingHeaders = Callable[[NodeContext, str], "Mapping[str, str] | None"]
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
    """What every queue factory gets: the chosen store backend, the environment and the
    ``ironflow.yaml`` settings; a queue reads its own options with :meth:`option`."""

    store_backend: str = "json"
    env: Mapping[str, str] = attrs.field(factory=dict)
    config: Mapping[str, Any] = attrs.field(factory=dict)

    def option(self, env_name: str, yaml_key: str) -> Any:
        """One of the queue's own settings: ``env_name`` if set and non-empty, else ``yaml_key``."""
        return plugin_setting(self.env, self.config, env_name, yaml_key)


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
