"""The single-file nodes: ``read_file``, ``write_file``, ``copy_file``, ``move_file``,
``delete_file`` (semantics.md#file-nodes).

Paths are used as given, relative to the process working directory, unless
the operator confines them with ``IRONFLOW_FS_ROOTS``. Artifact mode (RF-5 and
the ``artifact`` input of ``write_file``) is optional in the contract and not
provided here; asking for it is a clear error.
"""

from __future__ import annotations

import binascii
import io
import os
import stat
import sys
from typing import Any

import attrs
import trio

from ironflow_core import (
    BoolParam,
    JsonValue,
    NodeContext,
    NodeError,
    lenient,
    source_value,
    strict_bool,
)
from ironflow_nodes_fs.arguments import optional_str, required_str
from ironflow_nodes_fs.limits import max_file_bytes
from ironflow_nodes_fs.policy import FsRoots, open_confined_parent, split_leaf
from ironflow_nodes_fs.safeio import RootedDir, StagedFile, open_regular, os_text
from ironflow_nodes_fs.streams import copy_bounded

NO_ARTIFACTS = (
    "artifact mode is not available in this build (the artifact store is an optional "
    "feature that is not implemented)"
)


async def _discard(staged: StagedFile) -> None:
    """Remove a staged temp file even while the step is being cancelled."""
    with trio.CancelScope(shield=True):
        await trio.to_thread.run_sync(staged.abort)


async def _close(fd: int) -> None:
    with trio.CancelScope(shield=True):
        await trio.to_thread.run_sync(os.close, fd)


# --- read_file ---------------------------------------------------------------


@attrs.frozen
class ReadFileConfig:
    """``read_file``'s parameters, as the flow's table gives them."""

    path: str | None = lenient()
    output_key: JsonValue = None
    encoding: JsonValue = None
    mime_type: JsonValue = None


def _utf8_problem(error: UnicodeDecodeError) -> str:
    """The decoding error in upstream's words (``invalid utf-8 sequence of 1 bytes from index 5``)."""
    if error.reason == "unexpected end of data":
        return f"incomplete utf-8 byte sequence from index {error.start}"
    return f"invalid utf-8 sequence of {error.end - error.start} bytes from index {error.start}"


def _open_for_read(path: str, roots: FsRoots | None, max_bytes: int) -> int:
    fd = open_regular(path, "read_file", roots=roots)
    size = os.fstat(fd).st_size
    if size > max_bytes:
        os.close(fd)
        raise NodeError(
            f"read_file: '{path}' is {size} bytes, exceeds the {max_bytes} byte limit "
            "(raise the relevant IRONFLOW_MAX_* setting)"
        )
    return fd


async def run_read_file(ctx: NodeContext, config: ReadFileConfig) -> dict[str, Any]:
    """Read a regular file as UTF-8 text or base64, bounded by ``IRONFLOW_MAX_FILE_BYTES``."""
    path = ctx.interpolate(required_str(config.path, "read_file requires string 'path' parameter"))
    key = optional_str(config.output_key, "read_file", "output_key") or "file"
    encoding = optional_str(config.encoding, "read_file", "encoding") or "text"
    mime_type = optional_str(config.mime_type, "read_file", "mime_type")
    if encoding == "artifact":
        raise NodeError(f"read_file: {NO_ARTIFACTS}")
    if mime_type is not None:
        raise NodeError("read_file: 'mime_type' requires encoding = 'artifact'")
    if encoding not in ("text", "base64"):
        raise NodeError(
            f"read_file: unsupported encoding '{encoding}'. "
            "Must be 'text', 'base64', or 'artifact'."
        )
    env = ctx.services.env
    max_bytes = max_file_bytes(env)
    roots = FsRoots.from_env(env)

    fd = await trio.to_thread.run_sync(_open_for_read, path, roots, max_bytes)
    try:
        buffer = bytearray()
        await copy_bounded(
            lambda n: os.read(fd, n),
            buffer.extend,
            max_bytes,
            f"read_file: '{path}' exceeds the {max_bytes} byte limit "
            "(raise the relevant IRONFLOW_MAX_* setting)",
            f"read_file: failed to read '{path}'",
        )
    finally:
        await _close(fd)

    if encoding == "base64":
        content = await trio.to_thread.run_sync(
            lambda: binascii.b2a_base64(buffer, newline=False).decode("ascii")
        )
    else:
        try:
            content = await trio.to_thread.run_sync(lambda: bytes(buffer).decode("utf-8"))
        except UnicodeDecodeError as error:
            raise NodeError(
                f"read_file: '{path}' is not valid UTF-8: {_utf8_problem(error)}"
            ) from None
    return {f"{key}_content": content, f"{key}_path": path, f"{key}_success": True}


