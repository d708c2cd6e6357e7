"""CSV nodes (CSV-1..12)."""

from __future__ import annotations

from typing import Any

import pytest

from ironflow_core.configs import structure_config
from ironflow_core.errors import NodeError
from ironflow_core.nodes import csvdata
from ironflow_core.registry import build_registry
from ironflow_core.testing import make_registry, node_context

SPECS = {spec.name: spec for spec in csvdata.NODES}
REGISTRY = make_registry()


async def run(node: str, ctx: dict[str, Any], **config: Any) -> dict[str, Any]:
    spec = SPECS[node]
    context = node_context(ctx, registry=REGISTRY, node_type=node, raw_config=config)
    return dict(await spec.run(context, structure_config(spec.config, config)))


async def parse(text: str, **config: Any) -> Any:
    out = await run("csv_parse", {"csv": text}, source_key="csv", output_key="rows", **config)
    assert list(out) == ["rows"]
    return out["rows"]


async def stringify(source: Any, **config: Any) -> str:
    out = await run(
        "csv_stringify", {"data": source}, source_key="data", output_key="csv", **config
    )
    assert list(out) == ["csv"]
    return out["csv"]


async def parse_fails(text: Any, **config: Any) -> str:
    with pytest.raises(NodeError) as caught:
        await run("csv_parse", {"csv": text}, source_key="csv", output_key="rows", **config)
    return str(caught.value)


async def stringify_fails(source: Any, **config: Any) -> str:
    with pytest.raises(NodeError) as caught:
        await run("csv_stringify", {"data": source}, source_key="data", output_key="csv", **config)
    return str(caught.value)


def test_appendix_b_summaries() -> None:
    registry = build_registry(env={}, entry_points=False)
    assert registry.nodes["csv_parse"].summary == (
        "Parse CSV text from context into structured JSON data"
    )
    assert registry.nodes["csv_stringify"].summary == "Serialize JSON data to CSV text"


# -- csv_parse ---------------------------------------------------------------------------


async def test_csv_3_header_and_infer_types() -> None:
    rows = await parse("name,age\nAlice,30\nBob,25", infer_types=True)
    assert rows == [{"name": "Alice", "age": 30}, {"name": "Bob", "age": 25}]
    assert all(type(row["age"]) is int for row in rows)


async def test_csv_3_no_header_custom_delimiter() -> None:
    rows = await parse("Alice;30\nBob;25", has_header=False, delimiter=";")
    assert rows == [["Alice", "30"], ["Bob", "25"]]


async def test_csv_2_without_infer_values_are_raw_strings() -> None:
    assert await parse("a,b\n 1 ,true") == [{"a": " 1 ", "b": "true"}]


async def test_csv_2_infer_types_trims_and_types() -> None:
    text = "v\n TRUE \nfalse\n\n 42 \n-7\n+8\n2.50\n1e3\n.5\n 12abc \n1_000\n99999999999999999999\n  \n"
    rows = await parse(text, infer_types=True, has_header=False, skip_empty_lines=False)
    values = [row[0] for row in rows]
    assert values == [
        "v",
        True,
        False,
        42,
        -7,
        8,
        2.5,
        1000.0,
        0.5,
        "12abc",
        "1_000",
        1e20,
        "",
    ]
    assert [type(v) for v in values[3:9]] == [int, int, int, float, float, float]


async def test_csv_2_non_finite_floats_become_null() -> None:
    assert await parse("NaN,inf,-Infinity,1e400", infer_types=True, has_header=False) == [
        [None, None, None, None]
    ]


async def test_csv_1_quoted_fields_and_doubled_quotes() -> None:
    text = 'a,b\n"x, y","say ""hi"""\n"multi\nline",plain"quote\n'
    assert await parse(text) == [
        {"a": "x, y", "b": 'say "hi"'},
        {"a": "multi\nline", "b": 'plain"quote'},
    ]


async def test_csv_1_blank_lines_ignored_and_line_endings() -> None:
    assert await parse("a,b\r\n\r\n1,2\r3,4\n\n") == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]


