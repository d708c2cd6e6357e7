"""Conditions, switch values and simple paths (semantics.md#conditions)."""

from __future__ import annotations

import math

import pytest

from ironflow_core.conditions import (
    evaluate_condition,
    parse_rust_f64,
    resolve_path,
    switch_value,
)

# -- CND-1 / CND-2 ----------------------------------------------------------------


def test_cnd_1_ctx_prefix_is_optional() -> None:
    ctx = {"amount": 5, "user": {"name": "Ada"}}
    assert resolve_path(ctx, "amount") == (True, 5)
    assert resolve_path(ctx, "ctx.amount") == (True, 5)
    assert resolve_path(ctx, "ctx.user.name") == (True, "Ada")


def test_cnd_1_only_one_prefix_is_stripped() -> None:
    ctx = {"ctx": {"a": 1}, "a": 2}
    assert resolve_path(ctx, "ctx.ctx.a") == (True, 1)
    assert resolve_path(ctx, "ctx") == (True, {"a": 1})


def test_cnd_1_arrays_are_not_indexed() -> None:
    ctx = {"items": [{"name": "first"}], "user": {"0": "zero"}}
    assert resolve_path(ctx, "items.0") == (False, None)
    assert resolve_path(ctx, "items.0.name") == (False, None)
    assert resolve_path(ctx, "user.0") == (True, "zero")  # an object key that looks numeric


def test_cnd_1_no_brackets_quoting_or_trimming() -> None:
    ctx = {"user": {"name": "Ada"}, 'user["name"]': "literal"}
    assert resolve_path(ctx, 'user["name"]') == (True, "literal")
    assert resolve_path(ctx, "user. name") == (False, None)
    assert resolve_path(ctx, "user.name.") == (False, None)
    assert resolve_path(ctx, "user.name.length") == (False, None)


def test_cnd_2_null_is_found() -> None:
    assert resolve_path({"x": None}, "x") == (True, None)
    assert resolve_path({"x": {"y": None}}, "ctx.x.y") == (True, None)
    assert resolve_path({"x": None}, "x.y") == (False, None)


# -- CND-15 vectors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "ctx", "expected"),
    [
        ("ctx.amount > 100", {"amount": 200}, True),
        ("ctx.amount > 100", {"amount": 50}, False),
        ("ctx.amount > 100", {}, False),
        ('ctx.name == "Alice"', {"name": "Alice"}, True),
        ("ctx.x exists", {"x": None}, True),
        ("ctx.missing != 5", {}, True),
        ("ctx.score >= 50", {"score": 50}, True),
        ("ctx.active", {"active": True}, True),
        ('ctx.amount == "100"', {"amount": 100}, False),
        ("ctx.count", {"count": 0}, True),
    ],
)
def test_cnd_15_vectors(condition: str, ctx: dict, expected: bool) -> None:
    assert evaluate_condition(condition, ctx) is expected


def test_cnd_12_boolean_comparison_is_the_deliberate_difference() -> None:
    """CND-15 says `ctx.flag == true` is false upstream; semantics.md#design-differences makes it compare."""
    assert evaluate_condition("ctx.flag == true", {"flag": True}) is True
    assert evaluate_condition("ctx.flag == false", {"flag": True}) is False
    assert evaluate_condition("ctx.flag != false", {"flag": True}) is True
    assert evaluate_condition("ctx.flag != true", {"flag": False}) is True
    # only bare lower-case literals, and only equality
    assert evaluate_condition('ctx.flag == "true"', {"flag": True}) is False
    assert evaluate_condition("ctx.flag == True", {"flag": True}) is False
    assert evaluate_condition("ctx.flag == 1", {"flag": True}) is False
    assert evaluate_condition("ctx.flag >= true", {"flag": True}) is False
    # a string "true" is still compared as text
    assert evaluate_condition("ctx.s == true", {"s": "true"}) is True


# -- the quirks -----------------------------------------------------------


def test_cnd_11_first_operator_of_the_fixed_list_wins() -> None:
    # `==` is found first, so the left side is the path "a != b" (missing).
    assert evaluate_condition("ctx.a != b == c", {"a": "x"}) is False
    # `>=` is tried before `>`, so `a >= 5` is not `a > "= 5"`.
    assert evaluate_condition("ctx.a >= 5", {"a": 5}) is True
    # split at the first occurrence; the rest is the literal
    assert evaluate_condition("ctx.s == a==b", {"s": "a==b"}) is True
    # `<` inside the right literal still wins over nothing else
    assert evaluate_condition("ctx.s == <tag>", {"s": "<tag>"}) is True
    # `!=` appears before `>` in the list even when `>` comes first in the text
    assert evaluate_condition("ctx.a > 1 != 2", {"a": 5}) is True  # path "a > 1" missing


def test_cnd_12_numeric_strings_never_compare_numerically() -> None:
    assert evaluate_condition("ctx.n > 100", {"n": "250"}) is False
    # equality on a string left side is text equality, not numeric
    assert evaluate_condition("ctx.n == 250", {"n": "250"}) is True
    assert evaluate_condition("ctx.n == 250.0", {"n": "250"}) is False
    assert evaluate_condition("ctx.n == '250'", {"n": "250"}) is True


def test_cnd_12_numeric_comparison_uses_an_epsilon() -> None:
    ctx = {"sum": 0.1 + 0.2, "one": 1, "big": 2**70}
    assert evaluate_condition("ctx.sum == 0.3", ctx) is True
    assert evaluate_condition("ctx.sum != 0.3", ctx) is False
    assert evaluate_condition("ctx.one == 1.0", ctx) is True
    assert evaluate_condition("ctx.one <= 1e0", ctx) is True
    assert evaluate_condition("ctx.one < 1", ctx) is False
    assert evaluate_condition("ctx.big > 1e20", ctx) is True


