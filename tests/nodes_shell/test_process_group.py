"""The child's whole process group dies with the step (SH-5, ENG-170, PY-6).

These run real processes on real time: the timeouts are short and the test
waits only until the shell has written its pids.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any

import pytest
import trio

from ironflow_core.configs import structure_config
from ironflow_core.errors import NodeError
from ironflow_nodes_shell.node import ShellCommandConfig, run_shell_command

# The shell records "<its pid = the group id> <background grandchild pid>", then waits.
TREE = 'sleep 100 & echo "$$ $!" > "$PIDFILE"; sleep 100'
TREE_IGNORING_TERM = 'trap "" TERM; sleep 100 & echo "$$ $!" > "$PIDFILE"; sleep 100'


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


async def wait_for_pids(pidfile: Path) -> tuple[int, int]:
    with trio.fail_after(10):
        while True:
            text = pidfile.read_text() if pidfile.exists() else ""
            if text.endswith("\n"):
                leader, grandchild = text.split()
                return int(leader), int(grandchild)
            await trio.sleep(0.01)


async def wait_gone(pgid: int, grandchild: int) -> None:
    # SIGKILL is delivered before the node returns; the kernel may need a moment
    # to finish tearing a killed process down.
    with trio.move_on_after(5):
        while group_members(pgid) or alive(grandchild):
            await trio.sleep(0.01)
    assert group_members(pgid) == []
    assert not alive(grandchild)


def config(script: str, pidfile: Path, **extra: Any) -> ShellCommandConfig:
    return structure_config(
        ShellCommandConfig,
        {"cmd": "sh", "args": ["-c", script], "env": {"PIDFILE": str(pidfile)}, **extra},
    )


@pytest.mark.parametrize("script", [TREE, TREE_IGNORING_TERM], ids=["plain", "ignores-sigterm"])
async def test_sh_5_node_timeout_kills_the_whole_process_group(make_ctx, tmp_path, script):
    pidfile = tmp_path / "pids"
    with pytest.raises(NodeError) as info:
        await run_shell_command(make_ctx(), config(script, pidfile, timeout=1))
    assert str(info.value) == "Command 'sh' timed out after 1s (process terminated)"
    leader, grandchild = await wait_for_pids(pidfile)
    await wait_gone(leader, grandchild)


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


async def test_eng_170_step_deadline_cancellation_kills_the_group(make_ctx, tmp_path):
    """The engine's step ``timeout()`` is a trio deadline around the node call."""
    pidfile = tmp_path / "pids"
    raised: list[BaseException] = []
    with trio.move_on_after(1) as scope:
        try:
            await run_shell_command(make_ctx(), config(TREE_IGNORING_TERM, pidfile))
        except BaseException as exc:
            raised.append(exc)
            raise
    assert scope.cancelled_caught
    # a bare Cancelled, not a nursery's exception group, reaches the engine
    assert [type(exc) for exc in raised] == [trio.Cancelled]
    leader, grandchild = await wait_for_pids(pidfile)
    await wait_gone(leader, grandchild)


async def test_eng_170_run_cancellation_kills_the_group(make_ctx, tmp_path):
    """Cancelling the run's scope from elsewhere, once the tree is up."""
    pidfile = tmp_path / "pids"
    pids: list[tuple[int, int]] = []
    async with trio.open_nursery() as nursery:
        run_scope = trio.CancelScope()

        async def step() -> None:
            with run_scope:
                await run_shell_command(make_ctx(), config(TREE, pidfile))

        async def operator() -> None:
            pids.append(await wait_for_pids(pidfile))
            run_scope.cancel()

        nursery.start_soon(step)
        nursery.start_soon(operator)
    assert run_scope.cancelled_caught
    await wait_gone(*pids[0])


async def test_sh_processes_left_running_after_a_normal_exit_are_not_killed(make_ctx, tmp_path):
    """Like upstream, a child that exits on its own leaves its detached helpers alone."""
    pidfile = tmp_path / "pids"
    out = await run_shell_command(
        make_ctx(),
        config('sleep 30 >/dev/null 2>&1 & echo "$$ $!" > "$PIDFILE"', pidfile),
    )
    assert out["shell_success"] is True
    _, helper = await wait_for_pids(pidfile)
    try:
        assert alive(helper)
    finally:
        os.kill(helper, 9)


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
