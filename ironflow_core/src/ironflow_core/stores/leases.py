"""What every store does the same way for owner leases (semantics.md#leases).

A lease says "a live process is executing this run". Expiries are wall-clock
microseconds because processes on different machines compare them; an
expired lease whose run never finished is the trace of a process that died,
and reconciliation closes such a run as ``stalled`` (ST-52). The stores keep
their leases differently (a dict, a lease file, hash fields); the rules and
the texts live here.
"""

from __future__ import annotations

import time
from typing import Any

from ironflow_core.errors import LeaseLostError, RunConflictError

LEASE_EXPIRED_ERROR = "task stopped after execution-owner lease expired"
"""ST-52: the error of every task a reconciliation closes."""


def clock_micros() -> int:
    """Wall-clock microseconds since the epoch (lease expiries compare across processes)."""
    return time.time_ns() // 1000


def expiry_after(ttl_s: float, now_micros: int) -> int:
    """The expiry of a lease taken or renewed at ``now_micros`` for ``ttl_s`` seconds."""
    return now_micros + max(0, round(ttl_s * 1_000_000))


def lease_taken(run_id: str) -> RunConflictError:
    """The conflict of taking a lease another live owner holds."""
    return RunConflictError(f"Run '{run_id}' is already owned by another live execution")


def lease_lost(run_id: str) -> RunConflictError:
    """The conflict of renewing a lease that was lost or taken over."""
    return RunConflictError(f"Run '{run_id}' no longer holds its execution-owner lease")


def fenced(run_id: str) -> LeaseLostError:
    """A write whose owner token no longer holds the run's lease (fencing)."""
    return LeaseLostError(
        f"Run '{run_id}': write refused, this process no longer holds the run's "
        "execution-owner lease (another process took the run over, or it was reconciled)"
    )


def owner_may_write(lease_owner: str | None, owner: str | None) -> bool:
    """The fencing rule every store applies to a write carrying ``owner``.

    ``None`` is an unfenced write (a child run, a tool). Otherwise the lease
    must still name ``owner``: a lease that expired but was neither reconciled
    nor taken over still lets its owner finish, because nobody else writes.
    """
    return owner is None or lease_owner == owner


def still_executing(run_id: str) -> RunConflictError:
    """ST-35 / API-63: a non-terminal run with a live lease cannot be deleted."""
    return RunConflictError(f"Run '{run_id}' is still executing")


def is_unfinished(status: str) -> bool:
    """Whether a reconciliation stalls a run in this status (``pending``/``running``)."""
    return status in ("pending", "running")


def stall_record(raw: dict[str, Any], finished: str) -> None:
    """ST-52 on a run in its JSON form: ``stalled``, ``finished`` once, open tasks closed.

    ``running`` tasks become ``failed`` and ``pending`` ones ``skipped``, each
    with ``LEASE_EXPIRED_ERROR``; finished tasks are left as they are.
    """
    raw["status"] = "stalled"
    if raw.get("finished") is None:
        raw["finished"] = finished
    for task in raw["tasks"].values():
        if task.get("status") == "running":
            task["status"] = "failed"
        elif task.get("status") == "pending":
            task["status"] = "skipped"
        else:
            continue
        task["error"] = LEASE_EXPIRED_ERROR
        task["finished"] = finished
