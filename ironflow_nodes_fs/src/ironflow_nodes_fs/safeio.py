"""Blocking file primitives that never follow a symlink they were not asked to.

Reads go through the core's one safe reader (``ironflow_core.open_regular_file``:
``O_NOFOLLOW | O_NONBLOCK``, the opened handle checked), so a FIFO or a device
is refused without ever blocking and without a race between a check and the
open (RF-1). Under ``IRONFLOW_FS_ROOTS`` every path is reached by
the core's descriptor walk (``ironflow_core.fsroots``) and the leaf is opened
relative to its parent's descriptor. Writes go through ``RootedDir``: a
directory opened once, below which every component is opened relative to its
parent with ``O_NOFOLLOW | O_DIRECTORY``, and ``StagedFile``: a ``.ironflow-<uuid>.tmp``
sibling that is written, fsynced and renamed (or hard-linked, when overwriting
is not allowed) over the destination, or removed on failure (WF-4, ZX-2).

Everything here blocks; the nodes call it through ``trio.to_thread.run_sync``
in small steps so a cancelled step stops between two of them.
"""

from __future__ import annotations

import os
import stat
import uuid
from typing import BinaryIO

from ironflow_core import NodeError, NotRegularFileError, open_regular_file
from ironflow_nodes_fs.policy import FsRoots, open_confined_dir, open_confined_parent

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def os_text(error: OSError) -> str:
    """An OS error the way upstream prints it: ``No such file or directory (os error 2)``."""
    if error.errno is None:
        return str(error)
    return f"{error.strerror or os.strerror(error.errno)} (os error {error.errno})"


