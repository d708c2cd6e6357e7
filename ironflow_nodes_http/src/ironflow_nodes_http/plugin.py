"""Entry point of ironflow-nodes-http (group `ironflow`, name `nodes-http`)."""

from __future__ import annotations

from ironflow_core import hookimpl
