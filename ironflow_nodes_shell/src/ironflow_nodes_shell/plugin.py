"""Entry point of ironflow-nodes-shell (group `ironflow`, name `nodes-shell`)."""

from __future__ import annotations

from ironflow_core import hookimpl