async def test_csv_1_record_length_mismatch_is_an_error() -> None:
    message = await parse_fails("name,age\nAlice,30\nBob,25,extra")
    assert message == (
        "CSV error: record 2 (line: 3, byte: 18): found record with 3 fields, "
        "but the previous record has 2 fields"
    )


async def test_csv_1_mismatch_counts_header_and_reports_record_start() -> None:
    # blank lines before a record belong to it; CRLF records end at the CR
    message = await parse_fails("a,b\r\n1,2\r\n\n3")
    assert message == (
        "CSV error: record 2 (line: 2, byte: 9): found record with 1 fields, "
        "but the previous record has 2 fields"
    )
    message = await parse_fails("x\ny,z", has_header=False)
    assert "record 1 (line: 2, byte: 2): found record with 2 fields" in message


async def test_csv_1_repeated_header_keeps_later_column() -> None:
    assert await parse("k,k,j\n1,2,3") == [{"k": "2", "j": "3"}]


async def test_csv_1_trim_headers_and_fields() -> None:
    assert await parse(" a , b \n 1 , 2 ", trim=True) == [{"a": "1", "b": "2"}]
    assert await parse(" a ,b\n 1 ,2") == [{" a ": " 1 ", "b": "2"}]


async def test_skip_empty_lines_drops_all_empty_records() -> None:
    assert await parse("a,b\n,\n1,2\n , ", trim=True) == [{"a": "1", "b": "2"}]
    assert await parse("a,b\n,\n1,2", skip_empty_lines=False) == [
        {"a": "", "b": ""},
        {"a": "1", "b": "2"},
    ]


async def test_csv_1_empty_input_and_header_only() -> None:
    assert await parse("") == []
    assert await parse("a,b\n") == []
    assert await parse("", has_header=False) == []


async def test_csv_1_bom_is_dropped() -> None:
    assert await parse("\ufeffid\n1") == [{"id": "1"}]


async def test_tab_and_escaped_delimiters() -> None:
    assert await parse("a\tb\n1\t2", delimiter="\\t") == [{"a": "1", "b": "2"}]
    assert await parse("a\tb\n1\t2", delimiter="\t") == [{"a": "1", "b": "2"}]
    assert await parse("a;b\n'x;y';2", delimiter=";", quote_char="'") == [{"a": "x;y", "b": "2"}]


async def test_node_5_lenient_booleans() -> None:
    assert await parse("a\n1", has_header="no") == [["a"], ["1"]]
    assert await parse("a\n1", has_header=0) == [{"a": "1"}]  # a number means the default


async def test_csv_parse_errors() -> None:
    assert await parse_fails(["a"]) == "Value at 'csv' is not a string"
    assert await parse_fails("a", delimiter=";;") == "delimiter must be a single-byte character"
    assert await parse_fails("a", quote_char="é") == "quote_char must be a single-byte character"
    # a non-string delimiter falls back to the default
    assert await parse("a,b\n1,2", delimiter=5) == [{"a": "1", "b": "2"}]
    with pytest.raises(NodeError, match="Key 'csv' not found in context"):
        await run("csv_parse", {}, source_key="csv", output_key="rows")
    with pytest.raises(NodeError, match="csv_parse requires 'output_key'"):
        await run("csv_parse", {"csv": ""}, source_key="csv")


async def test_csv_parse_large_field() -> None:
    big = "x" * 300_000
    assert await parse(f"a\n{big}") == [{"a": big}]


# -- csv_stringify -----------------------------------------------------------------------


async def test_csv_12_objects_sorted_headers() -> None:
    rows = [{"name": "Alice", "age": 30}, {"name": "Bob", "age": 25}]
    assert await stringify(rows) == "age,name\n30,Alice\n25,Bob\n"


async def test_csv_12_arrays_without_headers() -> None:
    assert await stringify([[1, 2], [3, 4]], include_headers=False) == "1,2\n3,4\n"


async def test_csv_10_union_of_keys_missing_cells_empty() -> None:
    rows = [{"b": 1}, {"a": 2, "c": None}]
    assert await stringify(rows) == "a,b,c\n,1,\n2,,\n"


