"""The ZIP nodes: ``zip_create``, ``zip_list``, ``zip_extract`` (semantics.md#zip-nodes).

Creation walks the source without following any symlink and writes the
archive to a staged temp file published by rename (ZC-2, ZC-5). Extraction
checks every entry first (names, kinds, counts, declared sizes) and writes
nothing — not even the destination directory — unless all pass; then each file
is staged and committed below a destination held open by descriptor, with the
bytes actually inflated counted against the limit (ZX-1, ZX-2).
"""

from __future__ import annotations

import functools
import os
import stat
import time
import zipfile
import zlib
from typing import Any, BinaryIO

import attrs
import trio

from ironflow_core import BoolParam, CountParam, NodeContext, NodeError, lenient, lenient_bool
from ironflow_nodes_fs.arguments import required_str
from ironflow_nodes_fs.limits import ZipLimits, zip_limits
from ironflow_nodes_fs.policy import (
    FsRoots,
    open_confined_dir,
    open_confined_parent,
    split_leaf,
)
from ironflow_nodes_fs.safeio import RootedDir, StagedFile, open_regular, os_text
from ironflow_nodes_fs.streams import copy_bounded
from ironflow_nodes_fs.zipcheck import (
    EntryPlan,
    add_declared_size,
    check_entry_count,
    declared_entry_count,
    list_entry,
    plan_extraction,
)

_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError)
_COMPRESSION = {
    "stored": zipfile.ZIP_STORED,
    "deflated": zipfile.ZIP_DEFLATED,
    "deflate": zipfile.ZIP_DEFLATED,
}
_STORED_MODE = (stat.S_IFREG | 0o600) << 16  # ZC-5: entries carry Unix mode 0600


@attrs.frozen
class ZipCreateConfig:
    """``zip_create``'s parameters, as the flow's table gives them."""

    source: str | None = lenient()
    zip_path: str | None = lenient()
    include_root: BoolParam = None
    compression: str = lenient("deflated")
    max_entries: CountParam = None
    max_depth: CountParam = None
    max_total_uncompressed_bytes: CountParam = None


@attrs.frozen
class ZipListConfig:
    """``zip_list``'s parameters, as the flow's table gives them."""

    path: str | None = lenient()
    output_key: str = lenient("zip_entries")
    max_entries: CountParam = None
    max_depth: CountParam = None
    max_total_uncompressed_bytes: CountParam = None


@attrs.frozen
class ZipExtractConfig:
    """``zip_extract``'s parameters, as the flow's table gives them."""

    path: str | None = lenient()
    destination: str | None = lenient()
    output_key: str = lenient("extracted_files")
    overwrite: BoolParam = None
    max_entries: CountParam = None
    max_depth: CountParam = None
    max_total_uncompressed_bytes: CountParam = None


def _limits(ctx: NodeContext, config: Any) -> ZipLimits:
    return zip_limits(
        ctx, config.max_entries, config.max_depth, config.max_total_uncompressed_bytes
    )


async def _shielded(fn: Any, *args: Any) -> None:
    with trio.CancelScope(shield=True):
        await trio.to_thread.run_sync(fn, *args)


# --- reading archives ----------------------------------------------------------


def _open_archive(
    path: str, operation: str, limits: ZipLimits, roots: FsRoots | None
) -> zipfile.ZipFile:
    """Open a regular, non-symlink archive; refuse too many entries before parsing them."""
    fd = open_regular(path, operation, roots=roots)
    fp: BinaryIO = os.fdopen(fd, "rb")
    try:
        announced = declared_entry_count(fp)
        if announced is not None:
            check_entry_count(operation, announced, limits)
        try:
            return zipfile.ZipFile(fp)
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as error:
            raise NodeError(f"{operation}: '{path}' is not a valid ZIP archive: {error}") from None
    except BaseException:
        fp.close()
        raise


def _list_archive(path: str, limits: ZipLimits, roots: FsRoots | None) -> list[dict[str, Any]]:
    archive = _open_archive(path, "zip_list", limits, roots)
    with archive:
        infos = archive.infolist()
        check_entry_count("zip_list", len(infos), limits)
        total = 0
        entries = []
        for info in infos:
            total = add_declared_size("zip_list", total, info.file_size, limits)
            entries.append(list_entry(info))
        return entries


