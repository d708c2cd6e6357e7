"""``${ctx...}`` interpolation (CONTRACT §3). Placeholder until the grammar lands."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def interpolate(template: str, ctx: Mapping[str, Any]) -> str:
    raise NotImplementedError
