"""CSV nodes (semantics.md#data-nodes ``csv_parse``/``csv_stringify``) over Python's ``csv`` module.

Upstream uses Rust's ``csv`` crate; Python's reader and writer agree on the
RFC 4180 grammar but not on the edges, so this module wraps them: it skips the
blank lines Python reports as ``[]``, enforces the equal field count per record
with the crate's error text (record, line and byte of the offending record),
quotes ``\\r`` and empty records the way the crate does, and ends every record
with ``\\n``.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs

from ironflow_core import jsonutil
from ironflow_core._compat.whitespace import RUST_WHITESPACE
from ironflow_core.configs import run_required
from ironflow_core.errors import NodeError
from ironflow_core.params import BoolParam, lenient_bool, required_str, source_value
from ironflow_core.specs import NodeSpec

if TYPE_CHECKING:
    from ironflow_core.context import NodeContext

_ESCAPED_BYTES = {"\\t": "\t", "\\n": "\n", "\\r": "\r"}


def single_byte(name: str, value: Any, default: str) -> str:
    """``delimiter``/``quote_char``: one byte, or the two-character ``\\t``/``\\n``/``\\r``."""
    if not isinstance(value, str):
        return default
    if value in _ESCAPED_BYTES:
        return _ESCAPED_BYTES[value]
    if len(value.encode("utf-8")) != 1:
        raise NodeError(f"{name} must be a single-byte character")
    return value


# -- reading -----------------------------------------------------------------------------


class _Lines:
    """Feeds the csv reader line by line while counting bytes and ``\\n`` consumed."""

    def __init__(self, text: str) -> None:
        self._lines = iter(io.StringIO(text, newline=""))
        self.bytes = 0
        self.newlines = 0
        self.last = ""

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.bytes += len(line.encode("utf-8", "surrogatepass"))
        self.newlines += line.count("\n")
        self.last = line
        return line

    def record_end(self) -> tuple[int, int]:
        """Byte offset and 1-based line where the crate places the next record.

        The crate ends a record on the ``\\r`` of a ``\\r\\n`` pair and consumes
        the ``\\n`` only when it reads the next one.
        """
        if self.last.endswith("\r\n"):
            return self.bytes - 1, self.newlines
        return self.bytes, self.newlines + 1


def read_records(text: str, delimiter: str, quote_char: str) -> Iterator[list[str]]:
    """RFC 4180 records; blank lines skipped; every record as wide as the first (CSV-1)."""
    offset = 0
    if text.startswith("\ufeff"):  # the crate drops a leading UTF-8 BOM
        text, offset = text[1:], 3
    if csv.field_size_limit() < len(text) + 1:
        csv.field_size_limit(len(text) + 1)
    lines = _Lines(text)
    try:
        reader = csv.reader(
            lines, delimiter=delimiter, quotechar=quote_char, doublequote=True, strict=False
        )
    except (TypeError, ValueError, csv.Error) as exc:
        raise NodeError(f"CSV error: {exc}") from None
    number, expected = 0, None
    start_byte, start_line = 0, 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise NodeError(f"CSV error: {exc}") from None
        if not record:
            continue
        if expected is None:
            expected = len(record)
        elif len(record) != expected:
            raise NodeError(
                f"CSV error: record {number} (line: {start_line}, byte: {start_byte + offset}): "
                f"found record with {len(record)} fields, but the previous record has "
                f"{expected} fields"
            )
        number += 1
        yield record
        start_byte, start_line = lines.record_end()


_I64 = re.compile(r"[+-]?[0-9]+")
_F64 = re.compile(
    r"[+-]?(?:inf|infinity|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?)", re.IGNORECASE
)


def infer_value(text: str) -> Any:
    """CSV-2: bool, ``""``, i64, f64 (non-finite → null), else the trimmed text."""
    trimmed = text.strip(RUST_WHITESPACE)
    lowered = trimmed.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if not trimmed:
        return ""
    if _I64.fullmatch(trimmed) and -(2**63) <= int(trimmed) < 2**63:
        return int(trimmed)
    if _F64.fullmatch(trimmed):
        number = float(trimmed)
        return number if math.isfinite(number) else None
    return trimmed


@attrs.frozen
class CsvParseConfig:
    """``csv_parse``'s parameters, as the flow's table gives them."""

    source_key: str | None = run_required(lenient=True)
    output_key: str | None = run_required(lenient=True)
    has_header: BoolParam = None
    delimiter: Any = None
    quote_char: Any = None
    trim: BoolParam = None
    skip_empty_lines: BoolParam = None
    infer_types: BoolParam = None


async def csv_parse(ctx: NodeContext, config: CsvParseConfig) -> dict[str, Any]:
    """The ``csv_parse`` node: parse CSV text from context into structured JSON data."""
    source_key = required_str("csv_parse", "source_key", config.source_key)
    output_key = required_str("csv_parse", "output_key", config.output_key)
    has_header = lenient_bool(ctx, config.has_header, True)
    trim = lenient_bool(ctx, config.trim, False)
    skip_empty = lenient_bool(ctx, config.skip_empty_lines, True)
    infer = lenient_bool(ctx, config.infer_types, False)
    text = source_value(ctx, source_key)
    if not isinstance(text, str):
        raise NodeError(f"Value at '{source_key}' is not a string")
    delimiter = single_byte("delimiter", config.delimiter, ",")
    quote_char = single_byte("quote_char", config.quote_char, '"')

    def convert(field: str) -> Any:
        return infer_value(field) if infer else field

    records = read_records(text, delimiter, quote_char)
    if trim:
        records = ([field.strip(RUST_WHITESPACE) for field in record] for record in records)
    headers = next(records, None) if has_header else None
    rows: list[Any] = []
    for record in records:
        if skip_empty and all(not field for field in record):
            continue
        if headers is None:
            rows.append([convert(field) for field in record])
        else:
            rows.append({name: convert(field) for name, field in zip(headers, record, strict=True)})
    return {output_key: rows}


# -- writing -----------------------------------------------------------------------------


def cell_text(value: Any) -> str:
    """CSV-11: null → empty, strings raw, everything else canonical compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return jsonutil.dumps(value)


