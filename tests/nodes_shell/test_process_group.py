"""Nothing a shell step starts outlives it (SH-5, ENG-170, PY-6).

Every process of a test carries a unique token in its environment, so a scan
of ``/proc`` finds whatever survives, whichever session, group or parent it
moved to (``setsid``, a double fork). These run real processes on real time:
the timeouts are short and the tests wait only until the shell wrote its pids.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio

from ironflow_core.configs import structure_config
from ironflow_core.errors import NodeError
from ironflow_nodes_shell.node import ShellCommandConfig, run_shell_command
from ironflow_nodes_shell.process import SUPERVISED

# Each tree writes "<shell pid> <a descendant's pid>" once everything is up.
TREE = 'sleep 1000 & echo "$$ $!" > "$PIDFILE"; sleep 1000'
TREE_IGNORING_TERM = 'trap "" TERM; sleep 1000 & echo "$$ $!" > "$PIDFILE"; sleep 1000'
# the attack from the issue: a grandchild in its own session
SETSID = 'setsid sleep 1000 & echo "$$ $!" > "$PIDFILE"; sleep 1000'
# a daemon: double fork, new session, its parent gone before the step ends
DAEMON = (
    "(setsid sh -c 'echo \"$PPID $$\" > \"$PIDFILE.d\"; exec sleep 1000' &);"
    ' while [ ! -s "$PIDFILE.d" ]; do sleep 0.01; done;'
    ' echo "$$ $(cut -d" " -f2 "$PIDFILE.d")" > "$PIDFILE"; sleep 1000'
)
TREES = [TREE, TREE_IGNORING_TERM, SETSID, DAEMON]
TREE_IDS = ["plain", "ignores-sigterm", "setsid", "daemon"]

needs_subreaper = pytest.mark.skipif(not SUPERVISED, reason="needs Linux child subreapers")


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] != "Z"


def carrying(token: str) -> list[int]:
    """Live processes whose environment holds ``token``: whatever the step started."""
    needle = f"IRONFLOW_TEST_TOKEN={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


async def wait_for_pids(pidfile: Path) -> tuple[int, int]:
    with trio.fail_after(20):
        while True:
            text = pidfile.read_text() if pidfile.exists() else ""
            if text.endswith("\n"):
                leader, descendant = text.split()
                return int(leader), int(descendant)
            await trio.sleep(0.01)


async def assert_nothing_survives(token: str, *pids: int) -> None:
    # SIGKILL is sent before the node returns; the kernel may need a moment
    # to finish tearing a killed process down.
    with trio.move_on_after(5):
        while carrying(token) or any(alive(pid) for pid in pids):
            await trio.sleep(0.01)
    survivors = carrying(token)
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert survivors == []
    assert [pid for pid in pids if alive(pid)] == []


def config(script: str, pidfile: Path, token: str, **extra: Any) -> ShellCommandConfig:
    env = {"PIDFILE": str(pidfile), "IRONFLOW_TEST_TOKEN": token}
    return structure_config(
        ShellCommandConfig, {"cmd": "sh", "args": ["-c", script], "env": env, **extra}
    )


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex


@needs_subreaper
@pytest.mark.parametrize("script", TREES, ids=TREE_IDS)
async def test_sh_5_node_timeout_kills_every_descendant(make_ctx, tmp_path, token, script):
    pidfile = tmp_path / "pids"
    with pytest.raises(NodeError) as info:
        await run_shell_command(make_ctx(), config(script, pidfile, token, timeout=2))
    assert str(info.value) == "Command 'sh' timed out after 2s (process terminated)"
    await assert_nothing_survives(token, *await wait_for_pids(pidfile))


async def test_sh_5_timeout_wording_keeps_fractional_seconds(make_ctx):
    with pytest.raises(
        NodeError, match=r"^Command 'sleep' timed out after 0\.25s \(process terminated\)$"
    ):
        await run_shell_command(
            make_ctx(),
            structure_config(
                ShellCommandConfig, {"cmd": "sleep", "args": ["5"], "timeout": "0.25"}
            ),
        )


@needs_subreaper
@pytest.mark.parametrize("script", [TREE_IGNORING_TERM, SETSID, DAEMON],
                         ids=["ignores-sigterm", "setsid", "daemon"])
async def test_eng_170_step_deadline_cancellation_kills_every_descendant(
    make_ctx, tmp_path, token, script
):
    """The engine's step ``timeout()`` is a trio deadline around the node call."""
    pidfile = tmp_path / "pids"
    raised: list[BaseException] = []
    pids: list[tuple[int, int]] = []

    async def step() -> None:
        try:
            await run_shell_command(make_ctx(), config(script, pidfile, token))
        except BaseException as exc:
            raised.append(exc)
            raise

    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as deadline:
            nursery.start_soon(step)
            pids.append(await wait_for_pids(pidfile))
            nursery.cancel_scope.cancel()
    assert deadline is not None
    # a bare Cancelled, not a nursery's exception group, reaches the engine
    assert [type(exc) for exc in raised] == [trio.Cancelled]
    await assert_nothing_survives(token, *pids[0])