async def run_zip_list(ctx: NodeContext, config: ZipListConfig) -> dict[str, Any]:
    """List entries in central-directory order with sizes, CRC and method (ZL-1, ZL-2)."""
    path = ctx.interpolate(required_str(config.path, "zip_list requires 'path' parameter"))
    limits = _limits(ctx, config)
    roots = FsRoots.from_env(ctx.services.env)
    entries = await trio.to_thread.run_sync(_list_archive, path, limits, roots)
    return {
        config.output_key: entries,
        f"{config.output_key}_count": len(entries),
        "zip_list_path": path,
        "zip_list_success": True,
    }


# --- zip_extract ---------------------------------------------------------------


def _preflight(
    path: str, limits: ZipLimits, roots: FsRoots | None
) -> tuple[zipfile.ZipFile, list[EntryPlan]]:
    archive = _open_archive(path, "zip_extract", limits, roots)
    try:
        return archive, plan_extraction(archive.infolist(), limits)
    except BaseException:
        archive.close()
        raise


def _ensure_dir(root: RootedDir, parts: tuple[str, ...]) -> None:
    os.close(root.walk(parts))


def _stage_entry(
    root: RootedDir, archive: zipfile.ZipFile, plan: EntryPlan, overwrite: bool
) -> tuple[StagedFile, Any]:
    parent = root.walk(plan.parts[:-1])
    staged = StagedFile.create(
        parent,
        plan.parts[-1],
        overwrite=overwrite,
        operation="zip_extract",
        shown="/".join(plan.parts),
    )
    try:
        source = archive.open(archive.infolist()[plan.index])
    except _READ_ERRORS as error:
        staged.abort()
        raise NodeError(f"zip_extract: failed to read entry '{plan.name}': {error}") from None
    except BaseException:
        staged.abort()
        raise
    return staged, source


async def _extract_file(
    root: RootedDir, archive: zipfile.ZipFile, plan: EntryPlan, overwrite: bool, budget: int
) -> int:
    staged, source = await trio.to_thread.run_sync(_stage_entry, root, archive, plan, overwrite)
    try:
        try:
            copied = await copy_bounded(
                source.read,
                staged.file.write,
                budget,
                f"zip_extract: actual data exceeds the remaining uncompressed byte limit {budget}",
                f"zip_extract: failed to extract '{plan.name}'",
            )
        except _READ_ERRORS as error:
            raise NodeError(f"zip_extract: failed to read entry '{plan.name}': {error}") from None
        finally:
            await _shielded(source.close)
        await trio.to_thread.run_sync(staged.commit)
    except BaseException:
        await _shielded(staged.abort)
        raise
    return copied


async def run_zip_extract(ctx: NodeContext, config: ZipExtractConfig) -> dict[str, Any]:
    """Preflight every entry, then extract below ``destination`` without following symlinks."""
    path = required_str(config.path, "zip_extract requires 'path' parameter")
    destination = required_str(config.destination, "zip_extract requires 'destination' parameter")
    overwrite = lenient_bool(ctx, config.overwrite, True)
    path = ctx.interpolate(path)
    destination = ctx.interpolate(destination)
    limits = _limits(ctx, config)
    roots = FsRoots.from_env(ctx.services.env)

    archive, plans = await trio.to_thread.run_sync(_preflight, path, limits, roots)
    try:
        root = await trio.to_thread.run_sync(
            lambda: RootedDir.open(
                destination, "zip_extract", roots=roots, create=True, follow_root=False
            )
        )
        try:
            extracted: list[str] = []
            written = 0
            for plan in plans:
                if plan.is_dir:
                    await trio.to_thread.run_sync(_ensure_dir, root, plan.parts)
                else:
                    budget = limits.max_total_uncompressed_bytes - written
                    written += await _extract_file(root, archive, plan, overwrite, budget)
                extracted.append(plan.name)
        finally:
            await _shielded(root.close)
    finally:
        await _shielded(archive.close)
    return {
        config.output_key: extracted,
        f"{config.output_key}_count": len(extracted),
        "zip_extract_path": path,
        "zip_extract_destination": destination,
        "zip_extract_success": True,
    }


# --- zip_create ----------------------------------------------------------------


@attrs.frozen
class _Source:
    path: str
    name: str
    """The entry name inside the archive."""


