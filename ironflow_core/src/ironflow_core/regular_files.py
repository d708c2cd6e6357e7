"""Opening and reading regular files safely: the one reader for flows, nodes, plugins and stores.

Every file IronFlow reads on a caller's behalf (a flow file, ``base64_encode``'s
``file``, the fs plugin's nodes, the JSON store's records) goes through
:func:`open_regular`: opened non-blocking (a FIFO without a writer cannot hang
the reader), close-on-exec and, unless asked, without following a final
symlink; the *opened* descriptor is then checked to be a regular file, so
there is no window between a check and the open. :func:`read_bounded` reads
it fully but never more than a limit, checking the size twice: on the opened
file's metadata and on the bytes actually read (``/proc`` files report 0).

Callers word their own errors: an ``OSError`` from the open (``ELOOP`` for a
refused symlink), :class:`NotRegularFileError` and :class:`FileTooLargeError`.
Everything here blocks; async callers use a worker thread.
"""

from __future__ import annotations

import os
import stat

import attrs

READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
"""How a file is opened for reading; ``O_NOFOLLOW`` is added unless symlinks are followed."""
CHUNK_BYTES = 64 * 1024


class NotRegularFileError(Exception):
    """The path names a directory, FIFO, device or socket, which is never read."""


@attrs.define(init=False)
class FileTooLargeError(Exception):
    """A file is larger than the caller's limit; ``size`` is None when only reading showed it."""

    size: int | None
    limit: int

    def __init__(self, size: int | None, limit: int) -> None:
        super().__init__(size, limit)
        self.size = size
        self.limit = limit


def open_regular(
    path: str, *, dir_fd: int | None = None, follow_symlinks: bool = False
) -> tuple[int, os.stat_result]:
    """Open ``path`` for reading and return the descriptor with its metadata.

    Raises ``OSError`` when the open fails and :class:`NotRegularFileError`
    (the descriptor closed) when it is not a regular file; the caller closes
    the descriptor it gets.
    """
    flags = READ_FLAGS if follow_symlinks else READ_FLAGS | os.O_NOFOLLOW
    fd = os.open(path, flags, dir_fd=dir_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFileError(path)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def read_bounded(fd: int, limit: int | None, size: int | None = None) -> bytes:
    """Read an open file to its end; over ``limit`` bytes is :class:`FileTooLargeError`.

    ``size`` is the file's size from its metadata when the caller has it,
    checked before anything is read. ``limit`` None reads without a bound
    (files the caller wrote itself).
    """
    if limit is not None and size is not None and size > limit:
        raise FileTooLargeError(size, limit)
    chunks: list[bytes] = []
    total = 0
    while True:
        want = CHUNK_BYTES if limit is None else min(CHUNK_BYTES, limit + 1 - total)
        chunk = os.read(fd, max(want, 1))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if limit is not None and total > limit:
            raise FileTooLargeError(None, limit)


def read_regular(
    path: str, limit: int | None, *, dir_fd: int | None = None, follow_symlinks: bool = False
) -> bytes:
    """:func:`open_regular` then :func:`read_bounded`, closing the file in every case."""
    fd, info = open_regular(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
    try:
        return read_bounded(fd, limit, info.st_size)
    finally:
        os.close(fd)
