"""The frozen registry of everything the plugins provide.

Built once per process from the plugin manager. Each hook implementation is
called on its own so a failing plugin is recorded and skipped; two plugins
that claim one node or store name are an error naming both.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from ironflow_core.errors import PluginConflictError
from ironflow_core.plugins import PluginRecord, load_plugins
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


class NodeTable(Mapping[str, NodeSpec]):
    """Node specs by name; a ``NodeRef`` becomes its ``NodeSpec`` on first lookup.

    Names (for the Lua ``nodes`` table, suggestions and conflicts) are known
    without importing any node module; a flow imports only the modules of the
    nodes it uses, so ``ironflow run`` of a small flow starts quickly.
    """

    def __init__(self, entries: Mapping[str, NodeSpec | NodeRef]) -> None:
        self._entries: dict[str, NodeSpec | NodeRef] = dict(entries)

    def __getitem__(self, name: str) -> NodeSpec:
        entry = self._entries[name]
        if isinstance(entry, NodeRef):
            entry = entry.resolve()
            self._entries[name] = entry
        return entry

    def get(self, name: str, default: Any = None) -> Any:
        """The spec of ``name``, or ``default`` (one dict lookup once resolved: planning calls it per step)."""
        entry = self._entries.get(name)
        if entry is None:
            return default
        if isinstance(entry, NodeRef):
            return self[name]
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


@attrs.frozen
class Registry:
    """Everything the plugins provide, frozen once per process: the engine's single lookup.

    Routes are collected on first use (only ``ironflow serve`` needs them, and
    a route plugin imports Starlette); ``plugins`` collects them first so each
    record's ``provides`` and status are complete.
    """

    nodes: Mapping[str, NodeSpec]
    stores: Mapping[str, StoreSpec]
    loaders: tuple[LoaderSpec, ...]
    observers: tuple[RunObserver, ...]
    commands: tuple[CommandSpec, ...]
    _plugins: tuple[PluginRecord, ...]
    node_providers: Mapping[str, str]
    """node name -> plugin name."""
    outgoing_headers: tuple[HeaderSpec, ...] = ()
    """Providers of headers for the requests nodes send (``NodeContext.outgoing_headers``)."""
    _routes: tuple[RouteSpec, ...] | Callable[[], tuple[RouteSpec, ...]] = ()
    """HTTP routes for ``ironflow serve`` (each plain route wrapped in a non-public
    spec), or the function that collects them on first use."""
    queues: Mapping[str, QueueSpec] = attrs.field(factory=dict)
    _collected: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def routes(self) -> tuple[RouteSpec, ...]:
        """The routes hook's specs, collected when first asked for."""
        if not callable(self._routes):
            return self._routes
        if "routes" not in self._collected:
            self._collected["routes"] = self._routes()
        routes: tuple[RouteSpec, ...] = self._collected["routes"]
        return routes

    @property
    def plugins(self) -> tuple[PluginRecord, ...]:
        """One record per plugin seen, with everything it provides (routes included)."""
        self.routes  # noqa: B018  (complete the records first)
        return self._plugins

    def loader_for(self, path: str) -> LoaderSpec | None:
        """The loader registered for this flow file's suffix, if any."""
        for loader in self.loaders:
            if path.endswith(loader.suffixes):
                return loader
        return None

    def node(self, name: str) -> NodeSpec | None:
        """The spec of node type ``name`` (its module imported now), or None."""
        return self.nodes.get(name)


LoadedPlugins = tuple[Any, list[PluginRecord]]
"""A plugin manager and one record per plugin seen (``plugins.load_plugins``)."""


def _who(record: PluginRecord) -> str:
    version = f" {record.version}" if record.version else ""
    return f"'{record.name}' ({record.distribution}{version})"


def _collect(
    pm: Any, hook_name: str, records: dict[str, PluginRecord], expected: Any
) -> list[tuple[str, Any]]:
    """Call each implementation of a hook separately; failures mark their plugin.

    A hook that raises or returns something other than ``expected`` specs marks
    its plugin ``failed`` and contributes nothing.
    """
    results: list[tuple[str, Any]] = []
    caller = getattr(pm.hook, hook_name)
    for impl in caller.get_hookimpls():  # registration order
        record = records.get(impl.plugin_name)
        if record is not None and record.status != "active":
            continue
        try:
            items = list(impl.function() or ())
            wrong = [item for item in items if not isinstance(item, expected)]
            if wrong:
                raise TypeError(
                    f"returned {type(wrong[0]).__name__}, expected "
                    + " or ".join(t.__name__ for t in _as_tuple(expected))
                    + (" (an object with an on_event(event) method)"
                       if expected is RunObserver else "")
                )
        except Exception as exc:
            if record is not None:
                record.status = "failed"
                record.error = f"{hook_name}: {type(exc).__name__}: {exc}"
            continue
        for item in items:
            results.append((impl.plugin_name, item))
    return results


def _is_route(item: Any) -> bool:
    """A Starlette route or mount, recognised without importing Starlette."""
    return callable(getattr(item, "matches", None)) and hasattr(item, "path")


