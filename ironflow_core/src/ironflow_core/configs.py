"""Structuring a step's JSON config into its node's attrs config class.

One cattrs converter, configured once. Primitives are strict (a Lua number is
not silently a string, ``"false"`` is not ``True``); a Lua integer is accepted
where a float is expected and an integral float where an integer is. Keys the
class does not declare are ignored, as upstream nodes ignore them, and keys
starting with ``_`` (``_step_name``) never reach the class. Errors come back
as ``<what> @ $.path`` lines via ``cattrs.transform_error``.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
import cattrs.v
from cattrs.strategies import configure_union_passthrough


class ConfigFieldError(Exception):
    """A config did not fit its class; ``problems`` are ``"<what> @ $.path"`` strings."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class ConfigTypeError(TypeError):
    """Raised by our strict hooks; its message is shown as is."""


def _format(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, ConfigTypeError):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field is missing"
    return cattrs.v.format_exception(exc, type_)


def _strict_str(value: Any, _type: Any) -> str:
    if not isinstance(value, str):
        raise ConfigTypeError(f"expected a string, got {_json_type(value)}")
    return value


def _strict_bool(value: Any, _type: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigTypeError(f"expected a boolean, got {_json_type(value)}")
    return value


def _strict_int(value: Any, _type: Any) -> int:
    if isinstance(value, bool):
        raise ConfigTypeError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    raise ConfigTypeError(f"expected an integer, got {_json_type(value)}")


def _strict_float(value: Any, _type: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigTypeError(f"expected a number, got {_json_type(value)}")
    return float(value) if isinstance(value, int) else value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=False)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(typing.Any, lambda value, _t: value)
    configure_union_passthrough(
        typing.Union[str, int, float, bool, None], converter  # noqa: UP007
    )
    return converter


converter = make_converter()


def structure_config(config_class: type | None, raw: Mapping[str, Any]) -> Any:
    """Return the structured config, or the raw dict when the node takes none."""
    if config_class is None:
        return dict(raw)
    data = {k: v for k, v in raw.items() if not k.startswith("_")}
    try:
        return converter.structure(data, config_class)
    except Exception as exc:  # cattrs raises ClassValidationError / ExceptionGroup
        if isinstance(exc, (cattrs.BaseValidationError,)):
            problems = cattrs.transform_error(exc, path="$", format_exception=_format)
        else:
            problems = [f"{exc} @ $"]
        raise ConfigFieldError(problems) from None


RUN_REQUIRED = "ironflow.run_required"
"""attrs field metadata: the node fails at run time without this field."""


def run_required(default: Any = None) -> Any:
    """A field the node cannot run without, though a missing one only fails at run time.

    Upstream reports these when the step runs (``template_render requires
    'output_key'``), and ``run`` keeps doing so; ``validate`` reports the
    missing field before anything runs.
    """
    return attrs.field(default=default, metadata={RUN_REQUIRED: True})


def _declared_keys(config_class: type) -> dict[str, Any]:
    return {(f.alias or f.name): f for f in attrs.fields(config_class)}


def missing_required(config_class: type | None, raw: Mapping[str, Any]) -> list[str]:
    """Fields marked ``run_required`` that the step's config leaves out (or sets to null)."""
    if config_class is None or not attrs.has(config_class):
        return []
    return [key for key, field in _declared_keys(config_class).items()
            if field.metadata.get(RUN_REQUIRED) and raw.get(key) is None]


def unknown_keys(config_class: type | None, raw: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """Keys the config class does not declare, each with the nearest declared name."""
    if config_class is None or not attrs.has(config_class):
        return []
    import difflib

    declared = list(_declared_keys(config_class))
    found: list[tuple[str, str | None]] = []
    for key in raw:
        if key.startswith("_") or key in declared:
            continue
        close = difflib.get_close_matches(key, declared, n=1, cutoff=0.6)
        found.append((key, close[0] if close else None))
    return found
