"""Kill runs with SIGKILL at random moments, resume them until done, count what went wrong.

    uv run python bench/crash.py                       # 100 kills per store (json, redis)
    uv run python bench/crash.py --kills 20 --stores json --seed 7
    uv run python bench/crash.py --store-failures      # also: Redis killed, JSON disk full

A flow of 100 steps (10 parallel phases of ``code``, ``delay`` and shell steps
that append their name to a file) is started with ``ironflow run`` and killed
with SIGKILL at a random moment (seeded); ``ironflow resume RUN_ID`` (in
place) continues it, and may be killed again, until the run succeeds. Each
run takes up to ``--kills-per-run`` kills. Printed per store:

* kills, resumes;
* wrong contexts: final context different from an uninterrupted run's;
* duplicated completions: steps recorded ``success`` before a kill whose
  name is in the append file more than once (a step in flight at a kill may
  legitimately run twice; a recorded completion must not);
* torn files: a store file (JSON store) or record (Redis) that does not parse
  after a kill (temporary files are never read, so they do not count).

The test suite runs a short, seeded version (``tests/e2e/test_crash.py``,
``tests/store_redis/test_redis_crash.py``) of the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LAYERS = 10
WIDTH = 10
LEASE_TTL = "1"
"""Short leases: a resume waits for the killed owner's lease to expire."""


# ------------------------------------------------------------------ the flow
def crash_flow(seed: int = 1, gate_layer: int | None = None) -> str:
    """100 steps in 10 phases; every step depends on the whole previous phase.

    Per phase: 4 ``code`` steps that read the previous phase's and (as a
    snapshot) their own phase's shared key and write the shared key (the
    later-declared one wins), 3 quick shell appends, 1 ``delay``, 2 shell
    appends that sleep first. With ``gate_layer``, the last step of that phase
    appends ``GATE`` and then waits until the file ``$CRASH_GATE`` exists: the
    caller sees the run is mid-run and decides when it goes on, no timing guessed.
    """
    rng = random.Random(seed)
    lines = ['local flow = Flow.new("crash")']
    previous: list[str] = []
    for layer in range(LAYERS):
        names = []
        for j in range(WIDTH):
            name = f"s{layer}_{j}"
            names.append(name)
            if j < 4:
                before = f"ctx.shared_{layer - 1}" if layer else "nil"
                body = (f'function(ctx) return {{ {name} = {layer * 10 + j}, '
                        f'seen_{name} = {before} or "none", '
                        f'peek_{name} = ctx.shared_{layer} or "none", '
                        f'shared_{layer} = "{name}" }} end')
            elif j < 7:
                body = (f'nodes.shell_command({{ cmd = "sh", args = {{ "-c", '
                        f'"echo {name} >> \\"$CRASH_APPEND\\"" }}, output_key = "{name}" }})')
            elif j == 7:
                body = f"nodes.delay({{ seconds = {rng.uniform(0.05, 0.25):.2f} }})"
            elif layer == gate_layer and j == WIDTH - 1:
                body = (f'nodes.shell_command({{ cmd = "sh", args = {{ "-c", '
                        f'"echo GATE >> \\"$CRASH_APPEND\\"; '
                        f'until [ -e \\"$CRASH_GATE\\" ]; do sleep 0.05; done; '
                        f'echo {name} >> \\"$CRASH_APPEND\\"" }}, '
                        f'output_key = "{name}" }})')
            else:
                body = (f'nodes.shell_command({{ cmd = "sh", args = {{ "-c", '
                        f'"sleep 0.1; echo {name} >> \\"$CRASH_APPEND\\"" }}, '
                        f'output_key = "{name}" }})')
            step = f'flow:step("{name}", {body})'
            if previous:
                step += ":depends_on(" + ", ".join(f'"{p}"' for p in previous) + ")"
            lines.append(step)
        previous = names
    lines.append("return flow")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- the stores
