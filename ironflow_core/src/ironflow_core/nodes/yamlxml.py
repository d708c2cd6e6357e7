"""YAML and XML nodes: ``yaml_parse``, ``yaml_stringify``, ``xml_parse``, ``xml_stringify`` (semantics.md#yaml-xml).

YAML is read with ruamel.yaml's pure-Python event parser, and the JSON value is
built from the events here rather than by a constructor: that is where YAML
1.2 core-schema resolution lives (``yes`` stays a string, ``010`` is 10), and
where hostile input is bounded: nesting deeper than 128, and aliases that
would expand past a fixed budget (the "billion laughs" of YAML), are errors
before any large value exists.

XML is read with defusedxml's hardened expat reader (entity declarations and
external references refused), feeding a small tree builder with the mapping
of XP-2. The parsers are imported inside the run functions, and large inputs
are parsed in a worker thread so the run's other steps keep going.
"""

from __future__ import annotations

import copy
import io
import math
import re
from collections.abc import Callable
from functools import cache
from typing import Any

import attrs
import trio

from ironflow_core import jsonutil
from ironflow_core._compat.numbers import serde_int
from ironflow_core.configs import Interpolated, lenient
from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.nodes.textinput import text_input
from ironflow_core.params import BoolParam, lenient_bool, source_value
from ironflow_core.specs import NodeSpec

MAX_NESTING_DEPTH = 128
"""Deepest nesting accepted by ``xml_parse`` and ``yaml_parse`` (upstream's limit)."""
MAX_ALIAS_EXPANSION = 100_000
"""Values that YAML aliases may copy in one document; literal content is not counted."""
THREAD_THRESHOLD = 64 * 1024
"""Inputs larger than this are parsed in a worker thread."""


async def _parse(parse: Callable[[str], Any], text: str) -> Any:
    if len(text) > THREAD_THRESHOLD:
        return await trio.to_thread.run_sync(parse, text)
    return parse(text)


# -- YAML 1.2 core schema -------------------------------------------------------------

_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_INT_DEC = re.compile(r"[-+]?[0-9]+\Z")
_INT_OCT = re.compile(r"0o[0-7]+\Z")
_INT_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
_INF = re.compile(r"[-+]?\.(?:inf|Inf|INF)\Z")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)\Z")

_TAG_PREFIX = "tag:yaml.org,2002:"


def _json_float(number: float) -> float | None:
    # Non-finite numbers are not JSON: upstream turns them into null.
    return number if math.isfinite(number) else None


def resolve_plain(text: str) -> Any:
    """The value of an untagged plain scalar under the YAML 1.2 core schema."""
    if text in _NULL:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _INT_DEC.match(text):
        return serde_int(int(text))
    if _INT_OCT.match(text):
        return serde_int(int(text[2:], 8))
    if _INT_HEX.match(text):
        return serde_int(int(text[2:], 16))
    if _FLOAT.match(text):
        try:
            return _json_float(float(text))
        except OverflowError:  # pragma: no cover - float() returns inf instead
            return None
    if _INF.match(text) or _NAN.match(text):
        return None
    return text


def _resolve_scalar(value: str, tag: str | None, plain: bool) -> Any:
    """Standard tags are honoured; any other tag is dropped and the value resolved as written."""
    name = tag[len(_TAG_PREFIX) :] if tag and tag.startswith(_TAG_PREFIX) else None
    if name in ("str", "binary", "timestamp"):
        return value
    if name in ("null", "bool", "int", "float"):
        resolved = resolve_plain(value)
        expected: dict[str, Any] = {
            "null": type(None),
            "bool": bool,
            "int": (int, float),
            "float": (float,),
        }
        if name == "float" and isinstance(resolved, int) and not isinstance(resolved, bool):
            resolved = float(resolved)
        if name == "float" and resolved is None and (_INF.match(value) or _NAN.match(value)):
            return None
        if not isinstance(resolved, expected[name]) or (
            name == "int" and isinstance(resolved, bool)
        ):
            raise NodeError(f"YAML parse error: invalid !!{name} value '{value}'")
        return resolved
    return resolve_plain(value) if plain else value


