"""Owner leases of the JSON store as files (ST-50..52), and fencing of writes by them.

``.ironflow-run-leases-v1/<id>.lease`` holds ``{"run_id", "owner",
"expires_micros"}``, published atomically like a primary and removed on
release, reconciliation and deletion. A write carrying an owner token is
fenced: refused unless the lease file still names that owner.

Nobody may take a lease before it expires (ST-50..52: another owner acquires,
and reconciliation stalls, only an expired lease), so once this process has
read a lease naming the writer, the answer is known until shortly before that
lease's expiry and the check costs nothing. After that it costs one ``lstat``
per write, and the file is re-read only when it changed. Every change this
process makes to a lease file forgets what it knew of it.
"""

from __future__ import annotations

import json
import os

import attrs

from ironflow_core.errors import StoreError
from ironflow_core.runid import run_id_problem
from ironflow_core.stores import json_codec as codec
from ironflow_core.stores.json_store.files import (
    LEASE_DIR,
    StoreFiles,
    lease_name,
    log,
    unavailable,
)
from ironflow_core.stores.leases import (
    clock_micros,
    expiry_after,
    fenced,
    lease_lost,
    lease_taken,
    owner_may_write,
)

TRUST_MARGIN_MICROS = 10_000_000
"""How long before its expiry a lease read here is looked at again on every write: covers
clocks of other hosts that share the directory, and leases too short to be worth trusting."""


@attrs.frozen
class LeaseFile:
    """A lease as read from its file."""

    owner: str
    expires_micros: int
    data: bytes
    """The file as read: it is removed only while it still holds exactly this."""


