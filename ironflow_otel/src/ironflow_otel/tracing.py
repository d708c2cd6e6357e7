"""Spans from run observer events: one per run, one per task attempt, child runs nested.

A run's span is the parent of its task-attempt spans; a child run
(subworkflow) is the child of the attempt span of the step that started it,
found through the event's ``parent_run_id``/``parent_step``. Parents are
passed explicitly, never through the ambient context, because trio runs the
steps of a phase in separate tasks. Failures set the span status to ERROR and
are recorded as ``exception`` events; skips and retries are events on the
run's span.

Span attributes: ``ironflow.flow.name``, ``ironflow.run.id``,
``ironflow.run.status``, ``ironflow.step``, ``ironflow.node.type``,
``ironflow.task.attempt``, ``ironflow.task.status``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ironflow_core import Event, ProcessEvent

TRACER_NAME = "ironflow"


class TracingObserver:
    """A ``RunObserver`` turning lifecycle events into OpenTelemetry spans.

    ``tracer_provider`` pins a provider; by default it is resolved when a
    top-level run starts (``provider.resolve_provider``) until one is found.
    """

    def __init__(self, tracer_provider: Any = None, env: Mapping[str, str] | None = None
                 ) -> None:
        self._provider = tracer_provider
        self._env = env
        self._tracer: Any = None
        self._runs: dict[str, Any] = {}
        self._flows: dict[str, str] = {}
        self._attempts: dict[tuple[str, str], Any] = {}

    # -------------------------------------------------------------- setup
    def _ensure_tracer(self) -> Any:
        if self._tracer is None:
            provider = self._provider
            if provider is None:
                from ironflow_otel.provider import resolve_provider

                provider = resolve_provider(os.environ if self._env is None else self._env)
            if provider is not None:
                from ironflow_otel import __version__

                self._tracer = provider.get_tracer(TRACER_NAME, __version__)
        return self._tracer

    # ------------------------------------------------------------- events
    def on_event(self, event: Event | ProcessEvent) -> None:
        """``RunObserver``: run and step events open and close spans; the rest are ignored."""
        handler = _SPAN_EVENTS.get(event.type)
        if handler is not None and isinstance(event, Event):
            handler(self, event)

    # --------------------------------------------------------------- runs
    def run_started(self, event: Event) -> None:
        """Open the run's span, as a child of the calling step's attempt for a subflow."""
        parent = None
        if event.parent_run_id is not None:
            parent = (self._attempts.get((event.parent_run_id, event.parent_step or ""))
                      or self._runs.get(event.parent_run_id))
            if parent is None:
                return  # the parent run is not traced
            tracer = self._tracer
        else:
            tracer = self._ensure_tracer()
        if tracer is None:
            return
        from opentelemetry import trace

        flow = event.flow_name or ""
        span = tracer.start_span(
            f"run {flow}",
            context=trace.set_span_in_context(parent) if parent is not None else None,
            attributes={"ironflow.flow.name": flow, "ironflow.run.id": event.run_id},
        )
        self._runs[event.run_id] = span
        self._flows[event.run_id] = flow

    def run_finished(self, event: Event) -> None:
        """Close the run's span with its status, and any attempt span the run ended mid-way."""
        span = self._runs.pop(event.run_id, None)
        flow = self._flows.pop(event.run_id, "")
        if span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        for key in [k for k in self._attempts if k[0] == event.run_id]:
            attempt = self._attempts.pop(key)
            attempt.set_attribute("ironflow.task.status", "stopped")
            attempt.set_status(Status(StatusCode.ERROR, "the run ended during this attempt"))
            attempt.end()
        status = event.run_status or ""
        span.set_attribute("ironflow.run.status", status)
        if status == "success":
            span.set_status(Status(StatusCode.OK))
        else:
            span.set_status(Status(StatusCode.ERROR,
                                   event.reason or f"run of '{flow}' finished {status}"))
        span.end()

    # -------------------------------------------------------------- tasks
    def task_started(self, event: Event) -> None:
        """Open a span for this attempt under the run's span."""
        run = self._runs.get(event.run_id)
        if run is None or self._tracer is None:
            return
        from opentelemetry import trace

        step = event.step or ""
        span = self._tracer.start_span(
            f"task {step}",
            context=trace.set_span_in_context(run),
            attributes={
                "ironflow.flow.name": self._flows.get(event.run_id, ""),
                "ironflow.run.id": event.run_id,
                "ironflow.step": step,
                "ironflow.node.type": event.node_type or "",
                "ironflow.task.attempt": event.attempt or 1,
            },
        )
        self._attempts[(event.run_id, step)] = span

    def task_succeeded(self, event: Event) -> None:
        """Close the attempt's span as OK."""
        span = self._attempts.pop((event.run_id, event.step or ""), None)
        if span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("ironflow.task.status", "success")
        span.set_status(Status(StatusCode.OK))
        span.end()

    def task_failed(self, event: Event) -> None:
        """Close the attempt's span as an error (failed or timed out)."""
        status = "timed_out" if event.reason == "timed_out" else "failed"
        self._end_failed(event, status, event.error or "task failed")

    def task_cancelled(self, event: Event) -> None:
        """Close the attempt's span as an error marked cancelled."""
        self._end_failed(event, "cancelled", event.error or "task cancelled")

    def _end_failed(self, event: Event, status: str, message: str) -> None:
        span = self._attempts.pop((event.run_id, event.step or ""), None)
        if span is None:  # no attempt open (a deadline hit during backoff): note it on the run
            run = self._runs.get(event.run_id)
            if run is not None:
                run.add_event(f"task {status}", {"ironflow.step": event.step or "",
                                                 "exception.message": message})
            return
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("ironflow.task.status", status)
        span.add_event("exception", {"exception.type": status, "exception.message": message})
        span.set_status(Status(StatusCode.ERROR, message))
        span.end()

    def task_skipped(self, event: Event) -> None:
        """Note the skip, with its reason, on the run's span (a skipped step has no attempt)."""
        run = self._runs.get(event.run_id)
        if run is not None:
            run.add_event("task skipped", {"ironflow.step": event.step or "",
                                           "ironflow.skip.reason": event.reason or ""})

    def task_retrying(self, event: Event) -> None:
        """Note the coming retry on the run's span; the next attempt opens its own span."""
        run = self._runs.get(event.run_id)
        if run is not None:
            run.add_event("task retrying", {"ironflow.step": event.step or "",
                                            "ironflow.task.attempt": event.attempt or 0})

    # ------------------------------------------------------ propagation
    def outgoing_headers(self, ctx: Any, url: str) -> dict[str, str] | None:
        """The step's trace context (``traceparent``, per ``OTEL_PROPAGATORS``) for a request."""
        span = self._attempts.get((ctx.run_id, ctx.step_name))
        if span is None:
            return None
        from opentelemetry import propagate, trace

        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return carrier


_SPAN_EVENTS = {
    "run_started": TracingObserver.run_started,
    "run_finished": TracingObserver.run_finished,
    "task_started": TracingObserver.task_started,
    "task_succeeded": TracingObserver.task_succeeded,
    "task_failed": TracingObserver.task_failed,
    "task_cancelled": TracingObserver.task_cancelled,
    "task_skipped": TracingObserver.task_skipped,
    "task_retrying": TracingObserver.task_retrying,
}
"""Event type -> the method that turns it into span work."""
