"""Judging a ZIP archive before anything is written (ZL-1, ZL-2, ZX-1).

Pure functions over ``zipfile.ZipInfo`` records, plus a look at the
end-of-central-directory record so an archive announcing millions of entries
is refused before Python builds a ``ZipInfo`` for each of them.
"""

from __future__ import annotations

import stat
import struct
import zipfile
from typing import BinaryIO

import attrs

from ironflow_core import NodeError
from ironflow_nodes_fs.limits import ZipLimits

_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"

_METHOD_NAMES = {
    0: "Stored",
    8: "Deflated",
    9: "Deflate64",
    12: "Bzip2",
    14: "Lzma",
    93: "Zstd",
    95: "Xz",
    99: "Aes",
}
_EXTRACTABLE_METHODS = frozenset({0, 8, 12, 14})
_RESERVED_STEMS = frozenset({"CON", "PRN", "AUX", "NUL"})
_DOS_DIRECTORY = 0x10


def method_name(compress_type: int) -> str:
    """The compression method as upstream prints it (``Stored``, ``Deflated``...) [quirk]."""
    return _METHOD_NAMES.get(compress_type, f"Unsupported({compress_type})")


def declared_entry_count(fp: BinaryIO) -> int | None:
    """The entry count the archive's end record announces, or None if unreadable."""
    fp.seek(0, 2)
    size = fp.tell()
    span = min(size, _EOCD.size + 65535)
    fp.seek(size - span)
    tail = fp.read(span)
    at = tail.rfind(_EOCD_SIGNATURE)
    if at < 0 or len(tail) - at < _EOCD.size:
        return None
    total = _EOCD.unpack_from(tail, at)[4]
    if total != 0xFFFF or at < _ZIP64_LOCATOR.size:
        return total
    signature, _disk, offset, _disks = _ZIP64_LOCATOR.unpack_from(tail, at - _ZIP64_LOCATOR.size)
    if signature != _ZIP64_LOCATOR_SIGNATURE or offset > size - _ZIP64_EOCD.size:
        return total
    fp.seek(offset)
    record = fp.read(_ZIP64_EOCD.size)
    if len(record) < _ZIP64_EOCD.size or record[:4] != _ZIP64_EOCD_SIGNATURE:
        return total
    return _ZIP64_EOCD.unpack(record)[7]


def check_entry_count(operation: str, count: int, limits: ZipLimits) -> None:
    """Refuse an archive with more entries than the limit."""
    if count > limits.max_entries:
        raise NodeError(
            f"{operation}: archive has {count} entries, exceeds limit {limits.max_entries}"
        )


def add_declared_size(operation: str, total: int, size: int, limits: ZipLimits) -> int:
    """Add an entry's declared size; refuse when the total passes the limit."""
    total += size
    if total > limits.max_total_uncompressed_bytes:
        raise NodeError(
            f"{operation}: total uncompressed bytes exceed limit "
            f"{limits.max_total_uncompressed_bytes}"
        )
    return total


def list_entry(info: zipfile.ZipInfo) -> dict[str, object]:
    """One ``zip_list`` row (ZL-2); names are shown exactly as stored."""
    name = info.orig_filename
    return {
        "name": name,
        "is_directory": name.endswith("/"),
        "size": info.file_size,
        "compressed_size": info.compress_size,
        "crc32": info.CRC,
        "method": method_name(info.compress_type),
    }


@attrs.frozen
class EntryPlan:
    """One checked archive entry and where it lands."""

    index: int
    name: str
    """The entry name exactly as stored (what ``zip_extract`` reports)."""
    parts: tuple[str, ...]
    is_dir: bool


def _unix_mode(info: zipfile.ZipInfo) -> int:
    """The entry's file-type bits: from the Unix mode, or derived from DOS attributes."""
    if info.create_system == 3:
        return stat.S_IFMT(info.external_attr >> 16)
    if info.external_attr & _DOS_DIRECTORY:
        return stat.S_IFDIR
    return 0


