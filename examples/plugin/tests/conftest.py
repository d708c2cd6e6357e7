"""Opt in to IronFlow's test fixtures and register this distribution's plugin."""

from __future__ import annotations

import pytest

from ironflow_nodes_example import plugin

pytest_plugins = ["ironflow_core.testing"]


@pytest.fixture
def ironflow_plugins():
    """The isolated test registry holds the core's built-ins plus our plugin."""
    return [plugin]