# --- write_file --------------------------------------------------------------


@attrs.frozen
class WriteFileConfig:
    """``write_file``'s parameters, as the flow's table gives them."""

    path: JsonValue = None
    content: JsonValue = None
    source_key: JsonValue = None
    artifact: JsonValue = None
    encoding: JsonValue = None
    append: BoolParam = None


def _admit(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise NodeError(
            f"write_file: final payload is {size} bytes, exceeds IRONFLOW_MAX_FILE_BYTES "
            f"({max_bytes})"
        )


def _base64_length(encoded: str) -> int:
    """Decoded size of a padded base64 text, known before decoding it (WF-3)."""
    remainder = len(encoded) % 4
    if remainder == 1:
        raise NodeError("write_file: base64 input has an invalid encoded length")
    decoded = len(encoded) // 4 * 3 + (0, 0, 1, 2)[remainder]
    if remainder == 0:
        decoded -= len(encoded[-2:]) - len(encoded[-2:].rstrip("="))
    return decoded


def _decode_base64(encoded: str) -> bytes:
    try:
        return binascii.a2b_base64(encoded.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise NodeError(f"write_file: invalid base64 input: {error}") from None


@attrs.frozen
class _Payload:
    text: str
    base64: bool


def _write_payload(ctx: NodeContext, config: WriteFileConfig, max_bytes: int) -> _Payload:
    """WF-1/WF-2: pick the one input form and check its size before any I/O."""
    present = [v for v in (config.content, config.source_key, config.artifact) if v is not None]
    if len(present) > 1:
        raise NodeError("write_file accepts exactly one of 'content', 'source_key', or 'artifact'")
    encoding = optional_str(config.encoding, "write_file", "encoding") or "text"
    if config.artifact is not None:
        if encoding not in ("text", "artifact"):
            raise NodeError(
                f"write_file: artifact input is incompatible with encoding '{encoding}'"
            )
        raise NodeError(f"write_file: {NO_ARTIFACTS}")
    source_key = optional_str(config.source_key, "write_file", "source_key")
    if source_key is not None:
        value, interpolate = source_value(ctx, source_key), False
    elif config.content is not None:
        value, interpolate = config.content, True
    else:
        return _Payload("", base64=False)
    if isinstance(value, dict) or encoding == "artifact":
        raise NodeError(f"write_file: {NO_ARTIFACTS}")
    if not isinstance(value, str):
        raise NodeError("write_file content source must be a string or artifact")
    text = ctx.interpolate(value) if interpolate else value
    if encoding == "text":
        _admit(len(text.encode("utf-8", "surrogatepass")), max_bytes)
        return _Payload(text, base64=False)
    if encoding == "base64":
        _admit(_base64_length(text), max_bytes)
        return _Payload(text, base64=True)
    raise NodeError(
        f"write_file: unsupported encoding '{encoding}'. Must be 'text', 'base64', or 'artifact'."
    )


def _encode(payload: _Payload) -> bytes:
    if payload.base64:
        return _decode_base64(payload.text)
    try:
        return payload.text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise NodeError(f"write_file: content is not valid UTF-8: {error}") from None


@attrs.frozen
class _Destination:
    staged: StagedFile
    existing_fd: int | None
    existing_size: int


def _prepare_write(
    parent: str,
    leaf: str,
    path: str,
    *,
    append: bool,
    incoming: int,
    max_bytes: int,
    roots: FsRoots | None,
) -> _Destination:
    """Open the parent (created if missing) and the old file in append mode,
    check the final size, create the temp sibling."""
    root = RootedDir.open(
        parent, "write_file", roots=roots, create=True, follow_root=True, shown=path
    )
    try:
        return _stage_write(root, leaf, path, append=append, incoming=incoming, max_bytes=max_bytes)
    finally:
        root.close()


def _stage_write(
    root: RootedDir, leaf: str, path: str, *, append: bool, incoming: int, max_bytes: int
) -> _Destination:
    existing_fd: int | None = None
    existing_size = 0
    mode: int | None = None
    try:
        info = os.stat(leaf, dir_fd=root.fd, follow_symlinks=False)
    except FileNotFoundError:
        info = None
    if info is not None and stat.S_ISREG(info.st_mode):
        mode = stat.S_IMODE(info.st_mode)  # replacing a file keeps its permissions
    if append and info is not None:
        existing_fd = open_regular(
            leaf, "write_file append", roots=None, dir_fd=root.fd, shown=path
        )
    try:
        if existing_fd is not None:
            existing_size = os.fstat(existing_fd).st_size
            if existing_size > max_bytes:
                raise NodeError(
                    f"write_file: existing file is {existing_size} bytes, exceeds "
                    f"IRONFLOW_MAX_FILE_BYTES ({max_bytes})"
                )
        _admit(existing_size + incoming, max_bytes)
        staged = StagedFile.create(
            os.dup(root.fd), leaf, overwrite=True, operation="write_file", shown=leaf, mode=mode
        )
    except BaseException:
        if existing_fd is not None:
            os.close(existing_fd)
        raise
    return _Destination(staged, existing_fd, existing_size)


async def run_write_file(ctx: NodeContext, config: WriteFileConfig) -> dict[str, Any]:
    """Write text or decoded base64 atomically: temp sibling, fsync, rename (WF-4)."""
    raw_path = config.path
    if raw_path is None:
        raise NodeError("write_file requires 'path' parameter")
    path = ctx.interpolate(optional_str(raw_path, "write_file", "path") or "")
    env = ctx.services.env
    max_bytes = max_file_bytes(env)
    payload = _write_payload(ctx, config, max_bytes)
    append = strict_bool(ctx, "append", config.append, False)
    parts = split_leaf(path)
    if parts is None:
        raise NodeError("write_file: destination has no file name")
    parent, leaf = parts
    roots = FsRoots.from_env(env)

    data = await trio.to_thread.run_sync(_encode, payload)
    _admit(len(data), max_bytes)
    target = await trio.to_thread.run_sync(
        lambda: _prepare_write(
            parent,
            leaf,
            path,
            append=append,
            incoming=len(data),
            max_bytes=max_bytes,
            roots=roots,
        )
    )
    staged = target.staged
    try:
        if target.existing_fd is not None:
            fd = target.existing_fd
            try:
                copied = await copy_bounded(
                    lambda n: os.read(fd, n),
                    staged.file.write,
                    target.existing_size,
                    "write_file: existing destination changed or exceeded its admitted size",
                    f"write_file: failed to write '{path}'",
                )
            finally:
                await _close(fd)
            if copied != target.existing_size:
                raise NodeError("write_file: existing destination changed while being copied")
        await copy_bounded(
            io.BytesIO(data).read,
            staged.file.write,
            len(data),
            "write_file: payload changed while being written",
            f"write_file: failed to write '{path}'",
        )
        await trio.to_thread.run_sync(staged.commit)
    except BaseException:
        await _discard(staged)
        raise
    return {"write_file_path": path, "write_file_success": True}


# --- copy_file, move_file, delete_file ---------------------------------------


@attrs.frozen
class TransferConfig:
    """The parameters of ``copy_file``, ``move_file``."""

    source: str | None = lenient()
    destination: str | None = lenient()


@attrs.frozen
class DeleteFileConfig:
    """``delete_file``'s parameters, as the flow's table gives them."""

    path: str | None = lenient()


def _transfer_paths(ctx: NodeContext, node: str, config: TransferConfig) -> tuple[str, str]:
    source = required_str(config.source, f"{node} requires 'source' parameter")
    destination = required_str(config.destination, f"{node} requires 'destination' parameter")
    return ctx.interpolate(source), ctx.interpolate(destination)


def _stage_copy(source: str, destination: str, roots: FsRoots | None) -> tuple[int, StagedFile]:
    parts = split_leaf(destination)
    if parts is None:
        raise NodeError(f"copy_file: destination '{destination}' has no file name")
    src_fd = open_regular(source, "copy_file", roots=roots, follow=True)
    try:
        mode = stat.S_IMODE(os.fstat(src_fd).st_mode) & 0o777
        root = RootedDir.open(
            parts[0], "copy_file", roots=roots, create=False, follow_root=True, shown=destination
        )
        try:
            staged = StagedFile.create(
                os.dup(root.fd),
                parts[1],
                overwrite=True,
                operation="copy_file",
                shown=destination,
                mode=mode,
            )
        finally:
            root.close()
    except BaseException:
        os.close(src_fd)
        raise
    return src_fd, staged


async def run_copy_file(ctx: NodeContext, config: TransferConfig) -> dict[str, Any]:
    """Byte copy with permission bits, published atomically over the destination (FO-1)."""
    source, destination = _transfer_paths(ctx, "copy_file", config)
    roots = FsRoots.from_env(ctx.services.env)
    src_fd, staged = await trio.to_thread.run_sync(_stage_copy, source, destination, roots)
    try:
        try:
            await copy_bounded(
                lambda n: os.read(src_fd, n),
                staged.file.write,
                sys.maxsize,
                "copy_file: source exceeds the largest size this platform can copy",
                f"copy_file: failed to copy '{source}' to '{destination}'",
            )
        finally:
            await _close(src_fd)
        await trio.to_thread.run_sync(staged.commit)
    except BaseException:
        await _discard(staged)
        raise
    return {
        "copy_file_source": source,
        "copy_file_destination": destination,
        "copy_file_success": True,
    }


def _rename(source: str, destination: str, roots: FsRoots | None) -> None:
    def failed(error: OSError) -> NodeError:
        return NodeError(
            f"move_file: failed to move '{source}' to '{destination}': {os_text(error)}"
        )

    try:
        src_dir, src_leaf = open_confined_parent(roots, source, "move_file")
    except OSError as error:
        raise failed(error) from None
    try:
        try:
            dst_dir, dst_leaf = open_confined_parent(roots, destination, "move_file")
        except OSError as error:
            raise failed(error) from None
        try:
            os.rename(src_leaf, dst_leaf, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
        except OSError as error:
            raise failed(error) from None
        finally:
            os.close(dst_dir)
    finally:
        os.close(src_dir)


async def run_move_file(ctx: NodeContext, config: TransferConfig) -> dict[str, Any]:
    """A rename: overwrites an existing file, never copies across file systems (FO-2)."""
    source, destination = _transfer_paths(ctx, "move_file", config)
    roots = FsRoots.from_env(ctx.services.env)
    await trio.to_thread.run_sync(_rename, source, destination, roots)
    return {
        "move_file_source": source,
        "move_file_destination": destination,
        "move_file_success": True,
    }


def _unlink(path: str, roots: FsRoots | None) -> None:
    try:
        parent, leaf = open_confined_parent(roots, path, "delete_file")
    except OSError as error:
        raise NodeError(f"delete_file: failed to delete '{path}': {os_text(error)}") from None
    try:
        os.unlink(leaf, dir_fd=parent)
    except OSError as error:
        raise NodeError(f"delete_file: failed to delete '{path}': {os_text(error)}") from None
    finally:
        os.close(parent)


async def run_delete_file(ctx: NodeContext, config: DeleteFileConfig) -> dict[str, Any]:
    """Remove a file (a symlink itself, never its target); a directory is an error (FO-3)."""
    path = ctx.interpolate(required_str(config.path, "delete_file requires 'path' parameter"))
    roots = FsRoots.from_env(ctx.services.env)
    await trio.to_thread.run_sync(_unlink, path, roots)
    return {"delete_file_path": path, "delete_file_success": True}