class _Writer:
    """Python's writer with the crate's rules: ``\\r`` forces quotes, ``\\n`` ends records."""

    def __init__(self, delimiter: str, quote_char: str, quote_all: bool) -> None:
        self._buffer = io.StringIO()
        self._quote_char = quote_char
        self._quote_all = quote_all
        try:
            # "\r\n" as the terminator makes Python quote fields holding either byte.
            self._writer = csv.writer(
                self._buffer,
                delimiter=delimiter,
                quotechar=quote_char,
                doublequote=True,
                lineterminator="\r\n",
                quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
            )
        except (TypeError, ValueError, csv.Error) as exc:
            raise NodeError(f"CSV error: {exc}") from None
        self._parts: list[str] = []

    def row(self, cells: list[str]) -> None:
        if not cells:
            # the crate writes a record without any field as a quoted empty field
            self._parts.append(self._quote_char * 2 + "\n")
            return
        self._buffer.seek(0)
        self._buffer.truncate()
        try:
            self._writer.writerow(cells)
        except csv.Error as exc:
            raise NodeError(f"CSV error: {exc}") from None
        self._parts.append(self._buffer.getvalue()[:-2] + "\n")

    def text(self) -> str:
        return "".join(self._parts)


@attrs.frozen
class CsvStringifyConfig:
    """``csv_stringify``'s parameters, as the flow's table gives them."""

    source_key: str | None = run_required(lenient=True)
    output_key: str | None = run_required(lenient=True)
    include_headers: BoolParam = None
    quote_all: BoolParam = None
    delimiter: Any = None
    quote_char: Any = None


_MIXED = "csv_stringify array must contain only objects, only arrays, or only scalar values"


def _write_array(writer: _Writer, values: list[Any], headers: bool) -> None:
    kinds = {dict if isinstance(v, dict) else list if isinstance(v, list) else None for v in values}
    if len(kinds) > 1:
        raise NodeError(_MIXED)
    kind = kinds.pop() if kinds else None
    if kind is dict:
        names = sorted({name for value in values for name in value})
        if headers:
            writer.row(names)
        for value in values:
            writer.row([cell_text(value.get(name)) for name in names])
    elif kind is list:
        width = max(len(value) for value in values)
        if headers:
            writer.row([f"column_{index}" for index in range(1, width + 1)])
        for value in values:
            writer.row([cell_text(cell) for cell in value] + [""] * (width - len(value)))
    else:
        if headers:
            writer.row(["value"])
        for value in values:
            writer.row([cell_text(value)])


async def csv_stringify(ctx: NodeContext, config: CsvStringifyConfig) -> dict[str, Any]:
    """The ``csv_stringify`` node: serialize JSON data to CSV text."""
    source_key = required_str("csv_stringify", "source_key", config.source_key)
    output_key = required_str("csv_stringify", "output_key", config.output_key)
    headers = lenient_bool(ctx, config.include_headers, True)
    quote_all = lenient_bool(ctx, config.quote_all, False)
    source = source_value(ctx, source_key)
    delimiter = single_byte("delimiter", config.delimiter, ",")
    quote_char = single_byte("quote_char", config.quote_char, '"')
    writer = _Writer(delimiter, quote_char, quote_all)
    if isinstance(source, list):
        _write_array(writer, source, headers)
    elif isinstance(source, dict):
        names = sorted(source)
        if headers:
            writer.row(names)
        writer.row([cell_text(source[name]) for name in names])
    else:
        raise NodeError("csv_stringify requires 'source_key' to contain an object or array")
    return {output_key: writer.text()}


NODES: list[NodeSpec] = [
    NodeSpec(
        name="csv_parse",
        run=csv_parse,
        config=CsvParseConfig,
        summary="Parse CSV text from context into structured JSON data",
    ),
    NodeSpec(
        name="csv_stringify",
        run=csv_stringify,
        config=CsvStringifyConfig,
        summary="Serialize JSON data to CSV text",
    ),
]
