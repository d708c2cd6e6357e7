"""The plugin contract: every hook a plugin may implement.

A plugin is a module (or object) with functions decorated by
``ironflow_core.hookimpl``. Third parties publish it through the entry-point
group ``ironflow``; the value names the module, the entry-point name is the
plugin name::

    # pyproject.toml of ironflow-nodes-foo
    [project.entry-points.ironflow]
    nodes-foo = "ironflow_nodes_foo.plugin"

Hooks are synchronous and declarative: they return frozen spec records and do
no I/O. Heavy imports belong inside the callables the specs point to, so that
``ironflow --help`` stays fast. An implementation may accept fewer arguments
than the spec lists (pluggy passes only what it asks for), which is how hooks
grow without breaking plugins. The core registers its own nodes, stores and
loader through these very hooks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pluggy

from ironflow_core.specs import (
    CommandSpec,
    HeaderSpec,
    LoaderSpec,
    NodeRef,
    NodeSpec,
    QueueSpec,
    RouteSpec,
    RunObserver,
    StoreSpec,
)

PROJECT = "ironflow"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ironflow_register_nodes() -> Iterable[NodeSpec | NodeRef]:  # type: ignore[empty-body]
    """Return the node types this plugin provides.

    Called once when the registry is built. Each ``NodeSpec`` names the node
    (``nodes.<name>{...}`` in Lua), its attrs config class (checked when the
    flow loads, so ``ironflow validate`` reports a wrong field with its path),
    the ``async def run(ctx, config) -> dict`` coroutine and a one-line summary.
    Two plugins returning the same name is an error naming both. A
    ``NodeRef(name, load)`` registers the name now and imports the node on
    first use (``load()`` returns its ``NodeSpec``), so listing names is free.

    Example::

        @hookimpl
        def ironflow_register_nodes():
            return [NodeSpec(name="greet", run=greet, config=GreetConfig,
                             summary="Say hello")]
    """


@hookspec
def ironflow_register_stores() -> Iterable[StoreSpec]:  # type: ignore[empty-body]
    """Return the state-store backends this plugin provides.

    ``IRONFLOW_STORE`` (or ``store_backend`` in ironflow.yaml) selects one by
    ``StoreSpec.name``. ``StoreSpec.open(settings)`` builds the store; it must
    not do blocking I/O, connections open lazily on first use.

    Example::

        @hookimpl
        def ironflow_register_stores():
            return [StoreSpec(name="redis", open=open_redis_store,
                              summary="Runs in Redis")]
    """


@hookspec
def ironflow_register_loaders() -> Iterable[LoaderSpec]:  # type: ignore[empty-body]
    """Return flow loaders, selected by the flow file's suffix.

    ``LoaderSpec.load(source, options)`` turns flow text into a raw
    ``FlowDefinition`` (``plan_flow`` checks it); it raises ``FlowLoadError``
    naming the file and line when the source cannot be read or evaluated.

    Example::

        @hookimpl
        def ironflow_register_loaders():
            return [LoaderSpec(name="lua", suffixes=(".lua",), load=load_lua_flow)]
    """


@hookspec
def ironflow_register_observers() -> Iterable[RunObserver]:  # type: ignore[empty-body]
    """Return observers that receive every run's lifecycle events.

    An observer is a ``RunObserver``: one method, ``on_event(event)``, that
    receives every run event (``Event``) and process event (``ProcessEvent``)
    and looks at ``event.type``. It is called on the engine's thread and must
    return quickly; exceptions are logged and ignored. An object without
    ``on_event`` fails its plugin, with a message saying what is missing.

    Example::

        class Counter:
            def __init__(self): self.failed = 0
            def on_event(self, event):
                if event.type == "task_failed":
                    self.failed += 1

        @hookimpl
        def ironflow_register_observers():
            return [Counter()]
    """


@hookspec
def ironflow_register_commands() -> Iterable[CommandSpec]:  # type: ignore[empty-body]
    """Return extra ``ironflow`` subcommands (click commands).

    Example::

        @click.command()
        def hello(): click.echo("hi")

        @hookimpl
        def ironflow_register_commands():
            return [CommandSpec(name="hello", command=hello)]
    """


@hookspec
def ironflow_register_queues() -> Iterable[QueueSpec]:  # type: ignore[empty-body]
    """Return run queues: how an accepted run reaches the process that executes it.

    ``IRONFLOW_QUEUE`` (or ``queue_backend`` in ironflow.yaml) selects one by
    ``QueueSpec.name``; the core's ``inline`` (the accepting process executes
    the run) is the default. ``QueueSpec.open(settings)`` builds the queue
    without blocking I/O.

    Example::

        @hookimpl
        def ironflow_register_queues():
            return [QueueSpec(name="redis", open=open_redis_queue,
                              summary="Redis Streams consumer group")]
    """


@hookspec
def ironflow_register_outgoing_headers() -> Iterable[HeaderSpec]:  # type: ignore[empty-body]
    """Return header providers for the requests nodes send to other services.

    Each ``HeaderSpec.headers(ctx, url)`` is asked, per outgoing request, for
    headers to add (``ctx`` is the step's ``NodeContext``). Nodes collect them
    with ``ctx.outgoing_headers(url)``; the HTTP nodes do, and a header the
    flow configured itself always wins. Tracing uses it for ``traceparent``.

    Example::

        @hookimpl
        def ironflow_register_outgoing_headers():
            return [HeaderSpec(name="trace", headers=lambda ctx, url: {"x-run": ctx.run_id})]
    """


@hookspec
def ironflow_register_routes() -> Iterable[RouteSpec | Any]:  # type: ignore[empty-body]
    """Return HTTP routes for ``ironflow serve``: Starlette routes/mounts or ``RouteSpec``s.

    A bare ``Route``/``Mount`` is served behind the API key like the built-in
    endpoints; wrap static files in ``RouteSpec(routes=(...), public=True)`` to
    serve them without it. Built-in paths always win over plugin paths. Import
    Starlette inside the hook function, not at module level, so that importing
    the plugin module stays cheap.

    Example::

        @hookimpl
        def ironflow_register_routes():
            from starlette.routing import Route
            return [Route("/hello", hello)]
    """
