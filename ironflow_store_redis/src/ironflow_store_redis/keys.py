"""Redis key names and catalog ordering members, exactly as upstream spells them (ST-41..43).

Pure functions only, so both the store and the tests can name keys without a
server. ``{p}`` below is ``REDIS_PREFIX`` (default ``ironflow:``)::

    {p}runs:{seg}                        HASH  info, summary, revision, incarnation, ...
    {p}runs:index                        SET   run IDs (legacy catalog)
    {p}run_catalog:v1:members            HASH  run ID -> ordering member
    {p}run_catalog:v1:all                ZSET  ordering members, all scores 0
    {p}run_catalog:v1:status:<status>    ZSET  the same, per status
    {p}run_leases:v1:expiry              ZSET  run ID scored by lease expiry (µs)
"""

from __future__ import annotations

import re

import attrs

from ironflow_core.storekit import RUN_STATUSES, timestamp_micros

DEFAULT_PREFIX = "ironflow:"
DEFAULT_URL = "redis://127.0.0.1:6379"

_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_U64 = 1 << 64
_SIGN = 1 << 63


def run_segment(run_id: str) -> str:
    """ST-41: the ID itself when it is plain and not ``index``, else ``~`` + hex of its bytes."""
    if run_id != "index" and _PLAIN_SEGMENT.fullmatch(run_id):
        return run_id
    return "~" + run_id.encode("utf-8").hex()


def ordering_member(started: str | None, run_id: str) -> str:
    """ST-43: ``1:<16 hex>:<id>`` (started µs as u64 XOR 2^63) or ``0:<id>`` without ``started``.

    Lexicographic order of members is then ST-20 order reversed, so a
    ``ZREVRANGEBYLEX`` reads runs newest first.
    """
    if started is None:
        return f"0:{run_id}"
    micros = timestamp_micros(started) % _U64
    return f"1:{micros ^ _SIGN:016x}:{run_id}"


def member_run_id(member: str) -> str | None:
    """The run ID an ordering member names, or ``None`` when it is malformed."""
    if member.startswith("0:"):
        return member[2:] or None
    if member.startswith("1:") and len(member) > 19 and member[18] == ":":
        return member[19:]
    return None


@attrs.frozen
class Keys:
    """Every key the store touches, for one prefix."""

    prefix: str = DEFAULT_PREFIX

    def run(self, run_id: str) -> str:
        """The hash holding one run's record (upstream layout)."""
        return f"{self.prefix}runs:{run_segment(run_id)}"

    @property
    def index(self) -> str:
        """The legacy set of all run IDs, kept because upstream still reads it."""
        return f"{self.prefix}runs:index"

    @property
    def members(self) -> str:
        """The catalog's run ID -> ordering member map, to find a run's entry when it moves."""
        return f"{self.prefix}run_catalog:v1:members"

    @property
    def all(self) -> str:
        """The ZSET ordering every run, for listing without a status filter."""
        return f"{self.prefix}run_catalog:v1:all"

    def status(self, status: str) -> str:
        """The ZSET ordering the runs in ``status``, for listing with a status filter."""
        return f"{self.prefix}run_catalog:v1:status:{status}"

    @property
    def statuses(self) -> tuple[str, ...]:
        """The six per-status ZSETs, in ``RUN_STATUSES`` order."""
        return tuple(self.status(s) for s in RUN_STATUSES)

    @property
    def lease_expiry(self) -> str:
        """The ZSET of lease expiries, so recovery finds expired leases without a scan."""
        return f"{self.prefix}run_leases:v1:expiry"

    def flow(self, digest: str) -> str:
        """A stored flow source (Python-private), shared by every run of that source."""
        return f"{self.prefix}py:flows:{digest}"

    def catalog(self) -> list[str]:
        """KEYS shared by the scripts that maintain the catalog (see ``scripts.py``)."""
        return [self.index, self.members, self.all, *self.statuses, self.lease_expiry]
