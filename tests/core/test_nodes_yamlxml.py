"""Node-level tests for yaml_parse, yaml_stringify, xml_parse, xml_stringify (semantics.md#yaml-xml)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ironflow_core.errors import NodeError
from ironflow_core.nodes import yamlxml
from ironflow_core.registry import build_registry
from ironflow_core.testing import call_node

REGISTRY = build_registry()


async def run_node(
    node_type: str, raw: dict[str, Any], data: dict[str, Any] | None = None
) -> dict[str, Any]:
    return await call_node(node_type, raw, data, registry=REGISTRY)


async def fails(node_type: str, raw: dict[str, Any], data: dict[str, Any] | None = None) -> str:
    with pytest.raises(NodeError) as info:
        await run_node(node_type, raw, data)
    return str(info.value)


async def parse_yaml(text: str) -> Any:
    return (await run_node("yaml_parse", {"input": text}))["yaml_data"]


async def parse_xml(text: str) -> Any:
    return (await run_node("xml_parse", {"input": text}))["xml_data"]


def nested_xml(depth: int) -> str:
    return "<a>" * depth + "</a>" * depth


def test_appendix_b_summaries() -> None:
    summaries = {name: REGISTRY.nodes[name].summary for name in REGISTRY.nodes}
    assert summaries["yaml_parse"] == "Parse a YAML string into a JSON value"
    assert summaries["yaml_stringify"] == "Convert a JSON value from context to a YAML string"
    assert summaries["xml_parse"] == "Parse XML string into a JSON object"
    assert summaries["xml_stringify"] == "Convert a JSON value to an XML string"


# -- yaml_parse ------------------------------------------------------------------------


async def test_yp_18_example_vector() -> None:
    out = await run_node(
        "yaml_parse",
        {
            "input": "server:\n  host: localhost\n  port: 8080\n  features:\n    - auth\n    - logging",
            "output_key": "config",
        },
    )
    assert out == {
        "config": {"server": {"features": ["auth", "logging"], "host": "localhost", "port": 8080}}
    }


async def test_yp_2_yaml_1_2_core_schema() -> None:
    data = await parse_yaml(
        "a: yes\nb: no\nc: on\nd: off\ne: true\nf: False\ng: TRUE\nh: 010\ni: 0o17\nj: 0x1F\n"
        "k: 1.5\nl: 1e3\nm: ~\nn:\no: null\np: 2024-01-01\nq: '42'\nr: -7\ns: .5\n"
    )
    assert data == {
        "a": "yes", "b": "no", "c": "on", "d": "off", "e": True, "f": False, "g": True,
        "h": 10, "i": 15, "j": 31, "k": 1.5, "l": 1000.0, "m": None, "n": None, "o": None,
        "p": "2024-01-01", "q": "42", "r": -7, "s": 0.5,
    }  # fmt: skip
    assert isinstance(data["h"], int)
    assert isinstance(data["l"], float)


async def test_yp_2_tags_dropped_and_keys_become_strings() -> None:
    data = await parse_yaml(
        "1: a\ntrue: b\n~: c\nx: !custom 7\ny: !!str 8\nz: !!float 2\nw: !thing [1]"
    )
    assert data == {"1": "a", "true": "b", "~": "c", "x": 7, "y": "8", "z": 2.0, "w": [1]}


async def test_yp_2_non_finite_floats_and_huge_integers() -> None:
    data = await parse_yaml(
        "a: .inf\nb: -.Inf\nc: .nan\nd: 99999999999999999999999\ne: 18446744073709551615"
    )
    assert data == {"a": None, "b": None, "c": None, "d": 1e23, "e": 18446744073709551615}


async def test_yp_aliases_are_copied() -> None:
    data = await parse_yaml("base: &b {x: 1}\nother: *b\nname: &n Bob\n*n : alias-key")
    assert data == {"base": {"x": 1}, "other": {"x": 1}, "name": "Bob", "Bob": "alias-key"}
    assert data["base"] is not data["other"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", None), ("# comment only", None), ("---\n[1, 2]\n...\n", [1, 2]), ("plain", "plain"),
     ("key: |\n  line1\n  line2\n", {"key": "line1\nline2\n"})],
)  # fmt: skip
async def test_yp_documents(text: str, expected: Any) -> None:
    assert await parse_yaml(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (":\n  - :\n  invalid: [unclosed", "YAML parse error: while parsing a block collection"),
        ("a: [unclosed\nb: c", "YAML parse error: while parsing a flow sequence"),
        ("a: 1\n---\nb: 2", "YAML parse error: the input contains more than one document"),
        ("a: 1\na: 2", "YAML parse error: duplicate mapping key 'a'"),
        ("? [1]\n: v", "YAML parse error: mapping keys must be scalars"),
        ("a: *nope", "YAML parse error: found undefined alias 'nope'"),
        ("a: &x [*x]", "YAML parse error: found undefined alias 'x'"),
        ("n: !!int abc", "YAML parse error: invalid !!int value 'abc'"),
    ],
)
async def test_yp_2_invalid_yaml(text: str, message: str) -> None:
    assert (await fails("yaml_parse", {"input": text})).startswith(message)


async def test_yp_2_deep_nesting_rejected_without_crash() -> None:
    assert await parse_yaml("[" * 128 + "]" * 128) is not None
    message = await fails("yaml_parse", {"input": "[" * 129 + "]" * 129})
    assert message == "YAML nesting depth exceeds the limit of 128"
    # The upstream vector: 5000 levels is a clean error, not a RecursionError.
    message = await fails("yaml_parse", {"input": "[" * 5000 + "]" * 5000})
    assert message == "YAML nesting depth exceeds the limit of 128"


async def test_yp_alias_bomb_rejected_quickly() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for index in range(1, 9):
        name, prev = chr(97 + index), chr(96 + index)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.monotonic()
    message = await fails("yaml_parse", {"input": "\n".join(lines)})
    assert message.startswith("YAML aliases expand to more than 100000 values")
    assert time.monotonic() - started < 5


async def test_yp_1_source_key_and_input_rules() -> None:
    out = await run_node("yaml_parse", {"source_key": "raw"}, {"raw": "key: value"})
    assert out == {"yaml_data": {"key": "value"}}
    # A non-string value is read as its compact JSON, which is YAML.
    out = await run_node("yaml_parse", {"source_key": "obj"}, {"obj": {"b": [1, "x"], "a": None}})
    assert out == {"yaml_data": {"a": None, "b": [1, "x"]}}
    out = await run_node("yaml_parse", {"input": "n: ${ctx.n}"}, {"n": 5})
    assert out == {"yaml_data": {"n": 5}}
    assert await fails("yaml_parse", {"input": "a", "source_key": "k"}) == (
        "yaml_parse: provide either 'input' or 'source_key', not both"
    )
    assert await fails("yaml_parse", {}) == "yaml_parse requires either 'input' or 'source_key'"
    assert await fails("yaml_parse", {"source_key": "gone"}) == "Key 'gone' not found in context"


# -- yaml_stringify --------------------------------------------------------------------


async def test_ys_1_block_style_sorted_keys_no_document_marker() -> None:
    config = {"server": {"host": "localhost", "port": 8080, "features": ["auth", "logging"]}}
    out = await run_node(
        "yaml_stringify", {"source_key": "config", "output_key": "yaml_config"}, {"config": config}
    )
    assert out == {
        "yaml_config": "server:\n  features:\n  - auth\n  - logging\n  host: localhost\n  port: 8080\n"
    }


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [1, 1.5, -0.0, None, True, False, {}, [], {"x": {"y": [1]}}]},
        ["yes", "no", "on", "true", "False", "null", "~", "", "010", "0x1F", "1e3", "+.5",
         ".inf", "-1", " lead", "trail ", "a: b", "- x", "#c", "é", "multi\nline", "'q'", '"dq"',
         "@at", "%pct", "!bang", "&amp", "*star"],
        None, "plain", 5, 2.5, True, [], {},
    ],
)  # fmt: skip
async def test_ys_1_reparsing_yields_the_input(value: Any) -> None:
    out = await run_node("yaml_stringify", {"source_key": "v"}, {"v": value})
    text = out["yaml"]
    assert not text.startswith("---")
    assert "\n..." not in text
    assert await parse_yaml(text) == value


async def test_ys_1_errors() -> None:
    assert await fails("yaml_stringify", {}) == "yaml_stringify requires 'source_key'"
    assert (
        await fails("yaml_stringify", {"source_key": "gone"}) == "Key 'gone' not found in context"
    )


# -- xml_parse -------------------------------------------------------------------------


async def test_xp_3_vector() -> None:
    out = await run_node(
        "xml_parse",
        {
            "input": '<catalog><book id="1"><title>Rust in Action</title>'
            "<price>39.99</price></book></catalog>",
            "output_key": "catalog",
        },
    )
    assert out == {
        "catalog": {"catalog": {"book": {"@id": "1", "price": "39.99", "title": "Rust in Action"}}}
    }


async def test_xp_2_mapping_rules() -> None:
    assert await parse_xml("<a><b>1</b><b>2</b><c/><b>3</b></a>") == {
        "a": {"b": ["1", "2", "3"], "c": None}
    }
    assert await parse_xml("<a/>") == {"a": None}
    assert await parse_xml("<a></a>") == {"a": None}
    assert await parse_xml('<a k="v"/>') == {"a": {"@k": "v"}}
    assert await parse_xml('<a k="v">text</a>') == {"a": {"#text": "text", "@k": "v"}}
    assert await parse_xml("<a>\n  <b> padded </b>\n</a>") == {"a": {"b": "padded"}}
    assert await parse_xml('<ns:a xmlns:ns="u"><ns:b>x</ns:b></ns:a>') == {
        "ns:a": {"@xmlns:ns": "u", "ns:b": "x"}
    }


async def test_xp_2_attributes_raw_text_decoded() -> None:
    data = await parse_xml("<a x=\"a &amp; b\" y='&lt;'>Tom &amp; Jerry &#65;&#x42;</a>")
    assert data == {"a": {"#text": "Tom & Jerry AB", "@x": "a &amp; b", "@y": "&lt;"}}


async def test_xp_2_last_text_wins_cdata_comments_pis_ignored() -> None:
    data = await parse_xml("<a>one<b/>two<!-- c -->three<?pi x?><![CDATA[cdata]]></a>")
    assert data == {"a": {"#text": "three", "b": None}}
    assert await parse_xml("<a><![CDATA[only]]></a>") == {"a": None}


async def test_xp_2_scalars_stay_strings_and_declared_encoding_is_ignored() -> None:
    data = await parse_xml('<?xml version="1.0" encoding="ISO-8859-1"?><r><n>42</n><t>é</t></r>')
    assert data == {"r": {"n": "42", "t": "é"}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Empty or invalid XML document"),
        ("  \n ", "Empty or invalid XML document"),
        ("not xml", "XML parse error: syntax error: line 1, column 0"),
        ("<a><b></a>", "XML parse error: mismatched tag: line 1, column 8"),
        ("<a>&undefined;</a>", "XML parse error: undefined entity: line 1, column 3"),
        ("<a/><b/>", "XML parse error: junk after document element: line 1, column 4"),
        ("<a>", "XML parse error: no element found: line 1, column 3"),
    ],
)
async def test_xp_2_invalid_documents(text: str, message: str) -> None:
    assert await fails("xml_parse", {"input": text}) == message


async def test_xp_billion_laughs_rejected_without_expansion() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + "".join(
            f'<!ENTITY lol{i} "' + f"&lol{i - 1 if i > 1 else ''};" * 10 + '">'
            for i in range(1, 10)
        )
        + "]><lolz>&lol9;</lolz>"
    )
    started = time.monotonic()
    assert await fails("xml_parse", {"input": bomb}) == (
        "XML parse error: entity declarations are not allowed"
    )
    assert time.monotonic() - started < 5


async def test_xp_external_entities_and_dtds_rejected() -> None:
    xxe = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    assert await fails("xml_parse", {"input": xxe}) == (
        "XML parse error: entity declarations are not allowed"
    )
    external = '<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><x>&foo;</x>'
    assert await fails("xml_parse", {"input": external}) == (
        "XML parse error: external references are not allowed"
    )


async def test_xp_2_nesting_limit() -> None:
    assert await parse_xml(nested_xml(64)) is not None
    assert await parse_xml(nested_xml(128)) is not None
    # An empty element below the 128th level is not a new level (upstream counts start tags).
    assert await parse_xml("<a>" * 128 + "<b/>" + "</a>" * 128) is not None
    for depth in (129, 300):
        message = await fails("xml_parse", {"input": nested_xml(depth)})
        assert message == "XML nesting depth exceeds the limit of 128"


async def test_xp_2_pathological_depth_fails_fast() -> None:
    started = time.monotonic()
    message = await fails("xml_parse", {"input": nested_xml(200_000)})
    assert message == "XML nesting depth exceeds the limit of 128"
    assert time.monotonic() - started < 5


async def test_xp_large_documents_parse_in_a_worker_thread() -> None:
    items = "".join(f"<item id='{i}'>v{i}</item>" for i in range(5000))
    text = f"<list>{items}</list>"
    assert len(text) > yamlxml.THREAD_THRESHOLD
    data = await parse_xml(text)
    assert len(data["list"]["item"]) == 5000
    assert data["list"]["item"][4999] == {"#text": "v4999", "@id": "4999"}


async def test_xp_1_input_rules() -> None:
    out = await run_node("xml_parse", {"source_key": "x"}, {"x": "<item><name>Test</name></item>"})
    assert out == {"xml_data": {"item": {"name": "Test"}}}
    out = await run_node("xml_parse", {"input": "<r>${ctx.v}</r>"}, {"v": "hi"})
    assert out == {"xml_data": {"r": "hi"}}
    assert await fails("xml_parse", {"input": "<a/>", "source_key": "x"}) == (
        "xml_parse accepts either 'input' or 'source_key', not both"
    )
    assert (
        await fails("xml_parse", {}) == "xml_parse requires either 'input' string or 'source_key'"
    )
    # A non-string source value is its JSON text, which is not XML.
    assert (await fails("xml_parse", {"source_key": "n"}, {"n": 5})).startswith("XML parse error")


# -- xml_stringify ---------------------------------------------------------------------


async def test_xs_3_vector() -> None:
    out = await run_node(
        "xml_stringify",
        {"source_key": "catalog", "output_key": "xml_catalog", "pretty": True,
         "root_tag": "catalog_root"},
        {"catalog": {"book": {"id": "1", "title": "Rust in Action", "price": 39.99}}},
    )  # fmt: skip
    assert out == {
        "xml_catalog": '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<catalog_root>\n"
        "  <book>\n"
        "    <id>1</id>\n"
        "    <price>39.99</price>\n"
        "    <title>Rust in Action</title>\n"
        "  </book>\n"
        "</catalog_root>\n"
    }


async def test_xs_2_compact_mapping_rules() -> None:
    value = {
        "@id": "7", "@n": 1, "#text": "t & <u>", "c": [1, None, True, 2.5, {"@k": "v"},
        {"#text": "only"}, {"@k": "v", "#text": "both"}], "d": {}, "e": "q\"'",
    }  # fmt: skip
    out = await run_node("xml_stringify", {"source_key": "v"}, {"v": value})
    assert out == {
        "xml": '<?xml version="1.0" encoding="UTF-8"?>'
        '<root id="7">t &amp; &lt;u&gt;<c>1</c><c/><c>true</c><c>2.5</c><c k="v"/>'
        '<c>only</c><c k="v">both</c><d/><e>q&quot;&apos;</e></root>'
    }


async def test_xs_2_pretty_text_before_children_and_scalars() -> None:
    out = await run_node(
        "xml_stringify",
        {"source_key": "v", "pretty": "yes", "root_tag": "r"},
        {"v": {"#text": "hello", "b": "x"}},
    )
    assert out["xml"] == (
        '<?xml version="1.0" encoding="UTF-8"?>\n<r>\n  hello\n  <b>x</b>\n</r>\n'
    )
    out = await run_node("xml_stringify", {"source_key": "v"}, {"v": None})
    assert out["xml"] == '<?xml version="1.0" encoding="UTF-8"?><root/>'
    out = await run_node("xml_stringify", {"source_key": "v"}, {"v": ["a", "b"]})
    assert out["xml"] == '<?xml version="1.0" encoding="UTF-8"?><root>a</root><root>b</root>'


async def test_xs_1_errors() -> None:
    assert await fails("xml_stringify", {}) == "xml_stringify requires 'source_key'"
    assert await fails("xml_stringify", {"source_key": "gone"}) == "Key 'gone' not found in context"


async def test_xs_roundtrip_through_xml_parse() -> None:
    out = await run_node(
        "xml_stringify", {"source_key": "v"}, {"v": {"book": {"@id": "1", "t": "x"}}}
    )
    assert await parse_xml(out["xml"]) == {"root": {"book": {"@id": "1", "t": "x"}}}