@needs_subreaper
@pytest.mark.parametrize("script", [TREE, SETSID, DAEMON], ids=["plain", "setsid", "daemon"])
async def test_eng_170_run_cancellation_kills_every_descendant(make_ctx, tmp_path, token, script):
    """Cancelling the run's scope from elsewhere, once the tree is up."""
    pidfile = tmp_path / "pids"
    pids: list[tuple[int, int]] = []
    async with trio.open_nursery() as nursery:
        run_scope = trio.CancelScope()

        async def step() -> None:
            with run_scope:
                await run_shell_command(make_ctx(), config(script, pidfile, token))

        async def operator() -> None:
            pids.append(await wait_for_pids(pidfile))
            run_scope.cancel()

        nursery.start_soon(step)
        nursery.start_soon(operator)
    assert run_scope.cancelled_caught
    await assert_nothing_survives(token, *pids[0])


@needs_subreaper
@pytest.mark.parametrize("script", [
    'sleep 1000 >/dev/null 2>&1 & echo "$$ $!" > "$PIDFILE"',
    'setsid sleep 1000 >/dev/null 2>&1 & echo "$$ $!" > "$PIDFILE"',
    DAEMON.replace("; sleep 1000", ""),
], ids=["background", "setsid", "daemon"])
async def test_sh_5_processes_left_behind_after_a_normal_exit_are_killed(
    make_ctx, tmp_path, token, script
):
    pidfile = tmp_path / "pids"
    out = await run_shell_command(make_ctx(), config(script, pidfile, token))
    assert out["shell_success"] is True
    await assert_nothing_survives(token, *await wait_for_pids(pidfile))


@needs_subreaper
async def test_sh_5_a_leftover_holding_stdout_does_not_stall_the_step(make_ctx, token):
    """Killing leftovers also closes the pipes they held, so the step ends at once."""
    script = "setsid sleep 1000 & printf done"
    with trio.fail_after(15):
        out = await run_shell_command(
            make_ctx(),
            structure_config(ShellCommandConfig, {
                "cmd": "sh", "args": ["-c", script], "env": {"IRONFLOW_TEST_TOKEN": token},
                "timeout": 30,
            }),
        )
    assert out["shell_stdout"] == "done"
    await assert_nothing_survives(token)


@needs_subreaper
def test_sh_5_the_tree_dies_with_the_engine_process(tmp_path):
    """An engine killed with SIGKILL leaves nothing behind either (the lifeline pipe closes)."""
    token = uuid.uuid4().hex
    pidfile = tmp_path / "pids"
    flow = tmp_path / "flow.lua"
    flow.write_text(
        'local flow = Flow.new("orphans")\n'
        'flow:step("s", nodes.shell_command({ cmd = "sh", args = { "-c", [['
        + DAEMON + "]] }, env = { PIDFILE = " + repr(str(pidfile)).replace("'", '"')
        + ', IRONFLOW_TEST_TOKEN = "' + token + '" } }))\n'
        "return flow\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRONFLOW_")}
    env["IRONFLOW_PROGRESS"] = "off"
    engine = subprocess.Popen(
        [str(Path(sys.executable).parent / "ironflow"), "run", str(flow),
         "--store-dir", str(tmp_path / "runs")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        pids = trio.run(wait_for_pids, pidfile)
    finally:
        engine.kill()
        engine.wait()
    trio.run(assert_nothing_survives, token, *pids)


async def test_sh_2_a_100_mb_stream_is_capped_in_bounded_memory(make_ctx):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    out = await run_shell_command(
        make_ctx(env={"IRONFLOW_MAX_SHELL_OUTPUT_BYTES": "1048576"}),
        structure_config(
            ShellCommandConfig,
            {"cmd": "sh", "args": ["-c", "head -c 104857600 /dev/zero; printf done >&2"]},
        ),
    )
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert len(out["shell_stdout"]) == 1_048_576
    assert out["shell_stderr"] == "done"
    assert out["shell_output_truncated"] is True
    assert grown_kib < 32 * 1024
