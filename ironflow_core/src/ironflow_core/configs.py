"""Structuring a step's JSON config into its node's attrs config class.

One cattrs converter, configured once, with one prebuilt structure function
per config class. Primitives are strict (a Lua number is not silently a
string, ``"false"`` is not ``True``); a Lua integer is accepted where a float
is expected and an integral float where an integer is. Keys the class does not
declare are ignored, as upstream nodes ignore them, and keys starting with
``_`` (``_step_name``) never reach the class. Errors come back as
``<what> @ $.path`` lines via ``cattrs.transform_error``.

Two field wrappers say what the DSL needs beyond a plain type:

* ``lenient(default)``: upstream reads the field with ``as_str().unwrap_or``
  (or the like), so a value of the wrong type means the default; ``validate``
  warns about it;
* ``run_required()``: the node cannot run without the field, but a missing
  one fails the step when it runs (upstream's wording), and ``validate``
  reports it as an error. ``run_required(lenient=True)`` also counts a value
  of the wrong type as missing (NODE-4).

Strings that are interpolated when the step runs are typed ``Interpolated``.
"""

from __future__ import annotations

import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import attrs
import cattrs
import cattrs.gen
import cattrs.v
from cattrs.strategies import configure_union_passthrough

Interpolated = Annotated[str, "interpolated against the step's context when it runs"]
"""A string the node renders with ``ctx.interpolate`` when the step runs."""

LENIENT = "ironflow.lenient"
"""attrs field metadata: a value of the wrong type means the field's default."""

RUN_REQUIRED = "ironflow.run_required"
"""attrs field metadata: the node fails at run time without this field."""


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


_Check = Callable[[Any], bool]


def _fits(converter: cattrs.Converter, type_: Any) -> _Check:
    """A cheap test that ``type_`` structures a value; the common shapes skip cattrs."""
    if typing.get_origin(type_) is Annotated:
        type_ = typing.get_args(type_)[0]
    simple: dict[Any, _Check] = {
        str: lambda v: isinstance(v, str),
        bool: lambda v: isinstance(v, bool),
        int: lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, float) and math.isfinite(v) and v == int(v)),
        dict: lambda v: isinstance(v, dict),
        list: lambda v: isinstance(v, list),
    }
    if type_ in simple:
        return simple[type_]
    origin, args = typing.get_origin(type_), typing.get_args(type_)
    if origin in (dict, list) and all(a is Any for a in args[1 if origin is dict else 0:]):
        return simple[origin]  # dict[str, JsonValue], list[JsonValue]: the shape is the check
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        inner = _fits(converter, rest[0] if len(rest) == 1 else typing.Union[tuple(rest)])  # noqa: UP007
        return lambda v: v is None or inner(v)

    def structures(value: Any) -> bool:
        try:
            converter.structure(value, type_)
        except Exception:
            return False
        return True

    return structures


@attrs.frozen
class _Schema:
    """What the converter and ``validate`` need to know of a config class."""

    declared: frozenset[str]
    required: tuple[str, ...]
    """``run_required`` keys, in declaration order."""
    lenient: dict[str, tuple[Any, _Check]]
    """Lenient key -> (default, fits), in declaration order."""
    private_keys: bool
    """Some declared key starts with ``_``: such keys of a raw config must be dropped first."""


@functools.cache
def _schema(converter: cattrs.Converter, cls: type) -> _Schema:
    """The class's keys, required keys and lenient checks, worked out once per class."""
    attrs.resolve_types(cls)
    fields = {(f.alias or f.name): f for f in attrs.fields(cls)}
    return _Schema(
        declared=frozenset(fields),
        required=tuple(k for k, f in fields.items() if f.metadata.get(RUN_REQUIRED)),
        lenient={k: (f.default, _fits(converter, f.type))
                 for k, f in fields.items() if f.metadata.get(LENIENT)},
        private_keys=any(k.startswith("_") for k in fields),
    )


def _config_hook(converter: cattrs.Converter) -> Callable[[type], Any]:
    """Build a class's structure function once; each lenient field gets a keep-or-default hook.

    The hook runs only for keys the step sets, inside the generated function,
    so a lenient field costs one type check and no extra pass over the config.
    """

    def factory(cls: type) -> Any:
        fields = {(f.alias or f.name): f for f in attrs.fields(cls)}
        overrides: dict[str, Any] = {
            fields[key].name: cattrs.gen.override(
                struct_hook=_keep_or_default(converter, fields[key].type, fits, default))
            for key, (default, fits) in _schema(converter, cls).lenient.items()
        }
        return cattrs.gen.make_dict_structure_fn(cls, converter, **overrides)

    return factory


def _keep_or_default(converter: cattrs.Converter, type_: Any, fits: _Check,
                     default: Any) -> Callable[[Any, Any], Any]:
    """A lenient field's hook: the value (structured) when it fits, else the default.

    ``str`` and ``bool`` fields (optional or ``Interpolated`` too) keep a fitting
    value as it is, which is what their strict hooks would return anyway.
    """
    bare = [a for a in (typing.get_args(type_) if typing.get_origin(type_) in (
        typing.Union, types.UnionType) else (type_,)) if a is not type(None)]
    bare = [typing.get_args(a)[0] if typing.get_origin(a) is Annotated else a for a in bare]
    as_is = all(a in (str, bool) for a in bare)
    if as_is:
        def keep(value: Any, _type: Any) -> Any:
            return value if fits(value) else default

        return keep

    def structure(value: Any, _type: Any) -> Any:
        return converter.structure(value, type_) if fits(value) else default

    return structure