@dataclass
class StoreTarget:
    """Where runs go: a JSON store directory, or a Redis URL and prefix."""

    kind: str
    path: Path | None = None
    url: str | None = None
    prefix: str | None = None

    def env(self) -> dict[str, str]:
        if self.kind == "json":
            assert self.path is not None
            return {"IRONFLOW_STORE": "json", "IRONFLOW_STORE_DIR": str(self.path)}
        assert self.url is not None and self.prefix is not None
        return {"IRONFLOW_STORE": "redis", "REDIS_URL": self.url, "REDIS_PREFIX": self.prefix}

    def open(self) -> Any:
        if self.kind == "json":
            from ironflow_core.stores.json_store import JsonStore

            return JsonStore(self.path)  # type: ignore[arg-type]
        from ironflow_store_redis.address import parse_redis_url
        from ironflow_store_redis.store import RedisStore

        return RedisStore(parse_redis_url(self.url), prefix=self.prefix)  # type: ignore[arg-type]

    def run_ids(self) -> list[str]:
        import trio

        async def ids() -> list[str]:
            store = self.open()
            try:
                return [r.id for r in (await store.list_runs(limit=100)).runs]
            finally:
                await store.aclose()

        return trio.run(ids)

    def read(self, run_id: str) -> Any:
        import trio

        async def read() -> Any:
            store = self.open()
            try:
                return await store.get_run(run_id)
            finally:
                await store.aclose()

        return trio.run(read)

    def torn(self) -> list[str]:
        """Store files or records that do not parse (what a crash must never leave)."""
        bad = []
        if self.kind == "json":
            assert self.path is not None
            for path in self.path.rglob("*"):
                if not path.is_file() or path.name.endswith(".tmp") or path.suffix not in (
                    ".json", ".lease"
                ):
                    continue
                try:
                    json.loads(path.read_bytes())
                except ValueError:
                    bad.append(str(path))
        for run_id in self.run_ids():
            try:
                self.read(run_id)
            except Exception as exc:  # a record that cannot be read back is torn
                bad.append(f"{run_id}: {exc}")
        return bad


# -------------------------------------------------------------- processes
def ironflow_command() -> list[str]:
    script = Path(sys.executable).with_name("ironflow")
    return [str(script)] if script.exists() else [shutil.which("ironflow") or "ironflow"]