def _archive_component(name: str) -> str:
    """A source file name as an archive path component (ZC-2)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise NodeError("zip_create: non-UTF-8 file name") from None
    if "/" in name or "\\" in name or "\0" in name:
        raise NodeError(f"zip_create: source contains a non-portable file name: {name}")
    return name


def _source_name(source: str) -> str:
    parts = split_leaf(source)
    if parts is None:
        raise NodeError("zip_create: source path has no valid UTF-8 file name")
    try:
        parts[1].encode("utf-8")
    except UnicodeEncodeError:
        raise NodeError("zip_create: source path has no valid UTF-8 file name") from None
    return _archive_component(parts[1])


@attrs.define
class _Walk:
    """Traversal state shared by the per-directory scans (ZC-4)."""

    limits: ZipLimits
    visited: int = 0
    total_bytes: int = 0

    def admit(self, size: int) -> None:
        self.total_bytes += size
        if self.visited > self.limits.max_entries:
            raise NodeError(
                f"zip_create: source entry count exceeds limit {self.limits.max_entries}"
            )
        if self.total_bytes > self.limits.max_total_uncompressed_bytes:
            raise NodeError(
                "zip_create: total source bytes exceed uncompressed limit "
                f"{self.limits.max_total_uncompressed_bytes}"
            )


def _inspect_source(source: str, walk: _Walk, roots: FsRoots | None) -> list[_Source] | None:
    """A single-file source as its one entry, or None when it is a directory."""
    try:
        if roots is None:
            info = os.lstat(source)
        else:
            try:
                parent, leaf = open_confined_parent(roots, source, "zip_create")
            except NodeError:
                # No leaf to stat below a root: the source is a root itself (or
                # ends in ``..``); it is a directory if the walk opens it as one.
                os.close(open_confined_dir(roots, source, "zip_create"))
                return None
            try:
                info = os.stat(leaf, dir_fd=parent, follow_symlinks=False)
            finally:
                os.close(parent)
    except OSError as error:
        raise NodeError(f"zip_create: failed to inspect '{source}': {os_text(error)}") from None
    if stat.S_ISLNK(info.st_mode):
        raise NodeError(f"zip_create: source '{source}' is a symlink; symlinks are not followed")
    if stat.S_ISREG(info.st_mode):
        walk.visited = 1
        walk.admit(info.st_size)
        return [_Source(source, _source_name(source))]
    if not stat.S_ISDIR(info.st_mode):
        raise NodeError(f"zip_create: source '{source}' is not a regular file or directory")
    return None


def _scan_source_dir(
    directory: str, prefix: str, depth: int, walk: _Walk, roots: FsRoots | None
) -> tuple[list[_Source], list[tuple[str, str, int]]]:
    """Files of one directory (sorted) and its subdirectories to visit next."""
    try:
        fd = open_confined_dir(roots, directory, "zip_create")
    except OSError as error:
        raise NodeError(
            f"zip_create: failed to read directory '{directory}': {os_text(error)}"
        ) from None
    try:
        return _scan_open_dir(fd, directory, prefix, depth, walk)
    finally:
        os.close(fd)


def _scan_open_dir(
    fd: int, directory: str, prefix: str, depth: int, walk: _Walk
) -> tuple[list[_Source], list[tuple[str, str, int]]]:
    names: list[str] = []
    try:
        with os.scandir(fd) as iterator:
            for item in iterator:
                walk.visited += 1
                if walk.visited > walk.limits.max_entries:
                    raise NodeError(
                        "zip_create: source entry count exceeds limit "
                        f"{walk.limits.max_entries} (files and directories both consume "
                        "traversal work)"
                    )
                names.append(item.name)
    except OSError as error:
        raise NodeError(
            f"zip_create: failed to read directory '{directory}': {os_text(error)}"
        ) from None
    names.sort()
    files: list[_Source] = []
    subdirectories: list[tuple[str, str, int]] = []
    for name in names:
        archive_name = _archive_component(name)
        if prefix:
            archive_name = f"{prefix}/{archive_name}"
        path = os.path.join(directory, name)
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError as error:
            raise NodeError(f"zip_create: failed to inspect '{path}': {os_text(error)}") from None
        if stat.S_ISLNK(info.st_mode):
            raise NodeError(
                f"zip_create: source entry '{path}' is a symlink; symlinks are not followed"
            )
        if stat.S_ISDIR(info.st_mode):
            if depth + 1 > walk.limits.max_depth:
                raise NodeError(
                    f"zip_create: source directory '{path}' has depth {depth + 1}, "
                    f"exceeds limit {walk.limits.max_depth}"
                )
            subdirectories.append((path, archive_name, depth + 1))
        elif stat.S_ISREG(info.st_mode):
            walk.admit(info.st_size)
            files.append(_Source(path, archive_name))
        else:
            raise NodeError(f"zip_create: source entry '{path}' is not a regular file or directory")
    return files, subdirectories


async def _collect_sources(
    source: str, include_root: bool, limits: ZipLimits, roots: FsRoots | None
) -> list[_Source]:
    """ZC-1/ZC-3: a directory's files first, then its subdirectories, in name order."""
    walk = _Walk(limits)
    single = await trio.to_thread.run_sync(_inspect_source, source, walk, roots)
    if single is not None:
        return single
    prefix = _source_name(source) if include_root else ""
    files: list[_Source] = []
    pending = [(source, prefix, 0)]
    while pending:
        directory, directory_prefix, depth = pending.pop()
        found, subdirectories = await trio.to_thread.run_sync(
            _scan_source_dir, directory, directory_prefix, depth, walk, roots
        )
        files.extend(found)
        pending.extend(reversed(subdirectories))
    return files