def _entry_is_dir(info: zipfile.ZipInfo) -> bool:
    name = info.orig_filename
    kind = _unix_mode(info)
    if stat.S_ISLNK(kind):
        raise NodeError(f"zip_extract: archive symlink entries are not supported: {name}")
    is_dir = name.endswith("/")
    expected = stat.S_IFDIR if is_dir else stat.S_IFREG
    if kind not in (0, expected):
        raise NodeError(f"zip_extract: archive entry is not a regular file or directory: {name}")
    if info.flag_bits & 0x1:
        raise NodeError(f"zip_extract: encrypted archive entries are not supported: {name}")
    if not is_dir and info.compress_type not in _EXTRACTABLE_METHODS:
        raise NodeError(
            f"zip_extract: compression method {method_name(info.compress_type)} is not "
            f"supported: {name}"
        )
    return is_dir


def _ascii_upper(text: str) -> str:
    return "".join(c.upper() if c.isascii() else c for c in text)


def _check_portable(component: str, name: str) -> None:
    if ":" in component or component.endswith((".", " ")):
        raise NodeError(f"zip_extract: archive entry is not a portable path: {name}")
    stem = _ascii_upper(component.split(".", 1)[0])
    reserved = stem in _RESERVED_STEMS or (
        len(stem) == 4 and stem[:3] in ("COM", "LPT") and stem[3] in "123456789"
    )
    if reserved:
        raise NodeError(f"zip_extract: archive entry uses a reserved path component: {name}")


def entry_parts(name: str, is_dir: bool, max_depth: int) -> tuple[str, ...]:
    """The relative path an entry would be written to, or ``NodeError`` (ZX-1)."""
    if not name or "\0" in name:
        raise NodeError("zip_extract: empty entry name in archive")
    if "\\" in name:
        raise NodeError(f"zip_extract: archive entry uses unsupported path separator: {name}")
    if name.startswith("/"):
        raise NodeError(f"zip_extract: absolute path in archive entry: {name}")
    normalized = name[:-1] if is_dir and name.endswith("/") else name
    parts = tuple(normalized.split("/"))
    if any(not part for part in parts):
        raise NodeError(f"zip_extract: empty path component in archive entry: {name}")
    for part in parts:
        if part in (".", ".."):
            raise NodeError(f"zip_extract: path traversal attempt in archive entry: {name}")
        _check_portable(part, name)
    depth = len(parts) - 1
    if depth > max_depth:
        raise NodeError(f"zip_extract: entry '{name}' has depth {depth}, exceeds limit {max_depth}")
    return parts


def plan_extraction(infos: list[zipfile.ZipInfo], limits: ZipLimits) -> list[EntryPlan]:
    """Validate every entry and return what to write, in archive order (ZX-1)."""
    check_entry_count("zip_extract", len(infos), limits)
    plans: list[EntryPlan] = []
    declared = 0
    seen: dict[str, bool] = {}  # collision key -> is a directory
    parents: set[str] = set()
    for index, info in enumerate(infos):
        declared = add_declared_size("zip_extract", declared, info.file_size, limits)
        is_dir = _entry_is_dir(info)
        name = info.orig_filename
        parts = entry_parts(name, is_dir, limits.max_depth)
        folded = [part.lower() for part in parts]
        key = "/".join(folded)
        if not is_dir and key in parents:
            raise NodeError(f"zip_extract: archive file is also used as a parent directory: {name}")
        if key in seen:
            raise NodeError(f"zip_extract: duplicate archive destination: {name}")
        seen[key] = is_dir
        for cut in range(len(folded) - 1, 0, -1):
            parent = "/".join(folded[:cut])
            if seen.get(parent) is False:
                raise NodeError(
                    f"zip_extract: archive file is also used as a parent directory: {name}"
                )
            parents.add(parent)
        plans.append(EntryPlan(index=index, name=name, parts=parts, is_dir=is_dir))
    return plans