@attrs.define
class _Frame:
    container: Any
    anchor: str | None
    key: str | None = None
    has_key: bool = False
    size: int = 1
    height: int = 1


class _YamlBuilder:
    """Turns ruamel parse events into one JSON value, enforcing the limits."""

    def __init__(self) -> None:
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int, int, str | None]] = {}
        """name -> (value, size, height, scalar text or None for collections)."""
        self.expanded = 0
        self.documents = 0
        self.result: Any = None

    def depth_error(self) -> NodeError:
        return NodeError(f"YAML nesting depth exceeds the limit of {MAX_NESTING_DEPTH}")

    def start(self, container: Any, anchor: str | None) -> None:
        if len(self.stack) >= MAX_NESTING_DEPTH:
            raise self.depth_error()
        self.stack.append(_Frame(container, anchor))

    def end(self) -> None:
        frame = self.stack.pop()
        if frame.anchor is not None:
            self.anchors[frame.anchor] = (frame.container, frame.size, frame.height, None)
        self.add(frame.container, frame.size, frame.height, key_text=None)

    def scalar(self, value: Any, raw: str, anchor: str | None) -> None:
        if anchor is not None:
            self.anchors[anchor] = (value, 1, 0, raw)
        self.add(value, 1, 0, key_text=raw)

    def alias(self, name: str) -> None:
        if name not in self.anchors:
            raise NodeError(f"YAML parse error: found undefined alias '{name}'")
        value, size, height, key_text = self.anchors[name]
        if len(self.stack) + height > MAX_NESTING_DEPTH:
            raise self.depth_error()
        self.expanded += size
        if self.expanded > MAX_ALIAS_EXPANSION:
            raise NodeError(
                f"YAML aliases expand to more than {MAX_ALIAS_EXPANSION} values; "
                "refusing to build the document"
            )
        self.add(copy.deepcopy(value), size, height, key_text=key_text)

    def add(self, value: Any, size: int, height: int, *, key_text: str | None) -> None:
        if not self.stack:
            self.result = value
            return
        frame = self.stack[-1]
        frame.size += size
        frame.height = max(frame.height, height + 1)
        if isinstance(frame.container, list):
            frame.container.append(value)
        elif not frame.has_key:
            if key_text is None:
                raise NodeError("YAML parse error: mapping keys must be scalars")
            if key_text in frame.container:
                raise NodeError(f"YAML parse error: duplicate mapping key '{key_text}'")
            frame.key, frame.has_key = key_text, True
        else:
            frame.container[frame.key] = value
            frame.key, frame.has_key = None, False


def _yaml_error_text(exc: Exception) -> str:
    problem = getattr(exc, "problem", None)
    if problem:
        context = getattr(exc, "context", None)
        text = f"{context}: {problem}" if context else str(problem)
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            text += f" at line {mark.line + 1}, column {mark.column + 1}"
        return text
    return " ".join(str(exc).split())


def load_yaml(text: str) -> Any:
    """Parse one YAML document into JSON (YP-2); several documents are an error."""
    from ruamel.yaml import YAML
    from ruamel.yaml import events as ev
    from ruamel.yaml.error import YAMLError

    builder = _YamlBuilder()
    try:
        for event in YAML(typ="safe", pure=True).parse(text):
            if isinstance(event, ev.ScalarEvent):
                plain = event.style is None
                tag = event.tag if isinstance(event.tag, str) else None
                value = _resolve_scalar(event.value, tag, plain)
                builder.scalar(value, event.value, event.anchor)
            elif isinstance(event, ev.SequenceStartEvent):
                builder.start([], event.anchor)
            elif isinstance(event, ev.MappingStartEvent):
                builder.start({}, event.anchor)
            elif isinstance(event, ev.CollectionEndEvent):
                builder.end()
            elif isinstance(event, ev.AliasEvent):
                builder.alias(event.anchor)
            elif isinstance(event, ev.DocumentStartEvent):
                builder.documents += 1
                if builder.documents > 1:
                    raise NodeError("YAML parse error: the input contains more than one document")
    except YAMLError as exc:
        raise NodeError(f"YAML parse error: {_yaml_error_text(exc)}") from None
    except RecursionError:  # pragma: no cover - the depth limit comes first
        raise builder.depth_error() from None
    return builder.result