def process_env(target: StoreTarget, append: Path, extra: dict[str, str] | None = None
                ) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IRONFLOW_", "REDIS_"))}
    env.update(target.env())
    env.update({"IRONFLOW_PROGRESS": "off", "IRONFLOW_LEASE_TTL_SECONDS": LEASE_TTL,
                "IRONFLOW_SHELL_ALLOW": "sh", "CRASH_APPEND": str(append)})
    env.update(extra or {})
    return env


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([*ironflow_command(), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the ironflow process; its shell children are left to die as orphans would."""
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


# --------------------------------------------------------------- campaigns
@dataclass
class Counts:
    runs: int = 0
    kills: int = 0
    resumes: int = 0
    wrong_contexts: int = 0
    duplicated_completions: int = 0
    torn_files: int = 0
    before_origin: int = 0
    """Kills that hit between creating the record and recording its origin."""
    errors: list[str] = field(default_factory=list)

    def add(self, other: Counts) -> None:
        for name in ("runs", "kills", "resumes", "wrong_contexts", "duplicated_completions",
                     "torn_files", "before_origin"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors)


def check_context(ctx: dict[str, Any], expected: dict[str, Any], counts: Counts, tag: str
                  ) -> None:
    if ctx != expected:
        counts.wrong_contexts += 1
        diff = sorted(k for k in set(ctx) | set(expected) if ctx.get(k) != expected.get(k))
        counts.errors.append(f"{tag}: wrong context, keys {diff[:10]}")


def appends(path: Path) -> Counter[str]:
    return Counter(path.read_text().split()) if path.exists() else Counter()


def uninterrupted(flow: Path, target: StoreTarget, work: Path,
                  extra: dict[str, str] | None = None) -> tuple[dict[str, Any], float]:
    """The final context of a run nobody killed (what every crashed run must end with),
    and how long the whole ``ironflow run`` took: kills are spread over that time."""
    began = time.monotonic()
    code, out, err = finish(start(["run", str(flow), "--format", "json"],
                                  process_env(target, work / "expected.append", extra)))
    if code != 0:
        raise RuntimeError(f"the uninterrupted run failed: {err[-2000:]}")
    return json.loads(out)["ctx"], time.monotonic() - began


def crash_run(flow: Path, target: StoreTarget, work: Path, expected: dict[str, Any],
              rng: random.Random, kills: int, tag: str, window: float) -> Counts:
    """One run: kill it ``kills`` times at random moments, resume until it succeeds."""
    counts = Counts(runs=1)
    append = work / f"{tag}.append"
    env = process_env(target, append)
    known = set(target.run_ids())
    run_id: str | None = None
    recorded: dict[str, int] = {}
    """Step recorded ``success`` at a kill -> its appends then; it must never append again."""
    for attempt in range(kills + 50):
        args = ["run", str(flow), "--format", "json"] if run_id is None else \
            ["resume", run_id, "--format", "json"]
        if run_id is not None:
            counts.resumes += 1
        proc = start(args, env)
        if attempt < kills:
            try:
                proc.wait(timeout=rng.uniform(0.3 * window, window))
            except subprocess.TimeoutExpired:
                kill_group(proc)
                counts.kills += 1
                if run_id is None:
                    new = set(target.run_ids()) - known
                    run_id = new.pop() if new else None
                time.sleep(float(LEASE_TTL) + 0.2)  # the dead owner's lease expires
                # (meanwhile the shell children the kill orphaned finish their append)
                torn = target.torn()
                counts.torn_files += len(torn)
                counts.errors.extend(f"torn: {t}" for t in torn)
                if run_id is not None:
                    record = target.read(run_id)
                    if record.status == "success":  # killed after its final write: done
                        check_context(record.ctx, expected, counts, tag)
                        break
                    lines = appends(append)
                    for name, task in record.tasks.items():
                        if task.status == "success":
                            recorded.setdefault(name, lines[name])
                continue
        code, out, err = finish(proc)
        if code == 0:
            check_context(json.loads(out)["ctx"], expected, counts, tag)
            break
        if run_id is not None and "has no stored flow" in err:
            # killed between creating the record and recording its origin (one write
            # apart): nothing ran yet, and the flow file is at hand
            counts.before_origin += 1
            args = ["resume", run_id, "--flow", str(flow), "--format", "json"]
            code, out, err = finish(start(args, env))
            counts.resumes += 1
            if code == 0:
                check_context(json.loads(out)["ctx"], expected, counts, tag)
                break
        if run_id is None:
            new = set(target.run_ids()) - known
            run_id = new.pop() if new else None
        counts.errors.append(f"{tag}: exit {code}: {err.strip()[-300:]}")
        time.sleep(float(LEASE_TTL) + 0.2)
    else:
        counts.errors.append(f"{tag}: never finished")
    lines = appends(append)
    duplicated = sorted(name for name, seen in recorded.items() if lines[name] > seen)
    counts.duplicated_completions += len(duplicated)
    if duplicated:
        counts.errors.append(f"{tag}: recorded completions ran again: {duplicated}")
    return counts


def campaign(target: StoreTarget, work: Path, *, kills: int, per_run: int, seed: int
             ) -> Counts:
    work.mkdir(parents=True, exist_ok=True)
    flow = work / "crash.lua"
    flow.write_text(crash_flow(seed))
    expected, duration = uninterrupted(flow, target, work)
    rng = random.Random(seed)
    total = Counts()
    index = idle = 0
    while total.kills < kills and idle < 3:
        result = crash_run(flow, target, work, expected, rng,
                           min(per_run, kills - total.kills), f"run{index}", duration)
        total.add(result)
        index += 1
        idle = idle + 1 if result.kills == 0 else 0  # runs that end before any kill
    return total


# ---------------------------------------------------------- store failures
def redis_killed_mid_run(redis: RedisProcess, work: Path, seed: int) -> dict[str, Any]:
    """Redis (with an fsync-always AOF) is killed mid-run and restarted; the run resumes.

    The run is held at a gate halfway (``crash_flow(gate_layer=...)``): Redis
    dies while the run certainly still executes, however slow the machine is.
    """
    target = StoreTarget("redis", url=redis.url, prefix=f"crash-rf-{seed}:")
    work.mkdir(parents=True, exist_ok=True)
    flow = work / "crash.lua"
    flow.write_text(crash_flow(seed, gate_layer=LAYERS // 2))
    gate = work / "gate"
    gate.touch()  # the uninterrupted run passes the gate at once
    expected, _duration = uninterrupted(flow, target, work, {"CRASH_GATE": str(gate)})
    gate.unlink()
    append = work / "redis-failure.append"
    env = process_env(target, append, {"CRASH_GATE": str(gate)})
    proc = start(["run", str(flow), "--format", "json"], env)
    deadline = time.monotonic() + 120
    while "GATE" not in appends(append):
        if proc.poll() is not None:
            raise RuntimeError(f"the run ended before the gate: {finish(proc)[2][-2000:]}")
        if time.monotonic() > deadline:
            kill_group(proc)
            raise RuntimeError("the run did not reach the gate within 120 s")
        time.sleep(0.05)
    redis.kill()
    gate.touch()  # the held step finishes and the run's next store call meets no Redis
    code, _out, err = finish(proc)
    redis.start()
    report: dict[str, Any] = {"exit": code, "stderr": err.strip()[-400:],
                              "one_error_line": err.count("Error:") == 1 and
                              "Traceback" not in err}
    run_ids = target.run_ids()
    time.sleep(float(LEASE_TTL) + 0.2)
    code, out, err = finish(start(["resume", run_ids[0], "--format", "json"], env))
    report["resumed_exit"] = code
    report["context_equal"] = code == 0 and json.loads(out)["ctx"] == expected
    return report


def json_disk_full(work: Path, seed: int) -> dict[str, Any]:
    """The JSON store on a small tmpfs that fills up mid-run; freed, the run resumes."""
    mount = work / "tmpfs"
    mount.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True
    ).returncode != 0:
        return {"skipped": "cannot mount a tmpfs here (needs root)"}
    try:
        target = StoreTarget("json", path=mount / "runs")
        flow = work / "crash.lua"
        flow.write_text(crash_flow(seed))
        expected, duration = uninterrupted(flow, StoreTarget("json", path=work / "expected-runs"),
                                           work)
        env = process_env(target, work / "disk-full.append")
        proc = start(["run", str(flow), "--format", "json"], env)
        time.sleep(duration * random.Random(seed).uniform(0.5, 0.8))
        filler = mount / "filler"
        with open(filler, "wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass
        code, _out, err = finish(proc)
        report: dict[str, Any] = {"exit": code, "stderr": err.strip()[-400:],
                                  "one_error_line": "Traceback" not in err and
                                  err.count("Error:") <= 1}
        filler.unlink()
        time.sleep(float(LEASE_TTL) + 0.2)
        run_ids = target.run_ids()
        if code == 0:
            report["note"] = "the run finished before the disk filled"
            report["context_equal"] = True
            return report
        code, out, err = finish(start(["resume", run_ids[0], "--format", "json"], env))
        report["resumed_exit"] = code
        report["context_equal"] = code == 0 and json.loads(out)["ctx"] == expected
        report["torn"] = target.torn()
        return report
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


# ------------------------------------------------------------------- redis
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisProcess:
    """A ``redis-server`` with an fsync-always append-only file, so a kill loses nothing."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


# -------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=100, help="kills per store")
    parser.add_argument("--kills-per-run", type=int, default=5)
    parser.add_argument("--stores", default="json,redis")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--store-failures", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="also write the counts as JSON")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ironflow-crash-") as tmp:
        root = Path(tmp)
        redis = None
        try:
            for kind in args.stores.split(","):
                began = time.monotonic()
                if kind == "json":
                    target = StoreTarget("json", path=root / "json" / "runs")
                else:
                    redis = redis or RedisProcess(root / "redis")
                    if redis.process is None:
                        redis.start()
                    target = StoreTarget("redis", url=redis.url, prefix="crash:")
                counts = campaign(target, root / kind, kills=args.kills,
                                  per_run=args.kills_per_run, seed=args.seed)
                results[kind] = {**asdict(counts), "seconds": round(time.monotonic() - began)}
                print(f"{kind:>6}: runs {counts.runs}, kills {counts.kills}, resumes "
                      f"{counts.resumes}, wrong contexts {counts.wrong_contexts}, duplicated "
                      f"completions {counts.duplicated_completions}, torn files "
                      f"{counts.torn_files} ({results[kind]['seconds']} s)", flush=True)
                for line in counts.errors[:20]:
                    print(f"        {line}")
            if args.store_failures:
                redis = redis or RedisProcess(root / "redis")
                if redis.process is None:
                    redis.start()
                results["redis_killed"] = redis_killed_mid_run(redis, root / "rf", args.seed)
                print(f"redis killed mid-run: {results['redis_killed']}")
                results["json_disk_full"] = json_disk_full(root / "df", args.seed)
                print(f"json disk full: {results['json_disk_full']}")
        finally:
            if redis is not None:
                redis.kill()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
