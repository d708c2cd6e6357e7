"""What a node sees when it runs: the phase snapshot as a read-only mapping.

The snapshot is shared by every step of a phase and never copied per step
(ENG-30); overlays (webhook headers, the recovery ``_error_*`` keys) are
layered on top without touching it (ENG-31).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ironflow_core.interpolate import interpolate

if TYPE_CHECKING:
    from ironflow_core.services import RunServices

log = logging.getLogger("ironflow.engine")


class NodeContext(Mapping[str, Any]):
    """Read-only view of the context for one step invocation."""

    __slots__ = ("_data", "_overlay", "node_type", "raw_config", "services", "step_name")

    def __init__(
        self,
        data: Mapping[str, Any],
        *,
        step_name: str,
        node_type: str,
        services: RunServices,
        raw_config: Mapping[str, Any] | None = None,
        overlay: Mapping[str, Any] | None = None,
    ) -> None:
        self._data = data
        self._overlay = overlay or None
        self.step_name = step_name
        self.node_type = node_type
        self.services = services
        self.raw_config = raw_config if raw_config is not None else {}

    def __getitem__(self, key: str) -> Any:
        if self._overlay is not None and key in self._overlay:
            return self._overlay[key]
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return (self._overlay is not None and key in self._overlay) or key in self._data

    def __iter__(self) -> Iterator[str]:
        if self._overlay is None:
            return iter(self._data)
        return iter({**self._data, **self._overlay})

    def __len__(self) -> int:
        if self._overlay is None:
            return len(self._data)
        return len({**self._data, **self._overlay})

    def to_dict(self) -> dict[str, Any]:
        """A shallow copy with overlays applied (for Lua conversion, child runs)."""
        if self._overlay is None:
            return dict(self._data)
        return {**self._data, **self._overlay}

    @property
    def run_id(self) -> str:
        """The ID of the run the step belongs to."""
        return self.services.run_id

    def outgoing_headers(self, url: str) -> list[tuple[str, str]]:
        """Headers plugins add to a request this step sends (``ironflow_register_outgoing_headers``).

        A provider that raises or returns something other than string pairs
        is logged and skipped: it never fails the step.
        """
        result: list[tuple[str, str]] = []
        for spec in self.services.registry.outgoing_headers:
            try:
                headers = spec.headers(self, url)
                for name, value in (headers or {}).items():
                    if isinstance(name, str) and isinstance(value, str):
                        result.append((name, value))
            except Exception:
                log.warning("outgoing header provider '%s' failed", spec.name, exc_info=True)
        return result

    def interpolate(self, template: str) -> str:
        """Render ``${ctx...}`` placeholders against this context (semantics.md#interpolation)."""
        return interpolate(template, self)
