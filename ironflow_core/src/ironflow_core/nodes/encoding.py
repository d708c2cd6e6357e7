"""Hashing and base64 nodes: ``hash``, ``base64_encode``, ``base64_decode`` (semantics.md#text-nodes).

Also home of the small input helpers the text-format nodes share (``input`` or
``source_key``, a non-string context value read as its compact JSON) and of
the bounded regular-file read that ``base64_encode.file`` needs.

Fields are ``Any`` because upstream reads them leniently at run time (a
non-string ``output_key`` means the default), so a flow that loads upstream
loads here; presence-sensitive inputs default to ``MISSING`` so an explicit
``json_null`` still counts as given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from ironflow_core import jsonutil
from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.fsroots import FsRoots, open_parent
from ironflow_core.params import lenient_bool, source_value
from ironflow_core.settings import lenient_positive_int
from ironflow_core.specs import NodeSpec

DEFAULT_MAX_FILE_BYTES = 52_428_800
_READ_CHUNK = 64 * 1024


class _Missing:
    """An absent parameter, where absent and JSON null differ (presence counts)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# -- shared helpers --------------------------------------------------------------------


def str_or(value: Any, default: str) -> str:
    """Upstream's ``as_str().unwrap_or(default)``: a non-string means the default."""
    return value if isinstance(value, str) else default


def value_text(value: Any) -> str:
    """A context value as text: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else jsonutil.dumps(value)


def text_input(ctx: NodeContext, input_: Any, source_key: Any, *, both: str, neither: str) -> str:
    """``input`` (interpolated) or the value at ``source_key``; only strings count as given."""
    has_input = isinstance(input_, str)
    has_source = isinstance(source_key, str)
    if has_input and has_source:
        raise NodeError(both)
    if has_input:
        return ctx.interpolate(input_)
    if has_source:
        return value_text(source_value(ctx, source_key))
    raise NodeError(neither)


def max_file_bytes(env: Mapping[str, str]) -> int:
    return lenient_positive_int(env, "IRONFLOW_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES)


def os_error_text(exc: OSError) -> str:
    """An OS error worded like Rust's ``io::Error`` display (no Python class names)."""
    if exc.errno is not None and exc.strerror:
        return f"{exc.strerror} (os error {exc.errno})"
    return str(exc)


def read_regular_file(path: str, limit: int, what: str, roots: FsRoots | None = None) -> bytes:
    """Read a regular file fully, refusing symlinks, FIFOs and devices, bounded by ``limit``.

    Opened non-blocking and without following a final symlink so a FIFO with
    no writer cannot hang the worker; the size is checked on the open handle's
    metadata and again on the bytes actually read (``/proc`` files lie). Under
    ``IRONFLOW_FS_ROOTS`` the file is reached by the roots' descriptor walk.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    try:
        if roots is None:
            fd = os.open(path, flags)
        else:
            parent, leaf = open_parent(roots, path, what)
            try:
                fd = os.open(leaf, flags, dir_fd=parent)
            finally:
                os.close(parent)
    except OSError as exc:
        raise NodeError(
            f"{what}: failed to read '{path}': failed to open file: {os_error_text(exc)}"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NodeError(f"{what}: '{path}' is not a regular file")
        if info.st_size > limit:
            raise NodeError(
                f"{what}: '{path}' is {info.st_size} bytes, exceeds the {limit} byte limit "
                "(raise the relevant IRONFLOW_MAX_* setting)"
            )
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(_READ_CHUNK, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise NodeError(
                f"{what}: '{path}' exceeds the {limit} byte limit "
                "(raise the relevant IRONFLOW_MAX_* setting)"
            )
        return b"".join(chunks)
    except OSError as exc:
        raise NodeError(f"{what}: failed to read '{path}': {os_error_text(exc)}") from None
    finally:
        os.close(fd)


# -- hash ------------------------------------------------------------------------------

_ALGORITHMS = {
    "sha256": "sha256",
    "sha-256": "sha256",
    "sha384": "sha384",
    "sha-384": "sha384",
    "sha512": "sha512",
    "sha-512": "sha512",
    "md5": "md5",
}


@attrs.frozen
class HashConfig:
    algorithm: Any = None
    input: Any = None
    source_key: Any = None
    output_key: Any = None


async def hash_node(ctx: NodeContext, config: HashConfig) -> dict[str, Any]:
    """HS-1..3: hex digest of ``input`` (wins when a string) or of the ``source_key`` value."""
    algorithm = str_or(config.algorithm, "sha256")
    output_key = str_or(config.output_key, "hash")
    if isinstance(config.input, str):
        text = ctx.interpolate(config.input)
    elif isinstance(config.source_key, str):
        text = value_text(source_value(ctx, config.source_key))
    else:
        raise NodeError("hash requires either 'input' string or 'source_key'")
    name = _ALGORITHMS.get(algorithm.lower())
    if name is None:
        raise NodeError(
            f"Unsupported hash algorithm '{algorithm}'. Use: sha256, sha384, sha512, md5"
        )
    digest = hashlib.new(name, text.encode("utf-8", "surrogatepass")).hexdigest()
    return {output_key: digest, f"{output_key}_algorithm": algorithm}


# -- base64 ----------------------------------------------------------------------------


@attrs.frozen
class Base64EncodeConfig:
    input: Any = MISSING
    source_key: Any = MISSING
    file: Any = MISSING
    url_safe: Any = None
    output_key: Any = None


async def base64_encode(ctx: NodeContext, config: Base64EncodeConfig) -> dict[str, Any]:
    """B64E-1/2: padded base64 of a string, a context value or a file's bytes."""
    output_key = str_or(config.output_key, "base64_encoded")
    url_safe = lenient_bool(ctx, config.url_safe, False)
    given = [v is not MISSING for v in (config.input, config.source_key, config.file)]
    if sum(given) > 1:
        raise NodeError("base64_encode: provide only one of 'input', 'source_key', or 'file'")
    if isinstance(config.input, str):
        data = ctx.interpolate(config.input).encode("utf-8", "surrogatepass")
    elif isinstance(config.source_key, str):
        data = value_text(source_value(ctx, config.source_key)).encode("utf-8", "surrogatepass")
    elif isinstance(config.file, str):
        path = ctx.interpolate(config.file)
        limit = max_file_bytes(ctx.services.env)
        roots = FsRoots.from_env(ctx.services.env)
        data = await trio.to_thread.run_sync(read_regular_file, path, limit, "base64_encode", roots)
    else:
        raise NodeError("base64_encode requires one of 'input', 'source_key', or 'file'")
    encoded = base64.urlsafe_b64encode(data) if url_safe else base64.b64encode(data)
    return {output_key: encoded.decode("ascii")}


