"""From a cron expression and a time zone to instants, and from an instant to a run ID.

Cron is evaluated on local wall-clock time by ``cronsim``: on a spring-forward
day a time that does not exist fires at the next valid time (``0 2 * * *`` in
Europe/Berlin fires at 03:00); on a fall-back day a time that occurs twice
fires once, on the earlier instant. Instants leave this module in UTC.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

_ONE_MINUTE = timedelta(minutes=1)
MAX_DROPPED_COUNTED = 10_000
SCHEDULE_NAMESPACE = uuid.UUID("5b0d7c1e-2f44-5c55-9a0e-6f6c6f776972")
"""uuid5 namespace of scheduled run IDs; changing it would re-fire claimed occurrences."""


class CronError(ValueError):
    """A cron expression that is not five valid fields."""


def check_cron(expression: str) -> None:
    """Five fields (minute hour day month weekday), parsed by cronsim."""
    fields = expression.split()
    if len(fields) != 5:
        raise CronError(
            f"expected five fields (minute hour day month weekday), got {len(fields)}"
        )
    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise CronError(str(exc)) from None


def _walk(expression: str, zone: ZoneInfo, start: datetime, *, reverse: bool
          ) -> Iterator[datetime]:
    local = start.astimezone(zone)
    for instant in CronSim(expression, local, reverse=reverse):
        yield instant.astimezone(UTC)


def instants_between(expression: str, zone: ZoneInfo, after: datetime, until: datetime,
                     *, limit: int) -> tuple[list[datetime], int]:
    """Instants in ``(after, until]``, oldest first: at most the newest ``limit``.

    Returns (instants, how many older ones were dropped beyond ``limit``).
    """
    newest_first: list[datetime] = []
    dropped = 0
    # cronsim steps from a minute boundary; start just past ``until`` so it is included
    for instant in _walk(expression, zone, until.replace(second=0, microsecond=0)
                         + _ONE_MINUTE, reverse=True):
        if instant > until:
            continue
        if instant <= after:
            break
        if len(newest_first) < limit:
            newest_first.append(instant)
        else:
            dropped += 1
            if dropped >= MAX_DROPPED_COUNTED:  # a bound on the walk, not a promise
                break
    newest_first.reverse()
    return newest_first, dropped


def next_instants(expression: str, zone: ZoneInfo, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` instants strictly after ``now``."""
    result = []
    for instant in _walk(expression, zone, now, reverse=False):
        if instant <= now:
            continue
        result.append(instant)
        if len(result) >= count:
            break
    return result


def previous_instants(expression: str, zone: ZoneInfo, now: datetime, count: int
                      ) -> list[datetime]:
    """Up to ``count`` instants at or before ``now``, newest first."""
    result = []
    for instant in _walk(expression, zone, now.replace(second=0, microsecond=0) + _ONE_MINUTE,
                         reverse=True):
        if instant > now:
            continue
        result.append(instant)
        if len(result) >= count:
            break
    return result


def occurrence_run_id(schedule_name: str, instant: datetime) -> str:
    """The run ID of one occurrence: the same in every process, so one claim wins."""
    stamp = instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(uuid.uuid5(SCHEDULE_NAMESPACE, f"{schedule_name}\n{stamp}"))


def utc_text(instant: datetime) -> str:
    """An instant as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

