"""Lua <-> JSON conversion (semantics.md#lua-json, DSL-80..86, JSON-2/3/4, PY-2/3)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ironflow_core.lua.convert import json_path, json_to_lua, lua_to_json
from ironflow_core.lua.errors import LuaConversionError
from ironflow_core.lua.state import LuaState
from ironflow_core.settings import LuaLimits


@pytest.fixture
def vm() -> Iterator[LuaState]:
    machine = LuaState(LuaLimits(), env={}, runtime=True)
    yield machine
    machine.close()


def lua(vm: LuaState, source: str) -> Any:
    """Evaluate a Lua expression in the runtime environment and convert it to JSON."""
    (value,) = vm.call(vm.load(("return " + source).encode(), "=test"))[:1] or (None,)
    return lua_to_json(vm, value)


def run(vm: LuaState, source: str) -> tuple[Any, ...]:
    return vm.call(vm.load(source.encode(), "=test"))


def same(a: Any, b: Any) -> bool:
    """Equality that also tells ints from floats (JSON-2)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


# -- DSL-80 / DSL-81: values --------------------------------------------------

def test_json_2_integers_and_floats_stay_distinct(vm: LuaState) -> None:
    assert same(lua(vm, "3"), 3)
    assert same(lua(vm, "3.0"), 3.0)
    assert same(lua(vm, "1/2"), 0.5)
    assert same(lua(vm, "math.maxinteger"), 2**63 - 1)
    assert same(lua(vm, "math.mininteger"), -(2**63))
    assert same(lua(vm, "-0.0"), -0.0) and math.copysign(1, lua(vm, "-0.0")) == -1


def test_dsl_80_json_to_lua_types(vm: LuaState) -> None:
    table = json_to_lua(vm, {"i": 1, "f": 1.0, "s": "é", "b": True, "n": None, "a": [1], "o": {}})
    check = vm.load(
        b"local t = ... return math.type(t.i), math.type(t.f), t.s, t.b, type(t.n), "
        b"t.n == json_null, #t.a, getmetatable(t.a), next(t.o)", "=t")
    assert vm.call(check, table) == (
        b"integer", b"float", "é".encode(), True, b"userdata", True, 1, False, None)


def test_json_2_integers_beyond_i64_become_floats(vm: LuaState) -> None:
    value = json_to_lua(vm, [2**63, -(2**63) - 1, 2**64])
    kinds = vm.call(vm.load(b"local a = ... return math.type(a[1]), math.type(a[3])", "=t"), value)
    assert kinds == (b"float", b"float")
    assert same(lua_to_json(vm, value), [float(2**63), float(-(2**63) - 1), float(2**64)])


def test_dsl_81_nil_and_json_null_are_null(vm: LuaState) -> None:
    assert lua(vm, "nil") is None
    assert lua(vm, "json_null") is None
    assert lua(vm, "{a = json_null}") == {"a": None}
    assert lua(vm, "json_array({json_null, json_null})") == [None, None]


def test_dsl_86_json_null_is_a_truthy_userdata(vm: LuaState) -> None:
    assert run(vm, "return type(json_null), json_null ~= nil, not not json_null") == (
        b"userdata", True, True)


def test_dsl_86_null_from_context_is_not_nil(vm: LuaState) -> None:
    ctx = json_to_lua(vm, {"x": None})
    fn = vm.load(b"local ctx = ... return ctx.x == nil, ctx.x and 'truthy' or 'falsy', ctx.y", "=t")
    assert vm.call(fn, ctx) == (False, b"truthy", None)


def test_dsl_81_unsupported_types_name_the_path(vm: LuaState) -> None:
    with pytest.raises(LuaConversionError, match=r"unsupported Lua function value at \$\.nested"):
        lua(vm, "{nested = print}")
    with pytest.raises(LuaConversionError, match=r"unsupported Lua function value at \$\[2\]"):
        lua(vm, "{1, function() end}")


def test_json_3_non_finite_numbers_are_errors(vm: LuaState) -> None:
    for expr in ("{invalid = 0/0}", "{invalid = math.huge}", "{invalid = -math.huge}"):
        with pytest.raises(LuaConversionError, match=r"non-finite Lua number at \$\.invalid"):
            lua(vm, expr)