async def test_csv_10_object_source_is_one_row() -> None:
    assert await stringify({"z": 1, "a": "x"}) == "a,z\nx,1\n"
    assert await stringify({"z": 1, "a": "x"}, include_headers="off") == "x,1\n"


async def test_csv_10_arrays_padded_with_column_headers() -> None:
    assert await stringify([[1], [2, 3, 4]]) == "column_1,column_2,column_3\n1,,\n2,3,4\n"


async def test_csv_10_scalars_and_empty_array() -> None:
    # a record whose only field is empty is written as "" so it is not a blank line
    assert await stringify([1, "a", None, True]) == 'value\n1\na\n""\ntrue\n'
    assert await stringify([]) == "value\n"
    assert await stringify([], include_headers=False) == ""


async def test_csv_10_mixed_and_wrong_sources() -> None:
    mixed = "csv_stringify array must contain only objects, only arrays, or only scalar values"
    assert await stringify_fails([{"a": 1}, [1]]) == mixed
    assert await stringify_fails([1, [1]]) == mixed
    assert await stringify_fails([1, {"a": 1}]) == mixed
    assert await stringify_fails("text") == (
        "csv_stringify requires 'source_key' to contain an object or array"
    )


async def test_csv_11_cell_text() -> None:
    row = [None, True, False, 3, 3.0, -2.5, "raw", [1, {"b": 2, "a": 1}], {"k": "v"}]
    assert await stringify([row], include_headers=False) == (
        ',true,false,3,3.0,-2.5,raw,"[1,{""a"":1,""b"":2}]","{""k"":""v""}"\n'
    )


async def test_csv_11_quoting_only_when_needed() -> None:
    row = ["a,b", 'q"x', "cr\rhere", "lf\nhere", " spaced ", "", "plain"]
    assert await stringify([row], include_headers=False) == (
        '"a,b","q""x","cr\rhere","lf\nhere", spaced ,,plain\n'
    )


async def test_csv_11_quote_all() -> None:
    assert await stringify([{"a": 1, "b": ""}], quote_all=True) == '"a","b"\n"1",""\n'


async def test_csv_11_empty_records_are_quoted_like_the_crate() -> None:
    assert await stringify([[""]], include_headers=False) == '""\n'
    assert await stringify({}) == '""\n""\n'
    assert await stringify([[], []]) == '""\n""\n""\n'


async def test_csv_stringify_custom_delimiter_and_quote() -> None:
    rows = [{"a": "x;y", "b": "it's"}]
    assert await stringify(rows, delimiter=";", quote_char="'") == "a;b\n'x;y';'it''s'\n"
    assert await stringify([[1, 2]], include_headers=False, delimiter="\\t") == "1\t2\n"


async def test_csv_round_trip() -> None:
    rows = [{"id": 1, "note": 'he said "hi", twice\nthen left', "ok": True}]
    text = await stringify(rows)
    assert await parse(text, infer_types=True) == rows


async def test_csv_stringify_errors() -> None:
    assert await stringify_fails([1], delimiter="ab") == "delimiter must be a single-byte character"
    with pytest.raises(NodeError, match="csv_stringify requires 'source_key'"):
        await run("csv_stringify", {}, output_key="csv")


async def test_example_02_csv_parse_stringify() -> None:
    raw = (
        "name,email,status\n"
        "Alice,alice@example.com,active\n"
        "Bob,bob@example.com,inactive\n"
        "Carol,carol@example.com,active\n"
        "Dave,dave@example.com,active"
    )
    users = await parse(raw, has_header=True, infer_types=True, delimiter=",")
    assert len(users) == 4 and users[0] == {
        "name": "Alice",
        "email": "alice@example.com",
        "status": "active",
    }
    assert await stringify(users, include_headers=True, delimiter=",") == (
        "email,name,status\nalice@example.com,Alice,active\nbob@example.com,Bob,inactive\n"
        "carol@example.com,Carol,active\ndave@example.com,Dave,active\n"
    )
