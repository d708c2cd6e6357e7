"""An example third-party IronFlow plugin: text nodes ``slugify`` and ``word_count``.

It is shaped exactly like a distribution published on PyPI: its own
pyproject, an ``ironflow`` entry point naming :mod:`ironflow_nodes_example.plugin`,
and tests that use :mod:`ironflow_core.testing`.
"""

from __future__ import annotations

__version__ = "0.1.0"