class LeaseFiles:
    """Reading, writing and checking the lease files of one store directory."""

    def __init__(self, files: StoreFiles) -> None:
        self.files = files
        self._seen: dict[str, tuple[tuple[int, int, int], str, int]] = {}
        """Run ID -> (lease file identity, owner, expiry it held): fencing re-reads only on change."""
        self._trusted: dict[str, tuple[str, int]] = {}
        """Run ID -> (owner, until): the lease names ``owner`` and nobody may take it before."""
        self._paths: dict[str, str] = {}
        """Run ID -> its lease file's path, built once: fencing runs on every write."""

    def read(self, run_id: str) -> LeaseFile | None:
        """The run's lease, None when it has none; a damaged file is corruption."""
        name = lease_name(run_id)
        data = self.files.read_if_root(name)
        if data is None:
            return None
        try:
            fields = codec.parse_json(data)
            owner, expires = fields.get("owner"), fields.get("expires_micros")
            stored_id = fields.get("run_id")
        except (AttributeError, UnicodeDecodeError, ValueError):
            raise codec.corruption(f"Invalid lease file '{name}'", "not a lease record") from None
        if type(expires) is not int:
            raise codec.corruption(f"Invalid lease file '{name}'", "expires_micros is missing")
        if not isinstance(owner, str):
            raise codec.corruption(f"Invalid lease file '{name}'", "owner is missing")
        if stored_id != run_id:
            raise codec.corruption(f"Invalid lease file '{name}'", "run_id does not match the name")
        return LeaseFile(owner, expires, data)

    def write(self, run_id: str, owner: str, expires_micros: int) -> None:
        """Publish the lease atomically: temporary file, fsync, rename, fsync of its directory."""
        self.files.ensure_subdir(LEASE_DIR)
        self.forget(run_id)
        record = {"run_id": run_id, "owner": owner, "expires_micros": expires_micros}
        data = json.dumps(record, separators=(",", ":")).encode()
        name = lease_name(run_id)
        temp = self.files.write_temp(name, data)
        try:
            os.replace(self.files.path(temp), self.files.path(name))
        except OSError as exc:
            self.files.unlink_quiet(temp)
            raise unavailable(f"Failed to write lease file '{name}'", exc) from None
        self.files.fsync_dir(self.files.path(LEASE_DIR))

    def remove(self, run_id: str, lease: LeaseFile) -> None:
        """Unlink the lease file unless it changed since ``lease`` was read.

        The unlink is not synced (as on deletion): a lease that a crash brings
        back names an owner that is gone, so it expires; reconciliation then
        removes it without touching a finished run, and stalls an unfinished
        one, as it would have had the owner died holding it.
        """
        name = lease_name(run_id)
        self.forget(run_id)
        if self.files.read(name) != lease.data:
            return
        self.files.unlink_quiet(name)

    def fence(self, run_id: str, owner: str | None) -> None:
        """Refuse a write whose owner no longer holds the lease (see the module docstring)."""
        if owner is None:
            return
        trusted = self._trusted.get(run_id)
        if trusted is not None and trusted[0] == owner and clock_micros() < trusted[1]:
            return
        path = self._paths.get(run_id)
        if path is None:
            if len(self._paths) > 4096:
                self._paths.clear()
                self._seen.clear()
                self._trusted.clear()
            path = self._paths[run_id] = self.files.path(lease_name(run_id))
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            self.forget(run_id)
            raise fenced(run_id) from None
        except OSError as exc:
            raise unavailable(f"Failed to inspect the lease of run '{run_id}'", exc) from None
        identity = (info.st_ino, info.st_mtime_ns, info.st_size)
        seen = self._seen.get(run_id)
        if seen is None or seen[0] != identity:
            lease = self.read(run_id)
            seen = None if lease is None else (identity, lease.owner, lease.expires_micros)
            if seen is None:
                self.forget(run_id)
            else:
                self._seen[run_id] = seen
        if not owner_may_write(None if seen is None else seen[1], owner):
            raise fenced(run_id)
        if seen is not None:
            self._trusted[run_id] = (owner, seen[2] - TRUST_MARGIN_MICROS)

    def forget(self, run_id: str) -> None:
        """Drop what fencing knows of the run's lease (this process changed or removed it)."""
        self._seen.pop(run_id, None)
        self._trusted.pop(run_id, None)

    # Worker-thread bodies of the store's lease calls (the store holds the run's lock).
    def acquire(self, run_id: str, owner: str, ttl_s: float) -> None:
        """Take the lease unless another owner holds a live one."""
        now = clock_micros()
        lease = self.read(run_id)
        if lease is not None and lease.owner != owner and lease.expires_micros > now:
            raise lease_taken(run_id)
        self.write(run_id, owner, expiry_after(ttl_s, now))

    def renew(self, run_id: str, owner: str, ttl_s: float) -> None:
        """Extend a lease this owner still holds; a lost one is an error."""
        now = clock_micros()
        lease = self.read(run_id)
        if lease is None or lease.owner != owner or lease.expires_micros <= now:
            raise lease_lost(run_id)
        self.write(run_id, owner, expiry_after(ttl_s, now))

    def release(self, run_id: str, owner: str) -> None:
        """Drop the lease if this owner still holds it."""
        lease = self.read(run_id)
        if lease is not None and lease.owner == owner:
            self.remove(run_id, lease)

    def expired(self, now_micros: int) -> list[str]:
        """Run IDs whose lease file expired; damaged lease files are reported and skipped."""
        if not self.files.root_exists():
            return []
        try:
            names = os.listdir(self.files.path(LEASE_DIR))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise unavailable("Failed to list the lease directory", exc) from None
        expired = []
        for name in sorted(names):
            run_id = name[:-6]
            if name.startswith(".") or not name.endswith(".lease") or run_id_problem(run_id):
                continue  # temporary files and names that are no run's lease
            try:
                lease = self.read(run_id)
            except StoreError as exc:
                log.warning("skipping lease of run %s: %s", run_id, exc)
                continue
            if lease is not None and lease.expires_micros <= now_micros:
                expired.append(run_id)
        return expired
