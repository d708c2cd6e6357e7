"""``${ctx...}`` interpolation (semantics.md#interpolation) and its plan-time check (DSL-104).

A template is compiled once into literal text and context paths, and the
compiled form is cached by template text: a flow renders the same config
strings step after step, so the hot path is a dict lookup plus the context
walks. Rendering and checking share the compiler, so validation cannot drift
from what runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ironflow_core.jsonutil import dumps

__all__ = [
    "config_template_errors",
    "interpolate",
    "interpolate_deep",
    "template_errors",
]

_U64_MAX = 2**64 - 1
_CACHE_LIMIT = 8192
_CACHE_MAX_CHARS = 4096  # longer texts (file contents) compile every time: linear anyway

# Everything up to the closing ``}``: quotes toggle a string in which a
# backslash escapes the next character (INT-1). The alternatives start with
# different characters, so possessive matching never backtracks.
_BODY = re.compile(r'(?:[^"}]++|"(?:[^"\\]++|\\[\s\S])*+")*+')
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*+")
_IDENT_FULL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DIGITS = re.compile(r"[0-9]*+")
_JSON_STRING = json.JSONDecoder(strict=True)

Path = tuple[str | int, ...]
"""A parsed reserved placeholder: the first item is a context key."""


class TemplateError(Exception):
    """A malformed reserved placeholder: ``expr`` is the ``${...}`` text, ``detail`` why."""

    def __init__(self, expr: str, detail: str) -> None:
        super().__init__(f"invalid context interpolation `{expr}`: {detail}")
        self.expr = expr
        self.detail = detail


Compiled = tuple[str, tuple[tuple[str, tuple[str | int, ...], str], ...]]
"""``(head, ((first_key, selectors, text_after), ...))`` for a valid template."""

_compiled: dict[str, Compiled] = {}
_invalid: dict[str, TemplateError] = {}


# -- public API ---------------------------------------------------------------


def interpolate(template: str, ctx: Mapping[str, Any]) -> str:
    """Render reserved placeholders in one pass (INT-1..9).

    A malformed reserved placeholder leaves the whole template unchanged
    (INT-6): flows are checked at plan time, so only direct callers see it.
    """
    if "${" not in template:
        return template
    # ``Any``: the hot path narrows with ``type(...) is``, which mypy does not follow.
    compiled: Any = _compiled.get(template)
    if compiled is None:
        compiled = _compile_cached(template)
        if type(compiled) is TemplateError:
            return template
    head, ops = compiled
    out = [head]
    append = out.append
    selector: Any
    # The path walk is inlined: this loop is the per-step hot path.
    for first, selectors, text in ops:
        try:
            value = ctx[first]
        except KeyError:
            value = None
        for selector in selectors:
            if type(selector) is str:
                if not isinstance(value, dict):
                    value = None
                    break
                value = value.get(selector)
            else:
                if not isinstance(value, list) or selector >= len(value):
                    value = None
                    break
                value = value[selector]
        kind = type(value)
        if kind is str:
            append(value)
        elif value is not None:
            # INT-8: numbers, booleans, arrays and objects as compact JSON.
            append(str(value) if kind is int else dumps(value))
        append(text)
    return "".join(out)


def interpolate_deep(value: Any, ctx: Mapping[str, Any]) -> Any:
    """Interpolate every string inside arrays and objects; keys stay literal (INT-10)."""
    if isinstance(value, str):
        return interpolate(value, ctx)
    if isinstance(value, dict):
        return {key: interpolate_deep(item, ctx) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate_deep(item, ctx) for item in value]
    return value


def template_errors(text: str) -> list[tuple[str, str]]:
    """Grammar errors of one string as ``(expr, detail)``.

    At most one: like upstream, checking stops at the first malformed
    placeholder of a string.
    """
    if "${" not in text or text in _compiled:
        return []
    result = _invalid.get(text) or _compile_cached(text)
    if isinstance(result, TemplateError):
        return [(result.expr, result.detail)]
    return []


def config_template_errors(config: Any) -> list[tuple[str, str, str]]:
    """Check every string in a step config (DSL-104) as ``(path, expr, detail)``.

    Paths are rooted at ``config``: identifier keys are dotted, other keys
    bracketed as JSON strings, array items 0-based (``config.items[1]``,
    ``config["x-y"]``). Object keys themselves are not checked; objects are
    walked in sorted key order, as upstream's sorted maps are.
    """
    errors: list[tuple[str, str, str]] = []
    _check_value(config, "config", errors)
    return errors


# -- checking -----------------------------------------------------------------


def _check_value(value: Any, path: str, errors: list[tuple[str, str, str]]) -> None:
    if isinstance(value, str):
        for expr, detail in template_errors(value):
            errors.append((path, expr, detail))
    elif isinstance(value, Mapping):
        for key in sorted(value):
            child = f"{path}.{key}" if _IDENT_FULL.match(key) else f"{path}[{dumps(key)}]"
            _check_value(value[key], child, errors)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]", errors)


# -- compiling ----------------------------------------------------------------


def _compile_cached(template: str) -> Compiled | TemplateError:
    """Compile (or find why not) and remember short templates."""
    if len(_compiled) + len(_invalid) >= _CACHE_LIMIT:
        _compiled.clear()
        _invalid.clear()
    cacheable = len(template) <= _CACHE_MAX_CHARS
    try:
        compiled = _compile(template)
    except TemplateError as error:
        if cacheable:
            _invalid[template] = error
        return error
    if cacheable:
        _compiled[template] = compiled
    return compiled


def _compile(template: str) -> Compiled:
    """Split a template into literal text and parsed paths (INT-1..5)."""
    head: str | None = None
    ops: list[tuple[str, tuple[str | int, ...], str]] = []
    path: Path | None = None
    pending: list[str] = []  # literal pieces since the last path
    cursor = 0
    end = len(template)
    while True:
        open_ = template.find("${", cursor)
        if open_ < 0:
            break
        body_start = open_ + 2
        body_end = _BODY.match(template, body_start).end()  # type: ignore[union-attr]
        # The scan stops at the closing `}`, at an unterminated quote or at the end.
        close = body_end if body_end < end and template[body_end] == "}" else None
        if close is None:
            body_end = end
        expression = template[body_start:body_end]
        reserved = expression == "ctx" or expression.startswith(("ctx.", "ctx["))
        after = end if close is None else close + 1
        if reserved and _odd_backslashes(template, open_):
            # INT-3: drop the one backslash before `$`, keep the placeholder literal.
            pending.append(template[cursor : open_ - 1])
            pending.append(template[open_:after])
            cursor = after
            continue
        pending.append(template[cursor:open_])
        if not reserved:
            pending.append(template[open_:after])  # INT-2: foreign placeholder verbatim
            cursor = after
            if close is None:
                break
            continue
        if close is None:
            raise TemplateError(template[open_:], "the placeholder is missing its closing `}`")
        text = "".join(pending)
        if path is None:
            head = text
        else:
            ops.append((path[0], path[1:], text))  # type: ignore[arg-type]
        pending = []
        path = _parse_path(expression)
        cursor = after
    pending.append(template[cursor:])
    text = "".join(pending)
    if path is None:
        return text, ()
    ops.append((path[0], path[1:], text))  # type: ignore[arg-type]
    return head or "", tuple(ops)


def _odd_backslashes(template: str, index: int) -> bool:
    count = 0
    while index > 0 and template[index - 1] == "\\":
        count += 1
        index -= 1
    return count % 2 == 1


def _parse_path(expression: str) -> Path:
    """Parse ``ctx`` followed by ``.ident``, ``[N]`` and ``["key"]`` selectors (INT-5)."""
    size = len(expression)
    cursor = 3
    selectors: list[str | int] = []
    while cursor < size:
        char = expression[cursor]
        if char == ".":
            match = _IDENT.match(expression, cursor + 1)
            if match is None:
                raise _path_error(expression, "a dot must be followed by an ASCII identifier")
            selectors.append(match.group())
            cursor = match.end()
        elif char == "[":
            selector, cursor = _parse_bracket(expression, cursor)
            selectors.append(selector)
        else:
            raise _path_error(
                expression,
                "expected `.` or `[` after a path selector; "
                "expressions and fallbacks are unsupported",
            )
    if not selectors:
        raise _path_error(expression, "`ctx` must be followed by at least one object-key selector")
    if type(selectors[0]) is int:
        raise _path_error(
            expression,
            "the context root is an object; its first selector must be an object key",
        )
    return tuple(selectors)


def _parse_bracket(expression: str, open_: int) -> tuple[str | int, int]:
    size = len(expression)
    cursor = open_ + 1
    if cursor >= size:
        raise _path_error(expression, "an array or quoted-key selector is unclosed")
    if expression[cursor] == '"':
        literal_end = _quoted_end(expression, cursor)
        if literal_end is None:
            raise _path_error(expression, "a quoted object key is unclosed")
        key = _json_string(expression[cursor:literal_end])
        if key is None:
            raise _path_error(expression, "the bracketed object key is not a JSON string")
        if literal_end >= size or expression[literal_end] != "]":
            raise _path_error(expression, "a quoted object key must be followed immediately by `]`")
        return key, literal_end + 1
    digits_end = _DIGITS.match(expression, cursor).end()  # type: ignore[union-attr]
    if digits_end == cursor:
        raise _path_error(expression, "array indexes must be non-negative decimal integers")
    if digits_end >= size or expression[digits_end] != "]":
        raise _path_error(expression, "an array index must be followed immediately by `]`")
    digits = expression[cursor:digits_end]
    if len(digits) > 1 and digits[0] == "0":
        raise _path_error(
            expression,
            "array indexes must use canonical decimal notation without leading zeros",
        )
    index = int(digits)
    if index > _U64_MAX:
        raise _path_error(expression, "the array index is too large")
    return index, digits_end + 1


def _quoted_end(expression: str, quote: int) -> int | None:
    """Index just past the closing quote of the string literal at ``quote``."""
    escaped = False
    for cursor in range(quote + 1, len(expression)):
        char = expression[cursor]
        if char == '"' and not escaped:
            return cursor + 1
        escaped = char == "\\" and not escaped
    return None


def _json_string(literal: str) -> str | None:
    """Decode a JSON string literal as strictly as serde_json does."""
    try:
        value, end = _JSON_STRING.raw_decode(literal)
    except ValueError:
        return None
    if end != len(literal) or not isinstance(value, str):
        return None
    # Lone surrogates from `\ud800` are not valid strings upstream.
    if any("\ud800" <= char <= "\udfff" for char in value):
        return None
    return value


def _path_error(expression: str, detail: str) -> TemplateError:
    return TemplateError(f"${{{expression}}}", detail)