def lossy(name: str) -> str:
    """A file name as valid UTF-8 text (undecodable bytes become U+FFFD)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def open_regular(
    path: str,
    what: str,
    *,
    roots: FsRoots | None,
    follow: bool = False,
    dir_fd: int | None = None,
    shown: str | None = None,
) -> int:
    """Open ``path`` for reading; it must be a regular file (RF-1).

    The final component is not followed unless ``follow``. ``shown`` is the
    path named in errors (``path`` itself by default). Returns a raw
    descriptor the caller closes.
    """
    shown = path if shown is None else shown
    parent: int | None = None
    name = path
    if dir_fd is None and roots is not None:
        try:
            parent, name = open_confined_parent(roots, path, what, follow_leaf=follow)
        except OSError as error:
            raise NodeError(
                f"{what}: failed to read '{shown}': failed to open file: {os_text(error)}"
            ) from None
        dir_fd, follow = parent, False  # the walk resolved the leaf already
    try:
        fd, _ = open_regular_file(name, dir_fd=dir_fd, follow_symlinks=follow)
    except NotRegularFileError:
        raise NodeError(f"{what}: '{shown}' is not a regular file") from None
    except OSError as error:
        raise NodeError(
            f"{what}: failed to read '{shown}': failed to open file: {os_text(error)}"
        ) from None
    finally:
        if parent is not None:
            os.close(parent)
    return fd


def _open_dir_at(parent: int, name: str) -> int:
    return os.open(name, _DIR_FLAGS, dir_fd=parent)


def open_or_create_dir(parent: int, name: str, operation: str) -> int:
    """Open (creating if missing) the directory ``name`` below ``parent``, never via a symlink."""
    try:
        return _open_dir_at(parent, name)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise _unsafe_component(operation, name, error) from None
    try:
        os.mkdir(name, 0o755, dir_fd=parent)
    except FileExistsError:
        pass
    except OSError as error:
        raise _unsafe_component(operation, name, error) from None
    try:
        return _open_dir_at(parent, name)
    except OSError as error:
        raise _unsafe_component(operation, name, error) from None


def _unsafe_component(operation: str, name: str, error: OSError) -> NodeError:
    return NodeError(
        f"{operation}: destination component '{name}' is not a safe directory: {os_text(error)}"
    )


class RootedDir:
    """A directory held open by descriptor; everything below it is reached without symlinks."""

    def __init__(self, fd: int, operation: str) -> None:
        self.fd = fd
        self.operation = operation

    @classmethod
    def open(
        cls,
        path: str,
        operation: str,
        *,
        roots: FsRoots | None,
        create: bool,
        follow_root: bool,
        shown: str | None = None,
    ) -> RootedDir:
        """Open ``path`` as the root, creating missing components when ``create``.

        Components above the root may be symlinks (they are the operator's
        layout); the root itself may only be one when ``follow_root``.
        """
        path = path or "."
        if roots is not None:
            try:
                fd = open_confined_dir(roots, path, operation, create=create, shown=shown)
                return cls(fd, operation)
            except OSError as error:
                raise NodeError(
                    f"{operation}: failed to open directory '{path}': {os_text(error)}"
                ) from None
        cursor = path
        missing: list[str] = []
        while True:
            try:
                info = os.lstat(cursor)
            except FileNotFoundError as error:
                if not create:
                    raise NodeError(
                        f"{operation}: failed to open directory '{path}': {os_text(error)}"
                    ) from None
                parts = _split_creatable(cursor)
                if parts is None:
                    raise NodeError(
                        f"{operation}: destination '{path}' has no creatable component"
                    ) from None
                cursor, name = parts
                missing.append(name)
                continue
            except OSError as error:
                raise NodeError(
                    f"{operation}: failed to inspect '{cursor}': {os_text(error)}"
                ) from None
            break
        anchor = cursor
        if stat.S_ISLNK(info.st_mode):
            if not missing and not follow_root:
                raise NodeError(f"{operation}: destination root '{cursor}' is a symlink")
            anchor = os.path.realpath(cursor)
        try:
            if not stat.S_ISDIR(os.stat(anchor).st_mode):
                raise NodeError(f"{operation}: destination component '{cursor}' is not a directory")
            fd = os.open(anchor, _DIR_FLAGS)
        except OSError as error:
            raise NodeError(
                f"{operation}: failed to open destination anchor '{anchor}': {os_text(error)}"
            ) from None
        try:
            for name in reversed(missing):
                child = open_or_create_dir(fd, name, operation)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, operation)

    def walk(self, parts: list[str] | tuple[str, ...]) -> int:
        """A new descriptor for the directory ``parts`` below the root (created as needed)."""
        fd = os.dup(self.fd)
        try:
            for name in parts:
                child = open_or_create_dir(fd, name, self.operation)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def close(self) -> None:
        """Close the directory descriptor (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _split_creatable(cursor: str) -> tuple[str, str] | None:
    trimmed = cursor.rstrip("/") if cursor != "/" else cursor
    parent, name = os.path.split(trimmed)
    if name in ("", ".", ".."):
        return None
    return (parent or "."), name


def leaf_kind(parent: int, leaf: str) -> str:
    """``missing``, ``regular``, ``symlink`` or ``other`` — without following the leaf."""
    try:
        info = os.stat(leaf, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return "missing"
    if stat.S_ISREG(info.st_mode):
        return "regular"
    if stat.S_ISLNK(info.st_mode):
        return "symlink"
    return "other"


def refuse_unsafe_leaf(
    parent: int, leaf: str, *, overwrite: bool, operation: str, shown: str
) -> str:
    """Refuse a destination leaf that is a symlink or not a regular file; return its kind."""
    kind = leaf_kind(parent, leaf)
    if kind == "regular" and not overwrite:
        raise NodeError(
            f"{operation}: destination file already exists and overwrite=false: {shown}"
        )
    if kind == "symlink":
        raise NodeError(
            f"{operation}: destination leaf is a symlink and will not be followed: {shown}"
        )
    if kind == "other":
        raise NodeError(f"{operation}: destination leaf is not a regular file: {shown}")
    return kind


class StagedFile:
    """A temporary sibling of the destination, published atomically by ``commit``."""

    def __init__(
        self, parent: int, leaf: str, temp: str, fd: int, *, overwrite: bool, operation: str
    ) -> None:
        self.parent = parent
        self.leaf = leaf
        self.temp = temp
        self.overwrite = overwrite
        self.operation = operation
        self.file: BinaryIO = os.fdopen(fd, "wb")
        self.done = False

    @classmethod
    def create(
        cls,
        parent: int,
        leaf: str,
        *,
        overwrite: bool,
        operation: str,
        shown: str,
        mode: int | None = None,
    ) -> StagedFile:
        """Stage a file named ``leaf`` in the directory ``parent`` (the descriptor is taken over)."""
        try:
            refuse_unsafe_leaf(parent, leaf, overwrite=overwrite, operation=operation, shown=shown)
            for _ in range(16):
                temp = f".ironflow-{uuid.uuid4()}.tmp"
                try:
                    fd = os.open(temp, _TEMP_FLAGS, 0o600, dir_fd=parent)
                except FileExistsError:
                    continue
                except OSError as error:
                    raise NodeError(
                        f"{operation}: failed to create a temporary destination file: "
                        f"{os_text(error)}"
                    ) from None
                if mode is not None:
                    os.fchmod(fd, mode)
                return cls(parent, leaf, temp, fd, overwrite=overwrite, operation=operation)
            raise NodeError(f"{operation}: could not allocate a unique temporary destination file")
        except BaseException:
            os.close(parent)
            raise

    def commit(self) -> None:
        """Flush, fsync and publish the staged bytes under the destination name."""
        try:
            self._publish()
        except OSError as error:
            raise NodeError(
                f"{self.operation}: failed to publish '{self.leaf}': {os_text(error)}"
            ) from None
        self.done = True
        try:
            os.fsync(self.parent)  # make the rename itself durable
        except OSError:
            pass
        os.close(self.parent)
        self.parent = -1

    def _publish(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        if self.overwrite:
            kind = leaf_kind(self.parent, self.leaf)
            if kind == "symlink":
                raise NodeError(
                    f"{self.operation}: destination leaf is a symlink and will not be followed"
                )
            if kind == "other":
                raise NodeError(f"{self.operation}: destination leaf is not a regular file")
            os.rename(self.temp, self.leaf, src_dir_fd=self.parent, dst_dir_fd=self.parent)
        else:
            try:
                os.link(
                    self.temp,
                    self.leaf,
                    src_dir_fd=self.parent,
                    dst_dir_fd=self.parent,
                    follow_symlinks=False,
                )
            except OSError as error:
                raise NodeError(
                    f"{self.operation}: destination already exists or cannot be published: "
                    f"{os_text(error)}"
                ) from None
            os.unlink(self.temp, dir_fd=self.parent)

    def abort(self) -> None:
        """Remove the temporary file; the destination was never touched."""
        if self.done or self.parent < 0:
            return
        self.done = True
        try:
            self.file.close()
        except OSError:
            pass
        try:
            os.unlink(self.temp, dir_fd=self.parent)
        except OSError:
            pass
        os.close(self.parent)
        self.parent = -1
