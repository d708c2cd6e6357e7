"""Operator metrics for ``GET /metrics`` (OpenMetrics text), built on the run observer hook.

``MetricsObserver`` is registered like any plugin's observer (see
``metrics_plugin``), so it sees exactly the events every other plugin sees:
run and task lifecycle events plus the process events (admission, schedules,
leases, store failures). Labels come only from fixed vocabularies: never a
run ID, flow or schedule name, step, URL or context value. Every series
exists from start-up, so no activity reads as zero rather than as absent.
Child runs (``parent_run_id`` set) belong to their parent step and are not
counted as runs of this process.

``prometheus_client`` is imported only when metrics are enabled, and its
collectors live in a registry of our own, never the library's global one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ironflow_core.hookspecs import hookimpl
from ironflow_core.model import Event, ProcessEvent
from ironflow_core.stores.observed import ERROR_KINDS, OPERATIONS

CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
           120.0, 300.0)
"""Seconds, from 5 ms to 5 minutes."""

RUN_OUTCOMES = ("success", "failed", "cancelled", "stalled")
TASK_OUTCOMES = ("success", "failed", "timed_out", "aborted")
WORK_KINDS = ("run", "task", "flow_load")
ADMISSION_RESOURCES = ("run", "flow_load")
ADMISSION_DECISIONS = ("accepted", "at_capacity", "draining")
SCHEDULER_OUTCOMES = ("fired", "not_claimed", "late", "overlapped", "at_capacity", "failed",
                      "claim_failed", "timed_out")
LEASE_OUTCOMES = ("renewed", "lost", "timed_out", "error", "reconciliation_failed")
STORES = ("state",)


class MetricsObserver:
    """Turns observer events into Prometheus series in its own ``CollectorRegistry``."""

    def __init__(self) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            disable_created_metrics,
        )

        disable_created_metrics()  # no ``*_created`` series: one timestamp per series is noise
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter("ironflow_runs", "Terminal runs executed by this process",
                            ["outcome"], registry=r)
        self.run_duration = Histogram(
            "ironflow_run_duration_seconds", "Time from run start through its final status",
            ["outcome"], buckets=BUCKETS, registry=r)
        self.attempts = Counter("ironflow_task_attempts", "Task attempts, retries included",
                                ["outcome"], registry=r)
        self.attempt_duration = Histogram(
            "ironflow_task_attempt_duration_seconds", "Duration of one task attempt",
            ["outcome"], buckets=BUCKETS, registry=r)
        self.active = Gauge("ironflow_active_work", "Work currently owned by this process",
                            ["kind"], registry=r)
        self.admission = Counter("ironflow_admission_decisions",
                                 "Run and flow-load admission results",
                                 ["resource", "decision"], registry=r)
        self.scheduler = Counter("ironflow_scheduler_decisions",
                                 "Final decision for each due schedule occurrence",
                                 ["outcome"], registry=r)
        self.leases = Counter("ironflow_lease_events", "Run-owner lease events",
                              ["outcome"], registry=r)
        self.storage = Counter("ironflow_storage_failures", "Errors raised by store operations",
                               ["store", "operation", "error_kind"], registry=r)
        for outcome in RUN_OUTCOMES:
            self.runs.labels(outcome)
            self.run_duration.labels(outcome)
        for outcome in TASK_OUTCOMES:
            self.attempts.labels(outcome)
            self.attempt_duration.labels(outcome)
        for kind in WORK_KINDS:
            self.active.labels(kind)
        for resource in ADMISSION_RESOURCES:
            for decision in ADMISSION_DECISIONS:
                self.admission.labels(resource, decision)
        for outcome in SCHEDULER_OUTCOMES:
            self.scheduler.labels(outcome)
        for outcome in LEASE_OUTCOMES:
            self.leases.labels(outcome)
        for store in STORES:
            for operation in OPERATIONS:
                for kind in ERROR_KINDS:
                    self.storage.labels(store, operation, kind)
        self._runs_started: dict[str, float] = {}
        self._attempts_started: dict[tuple[str, str], float] = {}
        self._queue_gauges: dict[str, Any] | None = None
        self._handlers: dict[str, Callable[[Any], None]] = {
            "run_started": self._run_started, "run_finished": self._run_finished,
            "task_started": self._task_started, "task_succeeded": self._task_succeeded,
            "task_failed": self._task_failed, "task_cancelled": self._task_cancelled,
            "admission_decided": self._admission_decided,
            "admission_released": self._admission_released,
            "schedule_decided": self._schedule_decided, "lease_changed": self._lease_changed,
            "store_failed": self._store_failed,
        }

    def on_event(self, event: Event | ProcessEvent) -> None:
        """``RunObserver``: count the events that feed a series, ignore the rest."""
        handler = self._handlers.get(event.type)
        if handler is not None:
            handler(event)

    # ------------------------------------------------------------- runs
    def _run_started(self, event: Event) -> None:
        if event.parent_run_id is not None:
            return
        self._runs_started[event.run_id] = time.monotonic()
        self.active.labels("run").inc()

    def _run_finished(self, event: Event) -> None:
        if event.parent_run_id is not None:
            return
        for key in [k for k in self._attempts_started if k[0] == event.run_id]:
            self._end_attempt(key, "aborted")
        began = self._runs_started.pop(event.run_id, None)
        if began is None:
            return  # a run that never started executing (it was not ours)
        outcome = event.run_status if event.run_status in RUN_OUTCOMES else "failed"
        self.runs.labels(outcome).inc()
        self.run_duration.labels(outcome).observe(time.monotonic() - began)
        self.active.labels("run").dec()

    # ------------------------------------------------------------ tasks
    def _task_started(self, event: Event) -> None:
        if event.parent_run_id is not None or event.step is None:
            return
        self._attempts_started[(event.run_id, event.step)] = time.monotonic()
        self.active.labels("task").inc()

    def _task_succeeded(self, event: Event) -> None:
        self._end(event, "success")

    def _task_failed(self, event: Event) -> None:
        self._end(event, "timed_out" if event.reason == "timed_out" else "failed")

    def _task_cancelled(self, event: Event) -> None:
        self._end(event, "aborted")

    def _end(self, event: Event, outcome: str) -> None:
        if event.parent_run_id is not None or event.step is None:
            return
        self._end_attempt((event.run_id, event.step), outcome)

    def _end_attempt(self, key: tuple[str, str], outcome: str) -> None:
        began = self._attempts_started.pop(key, None)
        if began is None:
            return  # e.g. the failure after a backoff deadline: no attempt was open
        self.attempts.labels(outcome).inc()
        self.attempt_duration.labels(outcome).observe(time.monotonic() - began)
        self.active.labels("task").dec()

    # ---------------------------------------------------- process events
    def _admission_decided(self, event: ProcessEvent) -> None:
        if event.resource in ADMISSION_RESOURCES and event.outcome in ADMISSION_DECISIONS:
            self.admission.labels(event.resource, event.outcome).inc()
            if event.outcome == "accepted" and event.resource == "flow_load":
                self.active.labels("flow_load").inc()

    def _admission_released(self, event: ProcessEvent) -> None:
        if event.resource == "flow_load":
            self.active.labels("flow_load").dec()

    def _schedule_decided(self, event: ProcessEvent) -> None:
        if event.outcome in SCHEDULER_OUTCOMES:
            self.scheduler.labels(event.outcome).inc()

    def _lease_changed(self, event: ProcessEvent) -> None:
        if event.outcome in LEASE_OUTCOMES:
            self.leases.labels(event.outcome).inc()

    def _store_failed(self, event: ProcessEvent) -> None:
        if (event.store in STORES and event.operation in OPERATIONS
                and event.outcome in ERROR_KINDS):
            self.storage.labels(event.store, event.operation, event.outcome).inc()

    # ------------------------------------------------------------ queue
    def observe_queue(self, status: Any) -> None:
        """Queue depth, pending runs, dead letters and live workers of a shared run queue.

        ``status`` is a ``QueueStatus``; the series exist only once a queue is
        configured (``ironflow serve`` reads the status at each scrape).
        """
        if self._queue_gauges is None:
            from prometheus_client import Gauge

            r = self.registry
            self._queue_gauges = {
                "depth": Gauge("ironflow_queue_depth", "Runs queued and not yet claimed",
                               registry=r),
                "pending": Gauge("ironflow_queue_pending",
                                 "Runs claimed by a worker and not yet acknowledged", registry=r),
                "dead": Gauge("ironflow_queue_dead_letters", "Runs in the dead-letter stream",
                              registry=r),
                "workers": Gauge("ironflow_workers", "Workers with a live heartbeat",
                                 registry=r),
            }
        gauges = self._queue_gauges
        gauges["depth"].set(status.depth)
        gauges["pending"].set(status.pending)
        gauges["dead"].set(status.dead)
        gauges["workers"].set(len(status.workers))

    # ------------------------------------------------------------ output
    def exposition(self) -> bytes:
        """The OpenMetrics text of every series (no I/O, bounded by the fixed series set)."""
        from prometheus_client.openmetrics.exposition import generate_latest

        return generate_latest(self.registry)


class MetricsPlugin:
    """The plugin ``ironflow serve`` registers when metrics are enabled."""

    def __init__(self, observer: MetricsObserver) -> None:
        self.observer = observer

    @hookimpl
    def ironflow_register_observers(self) -> list[Any]:
        """The metrics observer, registered like any plugin's."""
        return [self.observer]


METRICS_PLUGIN_NAME = "core.metrics"
