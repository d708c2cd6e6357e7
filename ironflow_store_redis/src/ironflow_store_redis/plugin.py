"""Entry point of ironflow-store-redis (group `ironflow`, name `store-redis`)."""

from __future__ import annotations

from ironflow_core import hookimpl
