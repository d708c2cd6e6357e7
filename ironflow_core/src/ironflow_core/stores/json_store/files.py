"""The JSON store's files: names, safe opens relative to the root, atomic publish, fsync.

The root must be a real directory, never a symlink (ST-30), and every entry
is checked to be a regular file before it is trusted. A file is published
atomically: a temporary ``.<name>.<hex>.tmp`` beside it (mode 0600) is
written and fsynced, then hard-linked into place for a new run (so a
duplicate is a conflict) or renamed over the old file, then the directory is
fsynced. Everything here blocks: the store calls it from worker threads.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import uuid

import attrs

from ironflow_core.errors import (
    RunConflictError,
    StoreCorruptionError,
    StoreUnavailableError,
)
from ironflow_core.regular_files import NotRegularFileError, open_regular, read_bounded
from ironflow_core.stores import json_codec as codec

log = logging.getLogger("ironflow_core.stores.json_store")

CATALOG_FILES = tuple(
    f".ironflow-run-catalog-v1.{suffix}" for suffix in ("bin", "delta", "state", "lock")
)
LEASE_DIR = ".ironflow-run-leases-v1"
FLOW_DIR = ".ironflow-flows-v1"
ORIGIN_DIR = ".ironflow-run-origins-v1"

_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW


def primary_name(run_id: str) -> str:
    """The authoritative record of a run, in upstream's layout."""
    return f"{run_id}.json"


def sidecar_name(run_id: str) -> str:
    """The summary cache the listing reads instead of the whole record."""
    return f"{run_id}.summary.json"


def lease_name(run_id: str) -> str:
    """The owner lease of a run being executed (ST-51)."""
    return os.path.join(LEASE_DIR, f"{run_id}.lease")


def flow_name(digest: str) -> str:
    """A flow source, stored once per distinct content."""
    return os.path.join(FLOW_DIR, f"{digest}.json")


def origin_name(run_id: str) -> str:
    """What a resume needs beside the record (``RunOrigin``)."""
    return os.path.join(ORIGIN_DIR, f"{run_id}.json")


def unsafe(name: str, detail: str) -> StoreCorruptionError:
    """An entry that is not what the store writes there (a symlink, a directory, ...)."""
    return codec.corruption(f"Unsafe JSON store entry '{name}'", detail)


def unavailable(what: str, exc: OSError) -> StoreUnavailableError:
    """An operating-system failure, worded without a Python class name."""
    return StoreUnavailableError(f"{what}: {exc.strerror or exc}")


@attrs.define
class JsonStoreStats:
    """I/O counters, so tests and benchmarks can check that persistence stays linear."""

    bytes_written: int = 0
    journal_appends: int = 0
    primary_writes: int = 0
    compactions: int = 0


