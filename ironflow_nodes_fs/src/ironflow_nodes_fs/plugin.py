"""Entry point of ironflow-nodes-fs (group `ironflow`, name `nodes-fs`)."""

from __future__ import annotations

from ironflow_core import hookimpl