def _sorted_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_copy(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_copy(v) for v in value]
    return value


@cache
def _yaml_representer() -> type:
    """ruamel's safe representer, quoting strings a 1.2 reader would not read as strings."""
    from ruamel.yaml.representer import SafeRepresenter

    class _Representer(SafeRepresenter):
        def represent_str(self, data: str) -> Any:
            if not isinstance(resolve_plain(data), str):
                return self.represent_scalar(_TAG_PREFIX + "str", data, style="'")
            return super().represent_str(data)

    # A subclass gets its own representer table: the global SafeRepresenter is untouched.
    _Representer.add_representer(str, _Representer.represent_str)
    return _Representer


def dump_yaml(value: Any) -> str:
    """YS-1: block-style YAML, keys sorted, no ``---`` marker; re-parses to ``value``."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.Representer = _yaml_representer()
    yaml.default_flow_style = False
    yaml.width = 1 << 30  # never fold long strings
    yaml.allow_unicode = True
    out = io.StringIO()
    yaml.dump(_sorted_copy(value), out)
    text = out.getvalue()
    if text.endswith("\n...\n"):  # ruamel closes a lone top-level scalar with "..."
        text = text[: -len("...\n")]
    return text


@attrs.frozen
class YamlParseConfig:
    """``yaml_parse``'s parameters, as the flow's table gives them."""

    input: Interpolated | None = lenient()
    source_key: str | None = lenient()
    output_key: str = lenient("yaml_data")


async def yaml_parse(ctx: NodeContext, config: YamlParseConfig) -> dict[str, Any]:
    """YP-1/2: the JSON value of a YAML document under ``output_key``."""
    text = text_input(
        ctx,
        config.input,
        config.source_key,
        both="yaml_parse: provide either 'input' or 'source_key', not both",
        neither="yaml_parse requires either 'input' or 'source_key'",
    )
    return {config.output_key: await _parse(load_yaml, text)}


@attrs.frozen
class YamlStringifyConfig:
    """``yaml_stringify``'s parameters, as the flow's table gives them."""

    source_key: str | None = lenient()
    output_key: str = lenient("yaml")


async def yaml_stringify(ctx: NodeContext, config: YamlStringifyConfig) -> dict[str, Any]:
    """YS-1: block YAML of the ``source_key`` value."""
    if config.source_key is None:
        raise NodeError("yaml_stringify requires 'source_key'")
    value = source_value(ctx, config.source_key)
    try:
        text = dump_yaml(value)
    except RecursionError:
        raise NodeError("yaml_stringify: the value is nested too deeply") from None
    return {config.output_key: text}


# -- XML --------------------------------------------------------------------------------

_ATTRIBUTE = re.compile(rb"""([^\s=/>]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_XML_SPACE = " \t\r\n"


def _start_tag_end(raw: bytes, start: int) -> int:
    """Index just past the ``>`` closing the start tag at ``start`` (quotes respected)."""
    quote = 0
    for index in range(start, len(raw)):
        byte = raw[index]
        if quote:
            if byte == quote:
                quote = 0
        elif byte in (0x22, 0x27):
            quote = byte
        elif byte == 0x3E:
            return index + 1
    return len(raw)  # pragma: no cover - expat rejects an unterminated tag first


class _XmlBuilder:
    """Builds ``{root: value}`` from expat callbacks following XP-2."""

    def __init__(self, raw: bytes, position: Callable[[], int]) -> None:
        self.raw = raw
        self.position = position
        self.stack: list[tuple[str, dict[str, Any]]] = []
        self.root: tuple[str, Any] | None = None
        self.text: list[str] = []
        self.in_cdata = False

    def flush(self) -> None:
        """End a run of character data: its trimmed text, if any, becomes ``#text``."""
        if self.text:
            text = "".join(self.text).strip(_XML_SPACE)
            self.text = []
            if text and self.stack:
                self.stack[-1][1]["#text"] = text

    def start(self, name: str, _attrs: Any) -> None:
        self.flush()
        begin = self.position()
        end = _start_tag_end(self.raw, begin)
        tag = self.raw[begin:end]
        if len(self.stack) >= MAX_NESTING_DEPTH and not tag.endswith(b"/>"):
            raise NodeError(f"XML nesting depth exceeds the limit of {MAX_NESTING_DEPTH}")
        members: dict[str, Any] = {}
        for match in _ATTRIBUTE.finditer(tag, 1 + len(name.encode("utf-8"))):
            raw_value = match.group(2) if match.group(2) is not None else match.group(3)
            key = "@" + match.group(1).decode("utf-8", "replace")
            members[key] = raw_value.decode("utf-8", "replace")
        self.stack.append((name, members))

    def end(self, _name: str) -> None:
        self.flush()
        name, members = self.stack.pop()
        if len(members) == 1 and "#text" in members:
            value: Any = members["#text"]
        else:
            value = members or None
        if not self.stack:
            self.root = (name, value)
            return
        parent = self.stack[-1][1]
        if name in parent:
            existing = parent[name]
            if isinstance(existing, list):
                existing.append(value)
            else:
                parent[name] = [existing, value]
        else:
            parent[name] = value

    def characters(self, data: str) -> None:
        if not self.in_cdata:
            self.text.append(data)

    def boundary(self, *_args: Any) -> None:
        """Comments and processing instructions split text runs and are otherwise ignored."""
        self.flush()

    def start_cdata(self) -> None:
        self.flush()
        self.in_cdata = True

    def end_cdata(self) -> None:
        self.in_cdata = False


def load_xml(text: str) -> dict[str, Any]:
    """Parse XML into ``{root_tag: value}`` (XP-2) with expansion-proof, depth-bounded expat."""
    from xml.sax import SAXParseException
    from xml.sax.xmlreader import InputSource

    from defusedxml.common import DefusedXmlException
    from defusedxml.expatreader import DefusedExpatParser

    if not text.strip(_XML_SPACE):
        raise NodeError("Empty or invalid XML document")
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        raise NodeError("XML parse error: the input is not valid UTF-8 text") from None

    class _Reader(DefusedExpatParser):
        """The defused expat driver, with XP-2's callbacks in place of SAX events."""

        builder: _XmlBuilder

        def reset(self) -> None:
            super().reset()  # a fresh expat parser with the entity/external guards
            parser = self._parser
            self.builder = _XmlBuilder(raw, lambda: parser.CurrentByteIndex)
            parser.buffer_text = True
            parser.StartElementHandler = self.builder.start
            parser.EndElementHandler = self.builder.end
            parser.CharacterDataHandler = self.builder.characters
            parser.CommentHandler = self.builder.boundary
            parser.ProcessingInstructionHandler = self.builder.boundary
            parser.StartCdataSectionHandler = self.builder.start_cdata
            parser.EndCdataSectionHandler = self.builder.end_cdata

    source = InputSource()
    source.setEncoding("utf-8")  # the text is Unicode already: ignore any declared encoding
    source.setByteStream(io.BytesIO(raw))
    reader = _Reader()
    try:
        reader.parse(source)
    except DefusedXmlException as exc:
        detail = _DEFUSED_TEXT.get(type(exc).__name__, type(exc).__name__)
        raise NodeError(f"XML parse error: {detail}") from None
    except SAXParseException as exc:
        raise NodeError(
            f"XML parse error: {exc.getMessage()}: line {exc.getLineNumber()}, "
            f"column {exc.getColumnNumber()}"
        ) from None
    root = reader.builder.root
    if root is None:  # pragma: no cover - expat reports "no element found" first
        raise NodeError("Empty or invalid XML document")
    return {root[0]: root[1]}


_DEFUSED_TEXT = {
    "EntitiesForbidden": "entity declarations are not allowed",
    "ExternalReferenceForbidden": "external references are not allowed",
    "DTDForbidden": "document type declarations are not allowed",
}


def _escape_xml(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return jsonutil.dumps(value)


def _write_element(out: list[str], tag: str, value: Any, pretty: bool, depth: int) -> None:
    indent = "  " * depth if pretty else ""
    newline = "\n" if pretty else ""
    if isinstance(value, dict):
        _write_object(out, tag, value, pretty, depth)
    elif isinstance(value, list):
        for item in value:
            _write_element(out, tag, item, pretty, depth)
    elif isinstance(value, str):
        out.append(f"{indent}<{tag}>{_escape_xml(value)}</{tag}>{newline}")
    elif value is None:
        out.append(f"{indent}<{tag}/>{newline}")
    else:
        out.append(f"{indent}<{tag}>{_scalar_text(value)}</{tag}>{newline}")


def _write_object(
    out: list[str], tag: str, members: dict[str, Any], pretty: bool, depth: int
) -> None:
    indent = "  " * depth if pretty else ""
    newline = "\n" if pretty else ""
    attributes = ""
    text: str | None = None
    children: list[tuple[str, Any]] = []
    for key in sorted(members):
        value = members[key]
        if key.startswith("@"):
            if isinstance(value, str):
                attributes += f' {key[1:]}="{_escape_xml(value)}"'
        elif key == "#text":
            if isinstance(value, str):
                text = value
        else:
            children.append((key, value))
    if not children and text is None:
        out.append(f"{indent}<{tag}{attributes}/>{newline}")
        return
    if not children:
        out.append(f"{indent}<{tag}{attributes}>{_escape_xml(text or '')}</{tag}>{newline}")
        return
    out.append(f"{indent}<{tag}{attributes}>{newline}")
    if text is not None:
        text_indent = "  " * (depth + 1) if pretty else ""
        out.append(f"{text_indent}{_escape_xml(text)}{newline}")
    for child_tag, child in children:
        _write_element(out, child_tag, child, pretty, depth + 1)
    out.append(f"{indent}</{tag}>{newline}")


def dump_xml(value: Any, root_tag: str, pretty: bool) -> str:
    """XS-2: the declaration, then ``value`` wrapped in ``root_tag``."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>' + ("\n" if pretty else "")]
    _write_element(out, root_tag, value, pretty, 0)
    return "".join(out)


@attrs.frozen
class XmlParseConfig:
    """``xml_parse``'s parameters, as the flow's table gives them."""

    input: Interpolated | None = lenient()
    source_key: str | None = lenient()
    output_key: str = lenient("xml_data")


async def xml_parse(ctx: NodeContext, config: XmlParseConfig) -> dict[str, Any]:
    """XP-1/2: ``{root: value}`` under ``output_key``; scalars stay strings."""
    text = text_input(
        ctx,
        config.input,
        config.source_key,
        both="xml_parse accepts either 'input' or 'source_key', not both",
        neither="xml_parse requires either 'input' string or 'source_key'",
    )
    return {config.output_key: await _parse(load_xml, text)}


@attrs.frozen
class XmlStringifyConfig:
    """``xml_stringify``'s parameters, as the flow's table gives them."""

    source_key: str | None = lenient()
    output_key: str = lenient("xml")
    root_tag: str = lenient("root")
    pretty: BoolParam = None


async def xml_stringify(ctx: NodeContext, config: XmlStringifyConfig) -> dict[str, Any]:
    """XS-1/2: the ``source_key`` value as XML text."""
    if config.source_key is None:
        raise NodeError("xml_stringify requires 'source_key'")
    pretty = lenient_bool(ctx, config.pretty, False)
    value = source_value(ctx, config.source_key)
    try:
        text = dump_xml(value, config.root_tag, pretty)
    except RecursionError:
        raise NodeError("xml_stringify: the value is nested too deeply") from None
    return {config.output_key: text}


NODES: list[NodeSpec] = [
    NodeSpec(
        name="yaml_parse",
        run=yaml_parse,
        config=YamlParseConfig,
        summary="Parse a YAML string into a JSON value",
    ),
    NodeSpec(
        name="yaml_stringify",
        run=yaml_stringify,
        config=YamlStringifyConfig,
        summary="Convert a JSON value from context to a YAML string",
    ),
    NodeSpec(
        name="xml_parse",
        run=xml_parse,
        config=XmlParseConfig,
        summary="Parse XML string into a JSON object",
    ),
    NodeSpec(
        name="xml_stringify",
        run=xml_stringify,
        config=XmlStringifyConfig,
        summary="Convert a JSON value to an XML string",
    ),
]