_STANDARD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_URL_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def strict_b64decode(text: str, url_safe: bool) -> bytes:
    """B64D-2: decode only canonical padded base64; errors read like Rust's ``base64``.

    Python's decoder tolerates non-zero trailing bits; the engine upstream does
    not, so the decoded bytes are re-encoded and must give back the input.
    """
    raw = text.encode("utf-8", "surrogatepass")
    alphabet = _URL_SAFE if url_safe else _STANDARD
    data_len = len(raw.rstrip(b"="))
    for index, byte in enumerate(raw):
        if byte not in alphabet and byte != 0x3D:
            raise ValueError(f"Invalid symbol {byte}, offset {index}.")
    misplaced = raw.find(b"=", 0, data_len)
    if misplaced >= 0:
        raise ValueError(f"Invalid symbol 61, offset {misplaced}.")
    padding = len(raw) - data_len
    if data_len % 4 == 1:
        raise ValueError(f"Invalid input length: {data_len}")
    if padding != (-data_len) % 4:
        raise ValueError("Invalid padding")
    try:
        decoded = base64.b64decode(raw, altchars=b"-_" if url_safe else None, validate=True)
    except binascii.Error as exc:  # pragma: no cover - the checks above are stricter
        raise ValueError(str(exc)) from None
    again = base64.urlsafe_b64encode(decoded) if url_safe else base64.b64encode(decoded)
    if again != raw:
        last = data_len - 1
        raise ValueError(f"Invalid last symbol {raw[last]}, offset {last}.")
    return decoded


def utf8_error_text(exc: UnicodeDecodeError) -> str:
    if exc.reason == "unexpected end of data":
        return f"incomplete utf-8 byte sequence from index {exc.start}"
    return f"invalid utf-8 sequence of {exc.end - exc.start} bytes from index {exc.start}"


@attrs.frozen
class Base64DecodeConfig:
    input: Any = MISSING
    source_key: Any = MISSING
    url_safe: Any = None
    output_key: Any = None
    output_file: Any = None


def _write_bytes(path: str, data: bytes, roots: FsRoots | None) -> None:
    try:
        if roots is None:
            with open(path, "wb") as handle:
                handle.write(data)
            return
        parent, leaf = open_parent(roots, path, "base64_decode")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(leaf, flags, 0o644, dir_fd=parent)
        finally:
            os.close(parent)
        with open(fd, "wb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise NodeError(f"Failed to write file '{path}': not a regular file")
            handle.truncate(0)
            handle.write(data)
    except OSError as exc:
        raise NodeError(f"Failed to write file '{path}': {os_error_text(exc)}") from None


async def base64_decode(ctx: NodeContext, config: Base64DecodeConfig) -> dict[str, Any]:
    """B64D-1..3: strict decode to UTF-8 text, or to a file (size-capped)."""
    output_key = str_or(config.output_key, "base64_decoded")
    url_safe = lenient_bool(ctx, config.url_safe, False)
    if config.input is not MISSING and config.source_key is not MISSING:
        raise NodeError("base64_decode: provide only one of 'input' or 'source_key'")
    if isinstance(config.input, str):
        encoded = ctx.interpolate(config.input)
    elif isinstance(config.source_key, str):
        encoded = value_text(source_value(ctx, config.source_key))
    else:
        raise NodeError("base64_decode requires either 'input' or 'source_key'")
    try:
        decoded = strict_b64decode(encoded, url_safe)
    except ValueError as exc:
        raise NodeError(f"Failed to decode base64: {exc}") from None
    if isinstance(config.output_file, str):
        limit = max_file_bytes(ctx.services.env)
        if len(decoded) > limit:
            raise NodeError(
                f"base64_decode: decoded payload {len(decoded)} bytes exceeds limit {limit} "
                "(set IRONFLOW_MAX_FILE_BYTES to raise)"
            )
        path = ctx.interpolate(config.output_file)
        roots = FsRoots.from_env(ctx.services.env)
        await trio.to_thread.run_sync(_write_bytes, path, decoded, roots)
        return {f"{output_key}_path": path}
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NodeError(f"Decoded bytes are not valid UTF-8: {utf8_error_text(exc)}") from None
    return {output_key: text}


NODES: list[NodeSpec] = [
    NodeSpec(
        name="hash",
        run=hash_node,
        config=HashConfig,
        summary="Compute a hash (SHA-256, SHA-384, SHA-512, MD5) of a string or context value",
    ),
    NodeSpec(
        name="base64_encode",
        run=base64_encode,
        config=Base64EncodeConfig,
        summary="Encode a string or file contents to base64",
    ),
    NodeSpec(
        name="base64_decode",
        run=base64_decode,
        config=Base64DecodeConfig,
        summary="Decode a base64 string to text or file",
    ),
]