def make_converter() -> cattrs.Converter:
    """The configured converter; ``converter`` below is the one every caller shares."""
    converter = cattrs.Converter(forbid_extra_keys=False)
    converter.register_structure_hook_factory(attrs.has, _config_hook(converter))
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(typing.Any, lambda value, _t: value)
    configure_union_passthrough(
        typing.Union[str, int, float, bool, None], converter  # noqa: UP007
    )
    converter.register_structure_hook_factory(_is_optional, _optional_hook(converter))
    return converter


def _is_optional(type_: Any) -> bool:
    """``X | None`` with a single ``X``."""
    if typing.get_origin(type_) not in (typing.Union, types.UnionType):
        return False
    args = typing.get_args(type_)
    return len(args) == 2 and type(None) in args


def _optional_hook(converter: cattrs.Converter) -> Callable[[Any], Any]:
    """``X | None`` with ``X``'s hook looked up once, not dispatched for every value."""

    def factory(type_: Any) -> Any:
        inner = next(a for a in typing.get_args(type_) if a is not type(None))
        hook = converter.get_structure_hook(inner)

        def structure(value: Any, _type: Any) -> Any:
            return None if value is None else hook(value, inner)

        return structure

    return factory


converter = make_converter()

_structurers: dict[type, Callable[[Mapping[str, Any], type], Any]] = {}
"""Config class -> its prebuilt structure function (no dispatch per step)."""


def _structurer(config_class: type) -> Callable[[Mapping[str, Any], type], Any]:
    fn = _structurers.get(config_class)
    if fn is None:
        hook = converter.get_structure_hook(config_class)
        if attrs.has(config_class) and not _schema(converter, config_class).private_keys:
            # The generated function reads declared keys only, so ``_step_name``
            # and friends need not be filtered out first.
            fn = hook
        else:
            def fn(raw: Mapping[str, Any], cls: type) -> Any:
                return hook({k: v for k, v in raw.items() if not k.startswith("_")}, cls)
        _structurers[config_class] = fn
    return fn


def structure_config(config_class: type | None, raw: Mapping[str, Any]) -> Any:
    """Return the structured config, or the raw dict when the node takes none."""
    if config_class is None:
        return dict(raw)
    try:
        return _structurer(config_class)(raw, config_class)
    except Exception as exc:  # cattrs raises ClassValidationError / ExceptionGroup
        if isinstance(exc, (cattrs.BaseValidationError,)):
            problems = cattrs.transform_error(exc, path="$", format_exception=_format)
        else:
            problems = [f"{exc} @ $"]
        raise ConfigFieldError(problems) from None


def lenient(default: Any = None) -> Any:
    """A field whose value of the wrong type means ``default`` (upstream's ``unwrap_or``)."""
    return attrs.field(default=default, metadata={LENIENT: True})


def run_required(*, lenient: bool = False) -> Any:
    """A field the node cannot run without, though a missing one only fails at run time.

    Upstream reports these when the step runs (``template_render requires
    'output_key'``), and ``run`` keeps doing so; ``validate`` reports the
    missing field before anything runs. With ``lenient=True`` a value of the
    wrong type is structured as ``None``, i.e. counts as missing (NODE-4).
    """
    return attrs.field(default=None, metadata={RUN_REQUIRED: True, LENIENT: lenient})


@attrs.frozen
class ConfigFindings:
    """What ``validate`` reports about one step config (see :func:`check_config`)."""

    missing: list[str]
    """``run_required`` keys the config leaves out, sets to null or mistypes."""
    unknown: list[tuple[str, str | None]]
    """Keys the class does not declare, each with the nearest declared name."""
    fallbacks: list[tuple[str, Any]]
    """Optional lenient keys whose value has the wrong type, each with the default used."""


_NOTHING = ConfigFindings([], [], [])


def check_config(config_class: type | None, raw: Mapping[str, Any]) -> ConfigFindings:
    """One pass over a step config for ``validate``: missing, unknown and mistyped keys.

    The findings are shared when there are none: read them, do not change them.
    """
    if config_class is None or not attrs.has(config_class):
        return _NOTHING
    schema = _schema(converter, config_class)
    declared, lenient_keys = schema.declared, schema.lenient
    wrong: set[str] = set()
    unknown: list[tuple[str, str | None]] = []
    for key, value in raw.items():
        if key in declared:
            if value is not None and key in lenient_keys and not lenient_keys[key][1](value):
                wrong.add(key)
        elif not key.startswith("_"):
            unknown.append((key, _nearest(key, declared)))
    missing = [key for key in schema.required if raw.get(key) is None or key in wrong]
    fallbacks = [(key, default) for key, (default, _fits) in lenient_keys.items()
                 if key in wrong and key not in schema.required] if wrong else []
    if not (missing or unknown or fallbacks):
        return _NOTHING
    return ConfigFindings(missing, unknown, fallbacks)


def _nearest(key: str, declared: frozenset[str]) -> str | None:
    import difflib  # only a misspelled key needs it; keep it off every command's start-up

    close = difflib.get_close_matches(key, sorted(declared), n=1, cutoff=0.6)
    return close[0] if close else None


def missing_required(config_class: type | None, raw: Mapping[str, Any]) -> list[str]:
    """Fields marked ``run_required`` that the config leaves out, sets to null or mistypes."""
    return list(check_config(config_class, raw).missing)


def lenient_fallbacks(config_class: type | None, raw: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Optional lenient fields whose value has the wrong type, each with the default used."""
    return list(check_config(config_class, raw).fallbacks)


def unknown_keys(config_class: type | None, raw: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """Keys the config class does not declare, each with the nearest declared name."""
    return list(check_config(config_class, raw).unknown)