def test_json_4_invalid_utf8_is_an_error(vm: LuaState) -> None:
    with pytest.raises(LuaConversionError, match=r"Lua string at \$\.s is not valid UTF-8"):
        lua(vm, r'{s = "\xff"}')
    with pytest.raises(LuaConversionError, match=r"object key in Lua table at \$ is not valid UTF-8"):
        lua(vm, r'{["\xff"] = 1}')
    assert lua(vm, '"h\\u{E9}llo / \\"q\\" \\n"') == 'héllo / "q" \n'


# -- DSL-82: table classification ---------------------------------------------

def test_dsl_82_unmarked_empty_table_is_an_object(vm: LuaState) -> None:
    assert same(lua(vm, "{}"), {})
    assert same(lua(vm, "json_array({})"), [])
    assert same(lua(vm, "json_object({})"), {})
    assert same(lua(vm, "json_parse('[]')"), [])


def test_dsl_82_sequences_are_arrays(vm: LuaState) -> None:
    assert lua(vm, "{1, 'two', {3}}") == [1, "two", [3]]
    assert lua(vm, "{[1] = 'a', [2] = 'b'}") == ["a", "b"]


def test_dsl_82_mixed_table(vm: LuaState) -> None:
    with pytest.raises(LuaConversionError) as info:
        lua(vm, "{1, 2, a = 3}")
    assert str(info.value).startswith("mixed Lua table at $ ")
    assert "$[1]" in str(info.value) and "$.a" in str(info.value)


def test_dsl_82_sparse_array(vm: LuaState) -> None:
    with pytest.raises(LuaConversionError, match=r"sparse Lua array at \$: expected index 2, found 3"):
        lua(vm, "{[1] = 1, [3] = 3}")
    with pytest.raises(LuaConversionError, match=r"sparse Lua array at \$\.list"):
        lua(vm, "{list = {[2] = 'x'}}")


def test_dsl_82_marked_tables_reject_the_other_kind(vm: LuaState) -> None:
    with pytest.raises(LuaConversionError, match=r"marked as a JSON array at \$ contains object field \$\.k"):
        lua(vm, "json_array({k = 1})")
    with pytest.raises(LuaConversionError, match=r"marked as a JSON object at \$ contains array entry \$\[1\]"):
        lua(vm, "json_object({1})")


def test_dsl_82_bad_keys(vm: LuaState) -> None:
    with pytest.raises(LuaConversionError, match=r"unsupported Lua table key type boolean at \$"):
        lua(vm, "{[true] = 1}")
    with pytest.raises(LuaConversionError, match=r"invalid Lua array index 1\.5 at \$"):
        lua(vm, "{[1.5] = 1}")
    with pytest.raises(LuaConversionError, match=r"invalid Lua array index 0 at \$"):
        lua(vm, "{[0] = 1}")


def test_dsl_82_integral_float_keys_are_indexes(vm: LuaState) -> None:
    assert lua(vm, "{[1.0] = 'a', [2.0] = 'b'}") == ["a", "b"]


def test_py_3_conversion_ignores_metamethods(vm: LuaState) -> None:
    value = lua(vm, "setmetatable({a = 1}, {__index = function() return 'x' end, "
                    "__pairs = function() error('no') end})")
    assert value == {"a": 1}


# -- DSL-83: cycles -------------------------------------------------------------

def test_dsl_83_cycle_names_both_paths(vm: LuaState) -> None:
    with pytest.raises(LuaConversionError) as info:
        lua(vm, "(function() local t = {} t.self = t return t end)()")
    assert str(info.value) == (
        "cyclic Lua table at $.self; the same table is already active at $")
    with pytest.raises(LuaConversionError, match=r"cyclic Lua table at \$\.a\.b\[1\]; .* at \$\.a"):
        lua(vm, "(function() local a = {} a.b = {a} return {a = a} end)()")


def test_dsl_83_shared_tables_are_duplicated(vm: LuaState) -> None:
    value = lua(vm, "(function() local s = {1, 2} return {x = s, y = s, z = {s}} end)()")
    assert value == {"x": [1, 2], "y": [1, 2], "z": [[1, 2]]}


# -- DSL-84: limits in both directions ---------------------------------------------