def _collect_routes(pm: Any, records: dict[str, PluginRecord]) -> list[RouteSpec]:
    """``ironflow_register_routes``: bare routes become non-public specs; junk fails the plugin."""
    specs: list[RouteSpec] = []
    by_plugin: dict[str, list[RouteSpec]] = {}
    for plugin, item in _collect(pm, "ironflow_register_routes", records, object):
        if isinstance(item, RouteSpec):
            spec = item
        elif _is_route(item):
            spec = RouteSpec(routes=(item,))
        else:
            spec = None
        if spec is None or not all(_is_route(r) for r in spec.routes):
            record = records[plugin]
            record.status = "failed"
            record.error = ("ironflow_register_routes: expected Starlette routes or RouteSpec, "
                            f"got {type(item).__name__}")
            by_plugin.pop(plugin, None)
            continue
        if records[plugin].status == "active":
            by_plugin.setdefault(plugin, []).append(spec)
    for plugin, plugin_specs in by_plugin.items():
        for spec in plugin_specs:
            specs.append(spec)
            for route in spec.routes:
                _provide(records[plugin], f"route:{route.path}")
    return specs


def _as_tuple(expected: Any) -> tuple[type, ...]:
    return expected if isinstance(expected, tuple) else (expected,)


def build_registry(
    env: Mapping[str, str] | None = None,
    *,
    builtins: bool = True,
    entry_points: bool = True,
    extra: Iterable[tuple[str, Any]] = (),
    plugins: LoadedPlugins | None = None,
) -> Registry:
    """Discover plugins (or take the ones already ``plugins``-loaded) and freeze what they provide."""
    env = os.environ if env is None else env
    if plugins is None:
        plugins = load_plugins(env, builtins=builtins, entry_points=entry_points, extra=extra)
    pm, record_list = plugins
    records = {r.name: r for r in record_list}

    nodes, providers = _collect_named(pm, "ironflow_register_nodes", records,
                                      (NodeSpec, NodeRef), "Node", "node")
    stores, _ = _collect_named(pm, "ironflow_register_stores", records, StoreSpec,
                               "State store", "store")

    loaders: list[LoaderSpec] = []
    for plugin, spec in _collect(pm, "ironflow_register_loaders", records, LoaderSpec):
        loaders.append(spec)
        _provide(records[plugin], f"loader:{spec.name}")

    observers = []
    for plugin, observer in _collect(pm, "ironflow_register_observers", records, RunObserver):
        observers.append(observer)
        _provide(records[plugin], f"observer:{type(observer).__name__}")

    commands = collect_commands(plugins)

    header_specs = []
    for plugin, spec in _collect(pm, "ironflow_register_outgoing_headers", records, HeaderSpec):
        header_specs.append(spec)
        _provide(records[plugin], f"headers:{spec.name}")

    queues, _ = _collect_named(pm, "ironflow_register_queues", records, QueueSpec,
                               "Queue", "queue")

    return Registry(
        queues=queues,
        outgoing_headers=tuple(header_specs),
        nodes=NodeTable(dict(sorted(nodes.items()))),
        stores=stores,
        loaders=tuple(loaders),
        observers=tuple(observers),
        commands=commands,
        plugins=tuple(record_list),
        node_providers=providers,
        routes=lambda: tuple(_collect_routes(pm, records)),
    )


def collect_commands(plugins: LoadedPlugins) -> tuple[CommandSpec, ...]:
    """Only the commands hook: what ``ironflow --help`` needs, without nodes or stores."""
    pm, record_list = plugins
    records = {r.name: r for r in record_list}
    commands = []
    for plugin, command in _collect(pm, "ironflow_register_commands", records, CommandSpec):
        commands.append(command)
        _provide(records[plugin], f"command:{command.name}")
    return tuple(commands)


def _provide(record: PluginRecord, item: str) -> None:
    """Note ``item`` in the plugin's ``provides`` once (a hook may be asked twice)."""
    if item not in record.provides:
        record.provides.append(item)


def _collect_named(
    pm: Any, hook_name: str, records: dict[str, PluginRecord], expected: type | tuple[type, ...],
    what: str,
    tag: str,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Specs selected by name (nodes, stores, queues) and the plugin providing each.

    Two plugins claiming one name is an error that names both and says how to
    disable one; each spec shows in its plugin's ``provides`` as ``<tag>:<name>``.
    """
    specs: dict[str, Any] = {}
    providers: dict[str, str] = {}
    for plugin, spec in _collect(pm, hook_name, records, expected):
        if spec.name in specs:
            first, second = records[providers[spec.name]], records[plugin]
            raise PluginConflictError(
                f"{what} '{spec.name}' is registered by two plugins: {_who(first)} and "
                f"{_who(second)}. Uninstall one, or disable it with "
                f"IRONFLOW_DISABLED_PLUGINS={second.name}"
            )
        specs[spec.name] = spec
        providers[spec.name] = plugin
        _provide(records[plugin], f"{tag}:{spec.name}")
    return specs, providers


_default: Registry | None = None


def default_registry(plugins: LoadedPlugins | None = None) -> Registry:
    """The process-wide registry, built on first use from ``os.environ``.

    ``plugins`` hands over plugins the caller already loaded (the CLI loads
    them once for its commands), so entry points are not scanned twice.
    """
    global _default
    if _default is None:
        _default = build_registry(plugins=plugins)
    return _default
