"""shell_command parameters, outputs and failures (semantics.md#shell-command, INT-12, ENG-82)."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from ironflow_core.configs import structure_config
from ironflow_core.errors import NodeError, NodeFailure
from ironflow_core.testing import assert_plugin_installed
from ironflow_nodes_shell.node import ShellCommandConfig, run_shell_command


async def run(ctx: Any, **config: Any) -> dict[str, Any]:
    return await run_shell_command(ctx, structure_config(ShellCommandConfig, config))


async def test_sh_1_echo_with_args(make_ctx):
    out = await run(make_ctx(), cmd="echo", args=["hello", "world"])
    assert out == {
        "shell_stdout": "hello world\n",
        "shell_stderr": "",
        "shell_code": 0,
        "shell_success": True,
    }


async def test_sh_1_cmd_is_not_parsed_by_a_shell(make_ctx):
    with pytest.raises(NodeError) as info:
        await run(make_ctx(), cmd="echo hi")
    assert str(info.value) == "No such file or directory (os error 2)"
    assert not isinstance(info.value, NodeFailure)


async def test_sh_1_arguments_are_not_globbed(make_ctx, tmp_path):
    (tmp_path / "a.txt").write_text("x")
    out = await run(make_ctx(), cmd="echo", args=["*.txt", "$HOME"], cwd=str(tmp_path))
    assert out["shell_stdout"] == "*.txt $HOME\n"


async def test_sh_env_vars_are_added_to_the_inherited_environment(make_ctx):
    out = await run(
        make_ctx(env={"IRONFLOW_TEST_INHERITED": "from-run"}),
        cmd="sh",
        args=["-c", 'printf "%s %s" "$GREETING" "$IRONFLOW_TEST_INHERITED"'],
        env={"GREETING": "hello"},
    )
    assert out["shell_stdout"] == "hello from-run"


async def test_sh_cwd_sets_the_working_directory(make_ctx, tmp_path):
    out = await run(make_ctx(), cmd="pwd", cwd=str(tmp_path))
    assert out["shell_stdout"] == f"{os.path.realpath(tmp_path)}\n"


async def test_int_12_cmd_args_cwd_env_are_interpolated(make_ctx, tmp_path):
    ctx = make_ctx(
        {
            "tool": {"name": "sh"},
            "words": ["first", {"w": "second"}],
            "dirs": {"work": str(tmp_path)},
            "who": "Alice",
        }
    )
    out = await run(
        ctx,
        cmd="${ctx.tool.name}",
        args=[
            "-c",
            'printf "%s|%s|%s|%s" "$1" "$2" "$WHO" "$(pwd)"',
            "x",
            "${ctx.words[0]}",
            '${ctx.words[1]["w"]}',
        ],
        cwd="${ctx.dirs.work}",
        env={"WHO": "user=${ctx.who}"},
    )
    assert out["shell_stdout"] == f"first|second|user=Alice|{os.path.realpath(tmp_path)}"


async def test_int_2_foreign_placeholders_reach_the_shell_untouched(make_ctx):
    out = await run(
        make_ctx(),
        cmd="sh",
        args=["-c", 'printf "%s" "${IRONFLOW_TEST_UNSET_VAR:-/tmp}"'],
    )
    assert out["shell_stdout"] == "/tmp"


async def test_int_12_output_key_is_not_interpolated(make_ctx):
    out = await run(make_ctx({"k": "x"}), cmd="true", output_key="${ctx.k}")
    assert out["${ctx.k}_success"] is True


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "shell_command requires 'cmd' parameter"),
        ({"cmd": 5}, "shell_command requires 'cmd' parameter"),
        ({"cmd": "true", "args": "-l"}, "shell_command expects 'args' to be an array"),
        (
            {"cmd": "true", "args": ["ok", 1]},
            "shell_command expects every 'args' entry to be a string",
        ),
        ({"cmd": "true", "cwd": 7}, "shell_command expects 'cwd' to be a string"),
        ({"cmd": "true", "env": ["A=b"]}, "shell_command expects 'env' to be an object"),
        (
            {"cmd": "true", "env": {"A": 1}},
            "shell_command expects every 'env' value to be a string",
        ),
        ({"cmd": "true", "timeout": "soon"}, "'timeout' must be a finite number"),
        ({"cmd": "true", "timeout": 0}, "shell_command timeout must be greater than zero seconds"),
        ({"cmd": "true", "fail_on_nonzero": "sometimes"}, "'fail_on_nonzero' must be a boolean"),
    ],
)
async def test_node_4_invalid_parameters_are_rejected(make_ctx, config, message):
    with pytest.raises(NodeError) as info:
        await run(make_ctx(), **config)
    assert str(info.value) == message


async def test_sh_6_nonzero_exit_is_a_structured_failure(make_ctx):
    with pytest.raises(NodeFailure) as info:
        await run(
            make_ctx(),
            cmd="sh",
            args=["-c", "printf completed; printf rejected >&2; exit 7"],
            output_key="command",
        )
    assert str(info.value) == "Command 'sh' exited with code 7"
    assert "rejected" not in str(info.value)
    assert info.value.output == {
        "command_stdout": "completed",
        "command_stderr": "rejected",
        "command_code": 7,
        "command_success": False,
    }


async def test_sh_6_false_fails_with_exit_code(make_ctx):
    with pytest.raises(NodeFailure, match="exited with code 1"):
        await run(make_ctx(), cmd="false")


async def test_sh_4_fail_on_nonzero_false_succeeds_with_outputs(make_ctx):
    out = await run(
        make_ctx({"strict": False}),
        cmd="sh",
        args=["-c", "printf inspectable >&2; exit 9"],
        fail_on_nonzero="${ctx.strict}",
    )
    assert out == {
        "shell_stdout": "",
        "shell_stderr": "inspectable",
        "shell_code": 9,
        "shell_success": False,
    }


async def test_sh_5_spawn_failure_is_a_plain_error_even_without_fail_on_nonzero(make_ctx, tmp_path):
    with pytest.raises(NodeError) as info:
        await run(make_ctx(), cmd="/ironflow/does/not/exist", fail_on_nonzero=False)
    assert not isinstance(info.value, NodeFailure)
    assert "No such file or directory" in str(info.value)
    with pytest.raises(NodeError, match="No such file or directory") as info:
        await run(make_ctx(), cmd="true", cwd=str(tmp_path / "missing"))
    assert not isinstance(info.value, NodeFailure)


async def test_sh_3_killed_by_signal_reports_code_minus_one(make_ctx):
    with pytest.raises(NodeFailure) as info:
        await run(make_ctx(), cmd="sh", args=["-c", "kill -9 $$"])
    assert str(info.value) == "Command 'sh' exited with code -1"
    assert info.value.output["shell_code"] == -1
    assert info.value.output["shell_success"] is False


async def test_sh_2_output_is_decoded_lossily_and_not_trimmed(make_ctx):
    out = await run(make_ctx(), cmd="printf", args=["ok\\377\\n\\n"])
    assert out["shell_stdout"] == "ok\ufffd\n\n"


async def test_sh_2_streams_are_capped_separately(make_ctx):
    out = await run(
        make_ctx(env={"IRONFLOW_MAX_SHELL_OUTPUT_BYTES": "5"}),
        cmd="sh",
        args=["-c", "printf 0123456789; printf abc >&2"],
    )
    assert out["shell_stdout"] == "01234"
    assert out["shell_stderr"] == "abc"
    assert out["shell_output_truncated"] is True
    assert out["shell_success"] is True


async def test_sh_3_truncated_key_absent_at_exactly_the_cap(make_ctx):
    out = await run(
        make_ctx(env={"IRONFLOW_MAX_SHELL_OUTPUT_BYTES": "5"}), cmd="printf", args=["01234"]
    )
    assert out["shell_stdout"] == "01234"
    assert "shell_output_truncated" not in out


async def test_sh_2_invalid_cap_means_default(make_ctx):
    out = await run(
        make_ctx(env={"IRONFLOW_MAX_SHELL_OUTPUT_BYTES": "zero"}), cmd="printf", args=["abc"]
    )
    assert out["shell_stdout"] == "abc"


async def test_sh_truncated_output_travels_with_the_structured_failure(make_ctx):
    with pytest.raises(NodeFailure) as info:
        await run(
            make_ctx(env={"IRONFLOW_MAX_SHELL_OUTPUT_BYTES": "3"}),
            cmd="sh",
            args=["-c", "printf abcdef; exit 2"],
        )
    assert info.value.output["shell_stdout"] == "abc"
    assert info.value.output["shell_output_truncated"] is True


async def test_sh_child_stdin_is_not_inherited(make_ctx):
    out = await run(make_ctx(), cmd="cat", timeout=5)
    assert out["shell_stdout"] == ""
    assert out["shell_success"] is True


async def test_plugin_registers_shell_command_through_its_entry_point(registry):
    assert_plugin_installed("nodes-shell", nodes=["shell_command"])
    spec = registry.node("shell_command")
    assert spec is not None
    assert spec.run is run_shell_command
    assert registry.node_providers["shell_command"] == "nodes-shell"
    assert spec.summary == "Execute a shell command and capture output"
    assert shutil.which("sh")
