"""Where a run sits among subworkflows: allowed flow directories, depth, the family's budget.

A root run (CLI, API, webhook, testing kit) and every child run it starts,
at any depth, form a *family*. The family shares:

* the directories child flow files must resolve inside (``flow_roots``):
  the root flow's own directory and the flows directory (``FLOWS_DIR``; the
  server passes its ``flows_dir``). They are fixed when the root run starts,
  so neither a step's output nor a caller's ``_flow_dir`` can widen them; an
  inline flow with no flows directory can load no child at all;
* a count of the child runs started so far (``IRONFLOW_MAX_SUBWORKFLOW_RUNS``).

Each run knows its depth (the root is 0; ``IRONFLOW_MAX_SUBWORKFLOW_DEPTH``).

Concurrency: a child of a root run takes a slot of a process-wide limiter
(``IRONFLOW_MAX_CONCURRENT_SUBWORKFLOWS``) for as long as it runs, and its
own descendants run on that slot. Nothing that holds a subworkflow slot ever
waits for another one, so a parent waiting on its children cannot deadlock
the limiter; root runs hold ``IRONFLOW_MAX_CONCURRENT_WORKFLOWS`` slots,
which children never take.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import attrs
import trio

from ironflow_core.errors import IronflowError
from ironflow_core.settings import FLOWS_DIR, SubworkflowLimits

_slots: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("ironflow_subworkflows")


class SubworkflowLimitError(IronflowError):
    """A child run would pass the depth or run-count limit of its family."""


@attrs.define
class _Family:
    started: int = 0


@attrs.frozen
class Lineage:
    """Where a run sits in its subworkflow tree: allowed flow roots, depth and the shared family counters."""
    flow_roots: tuple[str, ...]
    """Real paths of the directories child flow files must be inside."""
    depth: int = 0
    family: _Family = attrs.field(factory=_Family)

    def admit_child(self, limits: SubworkflowLimits) -> Lineage:
        """The lineage of a new child run; raises when a family limit would be passed."""
        if self.depth + 1 > limits.max_depth:
            raise SubworkflowLimitError(
                f"subworkflow nesting depth limit of {limits.max_depth} reached "
                "(IRONFLOW_MAX_SUBWORKFLOW_DEPTH)"
            )
        if self.family.started >= limits.max_runs:
            raise SubworkflowLimitError(
                f"this run already started {limits.max_runs} subworkflow runs, its limit "
                "(IRONFLOW_MAX_SUBWORKFLOW_RUNS)"
            )
        self.family.started += 1
        return Lineage(self.flow_roots, self.depth + 1, self.family)


def flow_roots(
    source_path: str | None, env: Mapping[str, str], extra: Iterable[str] = ()
) -> tuple[str, ...]:
    """The root run's flow directory, ``FLOWS_DIR`` and ``extra`` (trusted callers), as real paths."""
    dirs: list[str] = []
    if source_path:
        dirs.append(os.path.dirname(os.path.realpath(source_path)))
    flows_dir = FLOWS_DIR.read(env)
    if flows_dir:
        dirs.append(os.path.realpath(flows_dir))
    dirs.extend(os.path.realpath(d) for d in extra)
    return tuple(dict.fromkeys(dirs))


def subworkflow_slots(limits: SubworkflowLimits) -> trio.CapacityLimiter:
    """The limiter shared by every child subtree of the current trio run."""
    try:
        return _slots.get()
    except LookupError:
        limiter = trio.CapacityLimiter(limits.max_concurrent)
        _slots.set(limiter)
        return limiter
