"""IronFlow's web dashboard, served by ``ironflow serve`` at ``/ui/`` (see docs/ui.md)."""

from __future__ import annotations

__version__ = "0.1.0"
