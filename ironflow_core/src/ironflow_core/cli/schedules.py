"""``ironflow schedules``: each schedule of ironflow.yaml, its next occurrences and its last run.

The configuration is checked exactly as ``ironflow serve`` checks it (flows
loaded too), so the command doubles as a dry run of the start-up checks. The
last run is found through the deterministic run IDs of recent occurrences.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import click

from ironflow_core.cli.shared import global_options, handle_errors, state

NEXT_COUNT = 3
LAST_RUN_LOOKBACK = 64
"""How many past occurrences are checked for the last run."""


async def _last_run(store: Any, schedule: Any, now: datetime) -> dict[str, Any] | None:
    from ironflow_core.errors import RunNotFoundError
    from ironflow_core.schedules.timing import occurrence_run_id, previous_instants, utc_text

    for instant in previous_instants(schedule.cron, schedule.zone, now, LAST_RUN_LOOKBACK):
        run_id = occurrence_run_id(schedule.name, instant)
        try:
            record = await store.get_run(run_id)
        except RunNotFoundError:
            continue
        return {"id": run_id, "scheduled_at": utc_text(instant), "status": str(record.status)}
    return None


def _describe(schedules: Any, store: Any, now: datetime) -> list[dict[str, Any]]:
    import trio

    from ironflow_core.schedules.timing import next_instants, utc_text

    async def collect() -> list[dict[str, Any]]:
        try:
            result = []
            for schedule in schedules:
                result.append({
                    "name": schedule.name,
                    "flow": schedule.flow,
                    "cron": schedule.cron,
                    "timezone": schedule.timezone,
                    "grace_seconds": schedule.grace_seconds,
                    "next": [utc_text(at) for at in
                             next_instants(schedule.cron, schedule.zone, now, NEXT_COUNT)],
                    "last_run": await _last_run(store, schedule, now),
                })
            return result
        finally:
            await store.aclose()

    return trio.run(collect)


def _local(text: str, zone: Any) -> str:
    instant = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@click.option("--store-dir", metavar="DIR", help="JSON store directory (default data/runs).")
@click.option("--flows-dir", metavar="DIR", help="Root the schedules' flows resolve in.")
@global_options
@handle_errors
def schedules(fmt: str, store_dir: str | None, flows_dir: str | None) -> None:
    """List the schedules of ironflow.yaml: next occurrences and last run."""
    from zoneinfo import ZoneInfo

    from ironflow_core.schedules.config import check_flow_loads, parse_schedules
    from ironflow_core.settings import FLOWS_DIR
    from ironflow_core.stores.select import open_store

    st = state()
    config = st.config
    root = flows_dir or FLOWS_DIR.read(os.environ) or config.get("flows_dir")
    declared = parse_schedules(config.get("schedules"), root if isinstance(root, str) else None)
    for schedule in declared:
        check_flow_loads(schedule, st.registry, os.environ)
    store = open_store(st.registry, os.environ, store_dir=store_dir, config=config)
    rows = _describe(declared, store, datetime.now(UTC))
    if fmt == "json":
        click.echo(json.dumps({"schedules": rows}, indent=2))
        return
    if not rows:
        click.echo("No schedules configured.")
        return
    for row in rows:
        zone = ZoneInfo(row["timezone"])
        click.echo(f"{row['name']}  flow {row['flow']}, cron \"{row['cron']}\", "
                   f"{row['timezone']}, grace {row['grace_seconds']}s")
        click.echo("  next:     " + ", ".join(_local(at, zone) for at in row["next"]))
        last = row["last_run"]
        if last is None:
            click.echo(f"  last run: none in the last {LAST_RUN_LOOKBACK} occurrences")
        else:
            click.echo(f"  last run: {last['id']} ({last['status']}) for "
                       f"{_local(last['scheduled_at'], zone)}")
