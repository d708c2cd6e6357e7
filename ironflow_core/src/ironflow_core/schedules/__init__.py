"""Cron schedules evaluated by ``ironflow serve`` (``schedules:`` in ironflow.yaml).

``config`` checks the declarations at start-up, ``timing`` turns a cron
expression and a zone into instants and run IDs, ``scheduler`` claims and
starts each due occurrence exactly once across every process sharing a store.
"""

from ironflow_core.schedules.config import Schedule, parse_schedules
from ironflow_core.schedules.scheduler import Scheduler
from ironflow_core.schedules.timing import occurrence_run_id

__all__ = ["Schedule", "Scheduler", "occurrence_run_id", "parse_schedules"]
