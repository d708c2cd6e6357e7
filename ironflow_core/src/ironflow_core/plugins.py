"""Discovering plugins: the core's built-ins first, then entry points.

Every plugin is loaded in isolation: one that fails to import or whose hook
raises is recorded as ``failed`` (and shown by ``ironflow plugins``), never
fatal. ``IRONFLOW_DISABLED_PLUGINS`` (comma list of plugin names) skips
plugins before they are imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import pluggy

from ironflow_core import hookspecs
from ironflow_core.settings import DISABLED_PLUGINS

ENTRY_POINT_GROUP = "ironflow"

BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("core.lua", "ironflow_core.lua.plugin"),
    ("core.stores", "ironflow_core.stores.plugin"),
    ("core.nodes", "ironflow_core.nodes.plugin"),
    ("core.queues", "ironflow_core.queues.plugin"),
    ("core.cli", "ironflow_core.cli.plugin"),
)
"""(plugin name, module) of the core's own plugins, registered like any other."""

CORE_DISTRIBUTION = "ironflow-core"


@attrs.define
class PluginRecord:
    """What is known about one plugin, for ``ironflow plugins``."""

    name: str
    distribution: str
    version: str
    status: str = "active"  # active | failed | disabled
    error: str | None = None
    provides: list[str] = attrs.field(factory=list)
    module: Any = None

    def to_json(self) -> dict[str, Any]:
        """The record as ``ironflow plugins --format json`` and ``GET /plugins`` show it."""
        data: dict[str, Any] = {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "provides": list(self.provides),
        }
        if self.error:
            data["error"] = self.error
        return data


def disabled_plugins(env: Mapping[str, str]) -> frozenset[str]:
    """The plugin names in ``IRONFLOW_DISABLED_PLUGINS`` (skipped before import)."""
    names: frozenset[str] = DISABLED_PLUGINS.read(env)
    return names


def _core_version() -> str:
    from ironflow_core._version import __version__

    return __version__


def _describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def load_plugins(
    env: Mapping[str, str],
    *,
    builtins: bool = True,
    entry_points: bool = True,
    extra: Iterable[tuple[str, Any]] = (),
) -> tuple[pluggy.PluginManager, list[PluginRecord]]:
    """Build a plugin manager; returns it with one record per plugin seen."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    disabled = disabled_plugins(env)
    records: list[PluginRecord] = []

    def add(name: str, dist: str, version: str, load: Any) -> None:
        record = PluginRecord(name=name, distribution=dist, version=version)
        records.append(record)
        if name in disabled:
            record.status = "disabled"
            return
        try:
            module = load()
            pm.register(module, name=name)
            record.module = module
        except Exception as exc:  # a broken plugin must never break the CLI
            record.status = "failed"
            record.error = _describe_error(exc)
            return
        try:
            pm.check_pending()  # a misspelled hook name fails this plugin only
        except pluggy.PluginValidationError as exc:
            pm.unregister(name=name)
            record.status = "failed"
            record.error = str(exc)

    if builtins:
        version = _core_version()
        for name, module_name in BUILTIN_PLUGINS:
            add(name, CORE_DISTRIBUTION, version,
                lambda module_name=module_name: importlib.import_module(module_name))
    for name, obj in extra:
        add(name, "(in-process)", "", lambda obj=obj: obj)
    if entry_points:
        from ironflow_core.entrypoints import entry_points as _entry_points

        seen: set[str] = set()
        for ep in sorted(_entry_points(ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in seen:
                continue
            seen.add(ep.name)
            dist = ep.dist
            add(ep.name, dist.name if dist else "?", dist.version if dist else "", ep.load)
    return pm, records