def test_dsl_84_depth_limit_lua_to_json(vm: LuaState) -> None:
    src = "(function() local t = {} local c = t for i = 1, 70 do c.n = {} c = c.n end return t end)()"
    with pytest.raises(LuaConversionError, match="maximum depth 64") as info:
        lua(vm, src)
    assert "$" + ".n" * 65 in str(info.value)


def test_dsl_84_depth_limit_json_to_lua(vm: LuaState) -> None:
    deep: Any = 1
    for _ in range(70):
        deep = [deep]
    with pytest.raises(LuaConversionError, match=r"JSON-to-Lua maximum depth 64 exceeded at \$\[0\]"):
        json_to_lua(vm, deep)
    exact: Any = 1
    for _ in range(64):
        exact = {"k": exact}
    assert lua_to_json(vm, json_to_lua(vm, exact)) == exact


def test_dsl_84_node_limits_honour_the_settings() -> None:
    limits = LuaLimits(max_conversion_nodes=10, max_conversion_depth=3)
    with LuaState(limits, env={}, runtime=True) as small:
        with pytest.raises(LuaConversionError, match="JSON-to-Lua maximum node count 10"):
            json_to_lua(small, list(range(20)))
        with pytest.raises(LuaConversionError, match="Lua-to-JSON maximum node count 10"):
            lua(small, "{1,2,3,4,5,6,7,8,9,10,11,12}")
        with pytest.raises(LuaConversionError, match="maximum depth 3"):
            lua(small, "{{{{{1}}}}}")
    env = {"IRONFLOW_MAX_CONVERSION_DEPTH": "2", "IRONFLOW_MAX_CONVERSION_NODES": "5"}
    assert LuaLimits.from_env(env).max_conversion_depth == 2
    assert LuaLimits.from_env(env).max_conversion_nodes == 5


# -- DSL-85: paths -------------------------------------------------------------------

def test_dsl_85_paths() -> None:
    assert json_path("$", "name") == "$.name"
    assert json_path("$", "_x1") == "$._x1"
    assert json_path("$", "with space") == '$["with space"]'
    assert json_path("$", "1abc") == '$["1abc"]'
    assert json_path("$", 'q"') == '$["q\\""]'
    assert json_path("$.a", 0) == "$.a[0]"


def test_dsl_85_lua_side_paths_are_one_based_and_quoted(vm: LuaState) -> None:
    with pytest.raises(LuaConversionError, match=r'at \$\["odd key"\]\[2\]\.fn;'):
        lua(vm, "{['odd key'] = {1, {fn = print}}}")


def test_dsl_85_json_side_paths_are_zero_based(vm: LuaState) -> None:
    with pytest.raises(LuaConversionError, match=r'at \$\.a\[1\]\["b c"\]'):
        json_to_lua(vm, {"a": [0, {"b c": float("nan")}]})


# -- DSL-66..68: the JSON globals ----------------------------------------------------

def test_dsl_66_json_parse(vm: LuaState) -> None:
    assert same(lua(vm, "json_parse('{\"a\": [1, 2.5, null, true], \"b\": {}}')"),
                {"a": [1, 2.5, None, True], "b": {}})
    with pytest.raises(Exception, match="json_parse failed"):
        run(vm, "return json_parse('{bad')")
    with pytest.raises(Exception, match="json_parse failed"):
        run(vm, "return json_parse('NaN')")


def test_dsl_67_json_stringify_is_compact_and_sorted(vm: LuaState) -> None:
    assert run(vm, "return json_stringify({b = 1, a = {2.0, 'x'}, c = json_null})") == (
        b'{"a":[2.0,"x"],"b":1,"c":null}',)
    assert run(vm, "return json_stringify(nil)") == (b"null",)
    assert run(vm, "return json_stringify('é/')") == ('"é/"'.encode(),)


def test_dsl_68_markers_survive_a_round_trip(vm: LuaState) -> None:
    assert lua(vm, "json_parse(json_stringify(json_array({})))") == []
    assert lua(vm, "json_parse('[]')") == []
    assert lua(vm, "json_parse('null')") is None


# -- the round trip property -----------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
                      children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values)
def test_dsl_80_81_round_trip_json_lua_json(vm: LuaState, value: Any) -> None:
    assert same(lua_to_json(vm, json_to_lua(vm, value)), value)
