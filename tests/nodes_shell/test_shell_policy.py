"""Operator policy IRONFLOW_SHELL_ALLOW (beyond upstream; unset = every program)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from ironflow_core.configs import structure_config
from ironflow_core.errors import NodeError
from ironflow_nodes_shell.node import ShellCommandConfig, run_shell_command


async def run(ctx: Any, **config: Any) -> dict[str, Any]:
    return await run_shell_command(ctx, structure_config(ShellCommandConfig, config))


def refused(cmd: str) -> str:
    return f"shell_command: program '{cmd}' is not allowed by IRONFLOW_SHELL_ALLOW"


async def test_policy_unset_allows_every_program(make_ctx):
    out = await run(make_ctx(), cmd="sh", args=["-c", "printf ok"])
    assert out["shell_stdout"] == "ok"


async def test_policy_allows_listed_names_and_refuses_others(make_ctx):
    ctx = make_ctx(env={"IRONFLOW_SHELL_ALLOW": " echo , printf"})
    assert (await run(ctx, cmd="echo", args=["hi"]))["shell_stdout"] == "hi\n"
    with pytest.raises(NodeError) as info:
        await run(ctx, cmd="sh", args=["-c", "echo escaped"])
    assert str(info.value) == refused("sh")


async def test_policy_name_entry_never_admits_a_path(make_ctx, tmp_path):
    fake = tmp_path / "echo"
    fake.write_text("#!/bin/sh\necho fake\n")
    fake.chmod(0o755)
    ctx = make_ctx(env={"IRONFLOW_SHELL_ALLOW": "echo"})
    for cmd in (str(fake), "./echo"):
        with pytest.raises(NodeError) as info:
            await run(ctx, cmd=cmd, cwd=str(tmp_path))
        assert str(info.value) == refused(cmd)


async def test_policy_absolute_entry_admits_that_file_by_path_or_by_name(make_ctx, tmp_path):
    real_echo = shutil.which("echo")
    assert real_echo is not None
    ctx = make_ctx(env={"IRONFLOW_SHELL_ALLOW": real_echo})
    assert (await run(ctx, cmd=real_echo, args=["a"]))["shell_stdout"] == "a\n"
    # a bare name admitted by an absolute entry runs exactly that file
    assert (await run(ctx, cmd="echo", args=["b"]))["shell_stdout"] == "b\n"
    with pytest.raises(NodeError, match="IRONFLOW_SHELL_ALLOW"):
        await run(ctx, cmd="printf", args=["c"])


async def test_policy_resolves_a_bare_name_with_the_operators_path(make_ctx, tmp_path):
    """The flow's ``cwd`` cannot plant another ``echo`` through a relative PATH entry."""
    fake = tmp_path / "echo"
    fake.write_text("#!/bin/sh\nprintf fake\n")
    fake.chmod(0o755)
    ctx = make_ctx(env={"IRONFLOW_SHELL_ALLOW": "echo", "PATH": f".{os.pathsep}/usr/bin:/bin"})
    out = await run(ctx, cmd="echo", args=["real"], cwd=str(tmp_path))
    assert out["shell_stdout"] == "real\n"


async def test_policy_name_missing_from_the_operators_path_is_a_spawn_error(make_ctx, tmp_path):
    ctx = make_ctx(env={"IRONFLOW_SHELL_ALLOW": "no-such-tool", "PATH": str(tmp_path)})
    with pytest.raises(NodeError) as info:
        await run(ctx, cmd="no-such-tool")
    assert str(info.value) == "No such file or directory (os error 2)"


async def test_policy_relative_path_is_resolved_against_cwd(make_ctx, tmp_path):
    script = tmp_path / "tool.sh"
    script.write_text("#!/bin/sh\nprintf tool\n")
    script.chmod(0o755)
    ctx = make_ctx(env={"IRONFLOW_SHELL_ALLOW": str(script)})
    out = await run(ctx, cmd="./tool.sh", cwd=str(tmp_path))
    assert out["shell_stdout"] == "tool"


async def test_policy_set_but_empty_refuses_everything(make_ctx):
    with pytest.raises(NodeError) as info:
        await run(make_ctx(env={"IRONFLOW_SHELL_ALLOW": ""}), cmd="true")
    assert str(info.value) == refused("true")


async def test_policy_applies_to_the_interpolated_program(make_ctx):
    ctx = make_ctx({"tool": "sh"}, env={"IRONFLOW_SHELL_ALLOW": "echo"})
    with pytest.raises(NodeError) as info:
        await run(ctx, cmd="${ctx.tool}", args=["-c", "true"])
    assert str(info.value) == refused("sh")


async def test_policy_refusal_happens_before_anything_runs(make_ctx, tmp_path):
    marker = tmp_path / "ran"
    ctx = make_ctx(env={"IRONFLOW_SHELL_ALLOW": "echo"})
    with pytest.raises(NodeError):
        await run(ctx, cmd="touch", args=[str(marker)])
    assert not Path(marker).exists()
