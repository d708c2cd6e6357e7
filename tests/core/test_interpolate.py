"""``${ctx...}`` interpolation (semantics.md#interpolation) and its plan-time check (DSL-104)."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironflow_core.interpolate import (
    config_template_errors,
    interpolate,
    interpolate_deep,
    template_errors,
)
from ironflow_core.jsonutil import dumps
from ironflow_core.testing import node_context

CTX = {
    "user": {"name": "Alice", "contact.info": {"email": "alice@example.com"}},
    "items": [{"name": "first"}, {"name": "second"}],
    "matrix": [[1, 2], [3, 4]],
    "amount": 42,
    "enabled": True,
    "nothing": None,
}


# -- INT-11 vectors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${ctx.user.name}: ${ctx.items[0].name}", "Alice: first"),
        ("${ctx.matrix[1][0]}", "3"),
        ('${ctx.user["contact.info"].email}', "alice@example.com"),
        ("missing=${ctx.missing}; null=${ctx.nothing}", "missing=; null="),
        ("${ctx.items[99].name}", ""),
        (
            "${ctx.amount}/${ctx.enabled}/${ctx.items}",
            '42/true/[{"name":"first"},{"name":"second"}]',
        ),
        ("${HOME}:${TMPDIR:-/tmp}:${name}", "${HOME}:${TMPDIR:-/tmp}:${name}"),
        (r"\${ctx.user.name}", "${ctx.user.name}"),
        (r"\${HOME}", r"\${HOME}"),
    ],
)
def test_int_11_vectors(template: str, expected: str) -> None:
    assert interpolate(template, CTX) == expected


INVALID = [
    "${ctx}",
    "${ctx.}",
    "${ctx..name}",
    "${ctx.items[-1]}",
    "${ctx.items[1.5]}",
    "${ctx.items[]}",
    "${ctx.items[01]}",
    '${ctx.name or env("NAME")}',
    "${ctx.items[0]",
]


@pytest.mark.parametrize("template", INVALID)
def test_int_11_invalid_vectors_are_grammar_errors(template: str) -> None:
    errors = template_errors(template)
    assert len(errors) == 1
    expr, detail = errors[0]
    assert expr == template
    assert detail


@pytest.mark.parametrize("template", INVALID)
def test_int_6_invalid_template_is_left_unchanged_at_run_time(template: str) -> None:
    assert interpolate(f"before {template} after", CTX) == f"before {template} after"


def test_int_6_compatibility_wrapper_keeps_the_whole_template() -> None:
    template = "Hi ${ctx.user.name}, ${ctx.name or 'unknown'}"
    assert interpolate(template, CTX) == template


@pytest.mark.parametrize(
    ("template", "detail"),
    [
        ("${ctx}", "`ctx` must be followed by at least one object-key selector"),
        ("${ctx.}", "a dot must be followed by an ASCII identifier"),
        ("${ctx.items[-1]}", "array indexes must be non-negative decimal integers"),
        ("${ctx.items[1.5]}", "an array index must be followed immediately by `]`"),
        (
            "${ctx.items[01]}",
            "array indexes must use canonical decimal notation without leading zeros",
        ),
        (
            "${ctx.a + 1}",
            "expected `.` or `[` after a path selector; expressions and fallbacks are unsupported",
        ),
        ("${ctx[0]}", "the context root is an object; its first selector must be an object key"),
        ('${ctx["a"x]}', "a quoted object key must be followed immediately by `]`"),
        (r'${ctx["\q"]}', "the bracketed object key is not a JSON string"),
        ('${ctx["\\ud800"]}', "the bracketed object key is not a JSON string"),
        ("${ctx.a[", "the placeholder is missing its closing `}`"),
        ("${ctx.a[}", "an array or quoted-key selector is unclosed"),
        ("${ctx.a[18446744073709551616]}", "the array index is too large"),
    ],
)
def test_int_5_grammar_error_details(template: str, detail: str) -> None:
    assert template_errors(template) == [(template, detail)]


def test_int_5_unclosed_expr_is_the_rest_of_the_template() -> None:
    assert template_errors("x ${ctx.a} ${ctx.items[0] tail") == [
        ("${ctx.items[0] tail", "the placeholder is missing its closing `}`")
    ]


def test_int_5_u64_max_index_is_accepted() -> None:
    assert template_errors("${ctx.a[18446744073709551615]}") == []
    assert interpolate("${ctx.items[18446744073709551615]}", CTX) == ""


# -- INT-1..4, 7..9 -----------------------------------------------------------------


def test_int_1_closing_brace_inside_a_quoted_key_does_not_close() -> None:
    ctx = {"a}b": "brace", 'q"}': "quote"}
    assert interpolate('<${ctx["a}b"]}>', ctx) == "<brace>"
    assert interpolate(r'<${ctx["q\"}"]}>', ctx) == "<quote>"


def test_int_1_unterminated_quote_means_unclosed() -> None:
    assert template_errors('${ctx.a"}') == [
        ('${ctx.a"}', "the placeholder is missing its closing `}`")
    ]
    # a non-reserved placeholder with an open quote is copied to the end
    assert interpolate('${X"} ${ctx.amount}', CTX) == '${X"} ${ctx.amount}'


@pytest.mark.parametrize(
    "template", ["${HOME}", "${ctxfoo}", "${ CTX.a}", "${TMPDIR:-/tmp}", "${name", "$ {ctx.a}"]
)
def test_int_2_non_reserved_placeholders_are_verbatim(template: str) -> None:
    assert interpolate(template, CTX) == template
    assert template_errors(template) == []


def test_int_2_unclosed_non_reserved_copies_the_rest_verbatim() -> None:
    template = "a ${HOME and ${ctx.amount"
    assert interpolate(template, CTX) == template
    assert template_errors(template) == []


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (r"\${ctx.amount}", "${ctx.amount}"),
        (r"\\${ctx.amount}", r"\\42"),
        (r"\\\${ctx.amount}", r"\\${ctx.amount}"),
        (r"\\\\${ctx.amount}", r"\\\\42"),
        (r"x\${ctx}y", "x${ctx}y"),  # escaped placeholders are not parsed
        (r"\${ctx.items[0]", "${ctx.items[0]"),  # escaped and unclosed
        (r"\${HOME} \\${HOME}", r"\${HOME} \\${HOME}"),
        (r"${ctx.amount}\${ctx.amount}${ctx.amount}", "42${ctx.amount}42"),
    ],
)
def test_int_3_odd_backslashes_escape_one_backslash(template: str, expected: str) -> None:
    assert interpolate(template, CTX) == expected
    assert template_errors(template) == []


def test_int_4_dollar_prefix_is_kept() -> None:
    assert interpolate("$${ctx.amount}", CTX) == "$42"
    assert interpolate("$$${ctx.amount}", CTX) == "$$42"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${ctx.amount.x}", ""),  # key on a number
        ("${ctx.items.name}", ""),  # key on an array
        ("${ctx.user[0]}", ""),  # index on an object
        ("${ctx.nothing.x}", ""),
        ("${ctx.matrix[2][0]}", ""),
        ('${ctx["user"]["name"]}', "Alice"),
        ("${ctx.user}", '{"contact.info":{"email":"alice@example.com"},"name":"Alice"}'),
    ],
)
def test_int_7_missing_and_wrong_shapes_render_empty(template: str, expected: str) -> None:
    assert interpolate(template, CTX) == expected


def test_int_8_rendering_of_each_json_type() -> None:
    ctx = {"f": 1.5, "whole": 3.0, "neg": -7, "no": False, "s": "é/ü", "e": [], "o": {}}
    rendered = interpolate(
        "${ctx.f}|${ctx.whole}|${ctx.neg}|${ctx.no}|${ctx.s}|${ctx.e}|${ctx.o}", ctx
    )
    assert rendered == "1.5|3.0|-7|false|é/ü|[]|{}"


def test_int_9_one_pass() -> None:
    ctx = {"first": "${ctx.second}", "second": "expanded"}
    assert interpolate("value=${ctx.first}", ctx) == "value=${ctx.second}"


def test_int_7_overlays_are_visible_through_a_node_context() -> None:
    ctx = node_context({"a": "base"}, node_type="log", overlay={"_error_step": "fetch"})
    assert ctx.interpolate("${ctx.a}/${ctx._error_step}") == "base/fetch"


# -- INT-10 -------------------------------------------------------------------


def test_int_10_deep_interpolation_skips_keys_and_non_strings() -> None:
    value = {
        "${ctx.user.name}": "structural key",
        "nested": ["${ctx.items[0].name}", {"amount": "$${ctx.amount}"}, 42, True, None],
        "n": "${ctx.amount}",
    }
    assert interpolate_deep(value, CTX) == {
        "${ctx.user.name}": "structural key",
        "nested": ["first", {"amount": "$42"}, 42, True, None],
        "n": "42",
    }
    assert value["n"] == "${ctx.amount}"  # the input is not mutated


# -- DSL-104 ------------------------------------------------------------------


def test_dsl_104_reports_value_paths() -> None:
    config = {
        "headers": {"Authorization": 'Bearer ${ctx.token or env("TOKEN")}'},
        "items": ["ok", "${ctx.values[-1]}"],
    }
    assert [path for path, _, _ in config_template_errors(config)] == [
        "config.headers.Authorization",
        "config.items[1]",
    ]
    _, expr, detail = config_template_errors(config)[0]
    assert expr == '${ctx.token or env("TOKEN")}'
    assert detail.startswith("expected `.` or `[`")


def test_dsl_104_nested_arrays_and_objects() -> None:
    config = {"payload": {"results": [{"text": "${ctx.profile.display_name or 'anonymous'}"}]}}
    assert config_template_errors(config)[0][0] == "config.payload.results[0].text"
    config = {"payload": {"messages": [{"text": "Hello ${ctx.user.name or 'unknown'}"}]}}
    assert config_template_errors(config)[0][0] == "config.payload.messages[0].text"


def test_dsl_104_non_identifier_keys_are_bracketed_json() -> None:
    config = {
        "x-api-key": "${ctx}",
        "1st": ["${ctx}"],
        'quote"key': "${ctx}",
        "é": "${ctx}",
        "_private": "${ctx}",
    }
    assert [path for path, _, _ in config_template_errors(config)] == [
        'config["1st"][0]',
        "config._private",
        'config["quote\\"key"]',
        'config["x-api-key"]',
        'config["é"]',
    ]


def test_dsl_104_keys_are_not_checked_and_valid_forms_pass() -> None:
    config = {
        "${ctx}": "key is structural",
        "home": "${HOME}",
        "temporary": "${TMPDIR:-/tmp}",
        "price": "$${ctx.amount}",
        "escaped": r"\${ctx.amount}",
        "first": "${ctx.items[0].name}",
        "quoted": '${ctx["key.with.dots"]}',
        "nested": ["${SHELL}", {"fallback": "${CACHE_DIR:-/var/tmp}"}],
        "numbers": [1, 2.5, True, None],
    }
    assert config_template_errors(config) == []


def test_dsl_104_one_error_per_string() -> None:
    assert config_template_errors({"a": "${ctx} and ${ctx.}"}) == [
        (
            "config.a",
            "${ctx}",
            "`ctx` must be followed by at least one object-key selector",
        )
    ]


def test_dsl_104_long_strings_are_checked_too() -> None:
    text = "x" * 10_000 + "${ctx.items[-1]}"
    assert template_errors(text) == [
        ("${ctx.items[-1]}", "array indexes must be non-negative decimal integers")
    ]
    assert interpolate(text, CTX) == text
    assert interpolate("y" * 10_000 + "${ctx.amount}", CTX) == "y" * 10_000 + "42"


# -- properties ---------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)


@given(st.text().filter(lambda text: "${" not in text), st.dictionaries(identifiers, json_values))
def test_property_text_without_placeholder_is_returned_unchanged(text: str, ctx: dict) -> None:
    assert interpolate(text, ctx) == text
    assert template_errors(text) == []


def _expected(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else dumps(value)


@given(identifiers, json_values)
def test_property_value_renders_as_compact_json(key: str, value: object) -> None:
    assert interpolate("${ctx." + key + "}", {key: value}) == _expected(value)


@given(st.text(max_size=12), json_values)
def test_property_quoted_keys_reach_any_key(key: str, value: object) -> None:
    template = "<${ctx[" + json.dumps(key) + "]}>"
    assert template_errors(template) == []
    assert interpolate(template, {key: value}) == "<" + _expected(value) + ">"


literal = st.text(alphabet=string.ascii_letters + " $}{\"'.-", max_size=10).filter(
    lambda text: "${" not in text and not text.endswith("$")
)
paths = st.lists(identifiers, min_size=1, max_size=3).map(
    lambda keys: "${ctx." + ".".join(keys) + "}"
)


@given(literal, paths, literal)
def test_property_escaping_round_trip(before: str, placeholder: str, after: str) -> None:
    """An escaped placeholder comes back exactly, whatever surrounds it."""
    assert interpolate(before + "\\" + placeholder + after, {}) == before + placeholder + after
    assert interpolate(before + "\\\\" + placeholder + after, {}) == before + "\\\\" + after