class StoreFiles:
    """The store's directory: every path the store touches is resolved and checked here."""

    def __init__(self, root: str, stats: JsonStoreStats) -> None:
        self.root = root
        self.stats = stats

    def path(self, name: str) -> str:
        """``name`` (relative to the root) as a path."""
        return os.path.join(self.root, name)

    def root_exists(self) -> bool:
        """The root must be a real directory, never a symlink (ST-30)."""
        try:
            info = os.lstat(self.root)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise unavailable("Failed to inspect JSON store directory", exc) from None
        if stat.S_ISLNK(info.st_mode):
            raise unsafe("store directory", "symlink")
        if not stat.S_ISDIR(info.st_mode):
            raise unsafe("store directory", "non-directory filesystem entry")
        return True

    def ensure_root(self) -> None:
        """Create the root (mode 0700) on the first write."""
        if self.root_exists():
            return
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            os.chmod(self.root, 0o700, follow_symlinks=False)
        except OSError as exc:
            raise unavailable("Failed to create JSON store directory", exc) from None
        self.root_exists()

    def ensure_subdir(self, name: str) -> None:
        """A private directory of the store (mode 0700), never a symlink."""
        self.ensure_root()
        directory = self.path(name)
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise unavailable(f"Failed to create the directory '{name}'", exc) from None
        try:
            is_dir = stat.S_ISDIR(os.lstat(directory).st_mode)
        except OSError as exc:
            raise unavailable(f"Failed to inspect the directory '{name}'", exc) from None
        if not is_dir:
            raise unsafe(name, "not a directory")

    def entry_exists(self, name: str) -> bool:
        """Whether ``name`` exists; it must be a regular file if it does."""
        try:
            info = os.lstat(self.path(name))
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise unavailable(f"Failed to inspect JSON store entry '{name}'", exc) from None
        if stat.S_ISLNK(info.st_mode):
            raise unsafe(name, "symlink")
        if not stat.S_ISREG(info.st_mode):
            raise unsafe(name, "non-regular filesystem entry")
        return True

    def run_exists(self, run_id: str) -> bool:
        """Whether the run's primary record exists."""
        return self.root_exists() and self.entry_exists(primary_name(run_id))

    def open_regular(self, name: str) -> int | None:
        """A read descriptor of the regular file ``name``, or None when it is absent."""
        try:
            fd, _ = open_regular(self.path(name))
        except FileNotFoundError:
            return None
        except NotRegularFileError:
            raise unsafe(name, "non-regular filesystem entry") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise unsafe(name, "symlink") from None
            raise unavailable(f"Failed to open JSON store entry '{name}'", exc) from None
        return fd

    def read(self, name: str, *, limit: int | None = None) -> bytes | None:
        """The whole file (or its first ``limit`` bytes), None when it is absent."""
        fd = self.open_regular(name)
        if fd is None:
            return None
        try:
            if limit is not None:
                return os.pread(fd, limit, 0)
            return read_bounded(fd, None)
        except OSError as exc:
            raise unavailable(f"Failed to read JSON store entry '{name}'", exc) from None
        finally:
            os.close(fd)

    def read_if_root(self, name: str) -> bytes | None:
        """:meth:`read`, or None before the store's first write."""
        return self.read(name) if self.root_exists() else None

    def write_temp(self, name: str, data: bytes, *, sync: bool = True) -> str:
        """Write ``.<name>.<hex>.tmp`` beside ``name`` (mode 0600) and fsync it; returns its name.

        ``sync=False`` leaves out the fsync, for caches whose reader checks what it reads.
        """
        folder, base = os.path.split(name)
        for _ in range(8):
            temp = os.path.join(folder, f".{base}.{uuid.uuid4().hex}.tmp")
            try:
                fd = os.open(self.path(temp), _TEMP_FLAGS, 0o600)
            except FileExistsError:
                continue
            except OSError as exc:
                raise unavailable(f"Failed to create temporary JSON entry for '{name}'", exc) from None
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if sync:
                    os.fsync(fd)
            except BaseException as exc:
                os.close(fd)
                self.unlink_quiet(temp)
                if isinstance(exc, OSError):
                    raise unavailable(
                        f"Failed to write temporary JSON entry for '{name}'", exc
                    ) from None
                raise
            os.close(fd)
            self.stats.bytes_written += len(data)
            return temp
        raise StoreUnavailableError(f"Could not allocate a temporary JSON entry for '{name}'")

    def publish_new(self, name: str, data: bytes, run_id: str) -> None:
        """Hard-link a fresh file into place: an existing run is a conflict (ST-32)."""
        self.ensure_root()
        if self.entry_exists(name):
            raise RunConflictError(f"Run '{run_id}' already exists")
        temp = self.write_temp(name, data)
        try:
            os.link(self.path(temp), self.path(name), follow_symlinks=False)
        except FileExistsError:
            raise RunConflictError(f"Run '{run_id}' already exists") from None
        except OSError as exc:
            raise unavailable(f"Failed to commit new run '{run_id}'", exc) from None
        finally:
            self.unlink_quiet(temp)
        self.stats.primary_writes += 1
        self.fsync_dir()

    def rename(self, temp: str, name: str) -> None:
        """Move a written temporary file over ``name`` (atomic); the temporary is gone after."""
        try:
            os.replace(self.path(temp), self.path(name))
        except BaseException as exc:
            self.unlink_quiet(temp)
            if isinstance(exc, OSError):
                raise unavailable(f"Failed to replace JSON store entry '{name}'", exc) from None
            raise

    def publish_replace(
        self, name: str, data: bytes, *, primary: bool = True, sync: bool = True
    ) -> None:
        """Replace ``name`` atomically; a primary also gets its directory synced.

        ``sync=False``: not even the file's data is synced (see :meth:`write_sidecar`).
        """
        self.ensure_root()
        self.rename(self.write_temp(name, data, sync=sync), name)
        if primary:
            self.stats.primary_writes += 1
            self.fsync_dir()

    def write_sidecar(self, run_id: str, data: bytes) -> None:
        """Best effort: the primary is authoritative and a stale sidecar is rebuilt."""
        try:
            # Neither the data nor the rename is synced: the listing uses a
            # sidecar only when its revision and digest match the primary's
            # header and its summary matches that digest, so whatever a crash
            # leaves of it (nothing, an older one, a torn one) is rebuilt.
            self.publish_replace(sidecar_name(run_id), data, primary=False, sync=False)
        except (OSError, StoreUnavailableError, StoreCorruptionError) as exc:
            log.warning("could not write the summary cache of run %s: %s", run_id, exc)

    def fsync_dir(self, directory: str | None = None) -> None:
        """Make renames and unlinks in ``directory`` (the root by default) durable."""
        try:
            fd = os.open(directory or self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise unavailable("Failed to open JSON store directory", exc) from None
        try:
            os.fsync(fd)
        except OSError as exc:
            raise unavailable("Failed to sync JSON store directory", exc) from None
        finally:
            os.close(fd)

    def unlink_quiet(self, name: str) -> None:
        """Remove ``name`` if it is there; a failure is not an error (caches, temporaries)."""
        try:
            os.unlink(self.path(name))
        except OSError:
            pass

    def drop_catalog(self) -> None:
        """ST-34: upstream's catalog is a derived cache; removing it makes upstream rebuild it."""
        for name in CATALOG_FILES:
            self.unlink_quiet(name)
