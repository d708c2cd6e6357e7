"""Hashing and base64 nodes: ``hash``, ``base64_encode``, ``base64_decode`` (semantics.md#text-nodes).

Also home of the bounded regular-file read that ``base64_encode.file`` needs.

Upstream reads these parameters leniently (a non-string ``output_key`` means
the default), so the fields are ``lenient``; ``base64_encode``/``_decode``
count any present value (even ``json_null``) in their "only one of" check, so
those inputs default to ``ABSENT``.
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

from ironflow_core._compat.rusterrors import os_error_text, utf8_error_text
from ironflow_core.configs import Interpolated, lenient
from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.fsroots import FsRoots, open_parent
from ironflow_core.nodes.textinput import value_text
from ironflow_core.params import ABSENT, BoolParam, JsonValue, lenient_bool, source_value
from ironflow_core.regular_files import (
    FileTooLargeError,
    NotRegularFileError,
    open_regular,
    read_bounded,
)
from ironflow_core.settings import lenient_positive_int
from ironflow_core.specs import NodeSpec

DEFAULT_MAX_FILE_BYTES = 52_428_800


def max_file_bytes(env: Mapping[str, str]) -> int:
    """``IRONFLOW_MAX_FILE_BYTES``: the most a node reads from or writes to one file."""
    return lenient_positive_int(env, "IRONFLOW_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES)


def read_regular_file(path: str, limit: int, what: str, roots: FsRoots | None = None) -> bytes:
    """Read a regular file fully, refusing symlinks, FIFOs and devices, bounded by ``limit``.

    The core's one safe reader (:mod:`ironflow_core.regular_files`) with the
    nodes' wording; under ``IRONFLOW_FS_ROOTS`` the file is reached by the
    roots' descriptor walk.
    """
    try:
        if roots is None:
            fd, info = open_regular(path)
        else:
            parent, leaf = open_parent(roots, path, what)
            try:
                fd, info = open_regular(leaf, dir_fd=parent)
            finally:
                os.close(parent)
    except NotRegularFileError:
        raise NodeError(f"{what}: '{path}' is not a regular file") from None
    except OSError as exc:
        raise NodeError(
            f"{what}: failed to read '{path}': failed to open file: {os_error_text(exc)}"
        ) from None
    try:
        return read_bounded(fd, limit, info.st_size)
    except FileTooLargeError as exc:
        measured = "" if exc.size is None else f" is {exc.size} bytes,"
        raise NodeError(
            f"{what}: '{path}'{measured} exceeds the {limit} byte limit "
            "(raise the relevant IRONFLOW_MAX_* setting)"
        ) from None
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
    """``hash``'s parameters (HS-1..3)."""

    algorithm: str = lenient("sha256")
    input: Interpolated | None = lenient()
    source_key: str | None = lenient()
    output_key: str = lenient("hash")


async def hash_node(ctx: NodeContext, config: HashConfig) -> dict[str, Any]:
    """HS-1..3: hex digest of ``input`` (wins when a string) or of the ``source_key`` value."""
    if config.input is not None:
        text = ctx.interpolate(config.input)
    elif config.source_key is not None:
        text = value_text(source_value(ctx, config.source_key))
    else:
        raise NodeError("hash requires either 'input' string or 'source_key'")
    name = _ALGORITHMS.get(config.algorithm.lower())
    if name is None:
        raise NodeError(
            f"Unsupported hash algorithm '{config.algorithm}'. Use: sha256, sha384, sha512, md5"
        )
    digest = hashlib.new(name, text.encode("utf-8", "surrogatepass")).hexdigest()
    return {config.output_key: digest, f"{config.output_key}_algorithm": config.algorithm}


# -- base64 ----------------------------------------------------------------------------


@attrs.frozen
class Base64EncodeConfig:
    """``base64_encode``'s parameters (B64E-1/2); only a string input is used."""

    input: JsonValue = ABSENT
    source_key: JsonValue = ABSENT
    file: JsonValue = ABSENT
    url_safe: BoolParam = None
    output_key: str = lenient("base64_encoded")


async def base64_encode(ctx: NodeContext, config: Base64EncodeConfig) -> dict[str, Any]:
    """B64E-1/2: padded base64 of a string, a context value or a file's bytes."""
    url_safe = lenient_bool(ctx, config.url_safe, False)
    given = [v is not ABSENT for v in (config.input, config.source_key, config.file)]
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
    return {config.output_key: encoded.decode("ascii")}


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


@attrs.frozen
class Base64DecodeConfig:
    """``base64_decode``'s parameters (B64D-1..3); only a string input is used."""

    input: JsonValue = ABSENT
    source_key: JsonValue = ABSENT
    url_safe: BoolParam = None
    output_key: str = lenient("base64_decoded")
    output_file: Interpolated | None = lenient()


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
    url_safe = lenient_bool(ctx, config.url_safe, False)
    if config.input is not ABSENT and config.source_key is not ABSENT:
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
    if config.output_file is not None:
        limit = max_file_bytes(ctx.services.env)
        if len(decoded) > limit:
            raise NodeError(
                f"base64_decode: decoded payload {len(decoded)} bytes exceeds limit {limit} "
                "(set IRONFLOW_MAX_FILE_BYTES to raise)"
            )
        path = ctx.interpolate(config.output_file)
        roots = FsRoots.from_env(ctx.services.env)
        await trio.to_thread.run_sync(_write_bytes, path, decoded, roots)
        return {f"{config.output_key}_path": path}
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NodeError(f"Decoded bytes are not valid UTF-8: {utf8_error_text(exc)}") from None
    return {config.output_key: text}


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