def _stage_archive(zip_path: str, roots: FsRoots | None) -> StagedFile:
    parts = split_leaf(zip_path)
    if parts is None:
        raise NodeError("zip_create: output path has no file name")
    root = RootedDir.open(
        parts[0], "zip_create", roots=roots, create=True, follow_root=True, shown=zip_path
    )
    try:
        staged = StagedFile.create(
            os.dup(root.fd), parts[1], overwrite=True, operation="zip_create", shown=parts[1]
        )
    finally:
        root.close()
    return staged


def _start_entry(
    archive: zipfile.ZipFile, entry: _Source, compression: int, roots: FsRoots | None
) -> tuple[int, Any]:
    fd = open_regular(entry.path, "zip_create", roots=roots)
    try:
        info = os.fstat(fd)
        moment = time.localtime(info.st_mtime)[:6]
        if moment[0] < 1980:
            moment = (1980, 1, 1, 0, 0, 0)
        record = zipfile.ZipInfo(entry.name, date_time=moment)
        record.compress_type = compression
        record.external_attr = _STORED_MODE
        record.file_size = info.st_size
        writer = archive.open(record, "w", force_zip64=info.st_size > zipfile.ZIP64_LIMIT // 2)
    except BaseException:
        os.close(fd)
        raise
    return fd, writer


async def _write_entries(
    archive: zipfile.ZipFile,
    entries: list[_Source],
    compression: int,
    limits: ZipLimits,
    roots: FsRoots | None,
) -> None:
    written = 0
    for entry in entries:
        fd, writer = await trio.to_thread.run_sync(_start_entry, archive, entry, compression, roots)
        budget = limits.max_total_uncompressed_bytes - written
        try:
            try:
                written += await copy_bounded(
                    functools.partial(os.read, fd),
                    writer.write,
                    budget,
                    "zip_create: actual data exceeds the remaining uncompressed byte limit "
                    f"{budget}",
                    f"zip_create: failed to archive '{entry.path}'",
                )
            finally:
                await _shielded(os.close, fd)
            await trio.to_thread.run_sync(writer.close)
        except BaseException:
            await _shielded(_close_quietly, writer.close)
            raise


def _close_quietly(close: Any) -> None:
    """Close a half-written archive part that is about to be thrown away."""
    try:
        close()
    except Exception:
        pass


async def run_zip_create(ctx: NodeContext, config: ZipCreateConfig) -> dict[str, Any]:
    """Archive a file or directory tree into ``zip_path``, atomically (ZC-1..ZC-6)."""
    source = required_str(config.source, "zip_create requires 'source' parameter")
    zip_path = required_str(config.zip_path, "zip_create requires 'zip_path' parameter")
    source = ctx.interpolate(source)
    zip_path = ctx.interpolate(zip_path)
    include_root = lenient_bool(ctx, config.include_root, False)
    if config.compression not in _COMPRESSION:
        raise NodeError(
            f"zip_create: unsupported compression '{config.compression}'. Use 'stored' or 'deflated'."
        )
    compression = _COMPRESSION[config.compression]
    limits = _limits(ctx, config)
    roots = FsRoots.from_env(ctx.services.env)

    entries = await _collect_sources(source, include_root, limits, roots)
    staged = await trio.to_thread.run_sync(_stage_archive, zip_path, roots)
    archive: zipfile.ZipFile | None = None
    try:
        archive = zipfile.ZipFile(staged.file, "w", compression=compression, allowZip64=True)
        await _write_entries(archive, entries, compression, limits, roots)
        await trio.to_thread.run_sync(archive.close)
        await trio.to_thread.run_sync(staged.commit)
    except BaseException:
        if archive is not None:
            await _shielded(_close_quietly, archive.close)
        await _shielded(staged.abort)
        raise
    return {
        "zip_create_path": zip_path,
        "zip_create_source": source,
        "zip_create_files": len(entries),
        "zip_create_success": True,
    }