def test_cnd_12_rust_float_syntax_on_the_right() -> None:
    ctx = {"n": 5}
    assert evaluate_condition("ctx.n < inf", ctx) is True
    assert evaluate_condition("ctx.n > -Infinity", ctx) is True
    assert evaluate_condition("ctx.n == 5.", ctx) is True
    assert evaluate_condition("ctx.n > +.5", ctx) is True
    assert evaluate_condition("ctx.n == nan", ctx) is False
    assert evaluate_condition("ctx.n != nan", ctx) is False  # NaN fails both
    # Python's float() would accept these; Rust's parser does not
    assert evaluate_condition("ctx.n == 5_0", {"n": 50}) is False
    assert evaluate_condition("ctx.n != 0x5", ctx) is False


def test_cnd_12_other_types_are_false_for_every_operator() -> None:
    ctx = {"z": None, "arr": [1], "obj": {"a": 1}}
    for operator in ("==", "!=", ">", "<", ">=", "<="):
        assert evaluate_condition(f"ctx.z {operator} null", ctx) is False
        assert evaluate_condition(f"ctx.arr {operator} [1]", ctx) is False
        assert evaluate_condition(f"ctx.obj {operator} 1", ctx) is False


def test_cnd_12_missing_left_is_true_only_for_not_equal() -> None:
    for operator in ("==", ">", "<", ">=", "<="):
        assert evaluate_condition(f"ctx.nope {operator} 1", {}) is False
    assert evaluate_condition("ctx.nope != 1", {}) is True
    assert evaluate_condition("ctx.nope != 'x'", {}) is True


def test_cnd_12_string_quotes_are_stripped_greedily() -> None:
    ctx = {"name": "Alice"}
    assert evaluate_condition("ctx.name == 'Alice'", ctx) is True
    assert evaluate_condition("ctx.name == \"'Alice'\"", ctx) is True
    assert evaluate_condition('ctx.name == ""Alice""', ctx) is True
    assert evaluate_condition("ctx.name != Bob", ctx) is True
    assert evaluate_condition("ctx.name > A", ctx) is False
    assert evaluate_condition('ctx.q == "', {"q": ""}) is True


def test_cnd_13_truthiness() -> None:
    ctx = {
        "t": True,
        "f": False,
        "zero": 0,
        "empty": "",
        "false_text": "false",
        "arr": [],
        "obj": {},
        "null": None,
    }
    assert evaluate_condition("ctx.t", ctx) is True
    assert evaluate_condition("ctx.f", ctx) is False
    for key in ("zero", "empty", "false_text", "arr", "obj"):
        assert evaluate_condition(f"ctx.{key}", ctx) is True
    assert evaluate_condition("ctx.null", ctx) is False
    assert evaluate_condition("ctx.missing", ctx) is False
    assert evaluate_condition("  ctx.t  ", ctx) is True


def test_cnd_10_exists() -> None:
    ctx = {"x": None, "user": {"name": "Ada"}}
    assert evaluate_condition("ctx.x exists", ctx) is True
    assert evaluate_condition("x exists", ctx) is True
    assert evaluate_condition("ctx.user.name exists", ctx) is True
    assert evaluate_condition("ctx.user.age exists", ctx) is False
    assert evaluate_condition("  ctx.x exists  ", ctx) is True
    assert evaluate_condition("ctx.x exists exists", ctx) is True  # suffix stripped repeatedly
    assert evaluate_condition("ctx.x  exists", ctx) is True
    assert evaluate_condition("ctx.x\texists", ctx) is False  # not the literal ` exists`


def test_cnd_14_no_logical_operators() -> None:
    ctx = {"a": True, "b": True}
    assert evaluate_condition("ctx.a and ctx.b", ctx) is False  # one missing path
    assert evaluate_condition("(ctx.a)", ctx) is False


def test_cnd_10_trim_is_rusts() -> None:
    # U+001C is whitespace to Python's strip() but not to Rust's trim().
    assert evaluate_condition("\x1cctx.a", {"a": True}) is False
    assert evaluate_condition("\u3000ctx.a\u2029", {"a": True}) is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1.0),
        ("-1.5", -1.5),
        ("+2", 2.0),
        ("1.", 1.0),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("1E-2", 0.01),
        ("1.e2", 100.0),
        ("inf", math.inf),
        ("-INF", -math.inf),
        ("Infinity", math.inf),
        ("1e400", math.inf),
    ],
)
def test_rust_f64_accepts(text: str, expected: float) -> None:
    assert parse_rust_f64(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", ".", "e5", "1e", "1e+", " 1", "1 ", "1_000", "0x10", "infin", "nana", "++1", "١"],
)
def test_rust_f64_rejects(text: str) -> None:
    assert parse_rust_f64(text) is None


def test_rust_f64_nan_forms() -> None:
    for text in ("nan", "NaN", "-nan", "+NAN"):
        value = parse_rust_f64(text)
        assert value is not None and math.isnan(value)


# -- CND-20 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("ctx.tier", "gold"),
        ("tier", "gold"),
        ("ctx.n", "1"),
        ("ctx.f", "1.5"),
        ("ctx.b", "true"),
        ("ctx.z", "null"),
        ("ctx.arr", '[1,"a"]'),
        ("ctx.obj", '{"a":1,"b":2}'),
        ("ctx.missing", ""),
        ("ctx.arr.0", ""),
    ],
)
def test_cnd_20_switch_value_text(path: str, expected: str) -> None:
    ctx = {
        "tier": "gold",
        "n": 1,
        "f": 1.5,
        "b": True,
        "z": None,
        "arr": [1, "a"],
        "obj": {"b": 2, "a": 1},
    }
    assert switch_value(ctx, path) == expected
