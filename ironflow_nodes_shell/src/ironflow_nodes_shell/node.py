"""The ``shell_command`` node: parameters in, one process, outputs out (semantics.md#shell-command).

Parameter checks keep upstream's exact wording, which is why the config class
takes every field as ``Any`` and the types are checked here at run time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from ironflow_core import (
    BoolParam,
    JsonValue,
    NodeContext,
    NodeError,
    NodeFailure,
    NumberParam,
    child_process_env,
    format_seconds,
    lenient,
    lenient_positive_int,
    strict_bool,
    strict_float,
)
from ironflow_nodes_shell.policy import (
    ShellAllowList,
    check_flow_env,
    operator_path,
    resolve_allowed_program,
)
from ironflow_nodes_shell.process import run_contained

SUMMARY = "Execute a shell command and capture output"
DEFAULT_MAX_OUTPUT = 10_485_760


@attrs.frozen
class ShellCommandConfig:
    """``shell_command``'s parameters, as the flow's table gives them."""

    cmd: str | None = lenient()
    args: JsonValue = None
    cwd: JsonValue = None
    env: JsonValue = None
    timeout: NumberParam = None
    output_key: str = lenient("shell")
    fail_on_nonzero: BoolParam = None


def _command(ctx: NodeContext, config: ShellCommandConfig) -> str:
    if config.cmd is None:
        raise NodeError("shell_command requires 'cmd' parameter")
    return ctx.interpolate(config.cmd)


def _arguments(ctx: NodeContext, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise NodeError("shell_command expects 'args' to be an array")
    if not all(isinstance(item, str) for item in value):
        raise NodeError("shell_command expects every 'args' entry to be a string")
    return [ctx.interpolate(item) for item in value]


def _working_directory(ctx: NodeContext, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise NodeError("shell_command expects 'cwd' to be a string")
    return ctx.interpolate(value)


def _environment(ctx: NodeContext, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise NodeError("shell_command expects 'env' to be an object")
    if not all(isinstance(item, str) for item in value.values()):
        raise NodeError("shell_command expects every 'env' value to be a string")
    return {str(name): ctx.interpolate(item) for name, item in value.items()}


def _os_text(error: OSError) -> str:
    """An OS error the way upstream prints it: ``No such file or directory (os error 2)``."""
    if error.errno is None:
        return str(error)
    return f"{error.strerror or os.strerror(error.errno)} (os error {error.errno})"


async def run_shell_command(ctx: NodeContext, config: ShellCommandConfig) -> dict[str, Any]:
    """Run ``cmd`` with ``args`` (no shell), publish ``<k>_stdout/_stderr/_code/_success``."""
    cmd = _command(ctx, config)
    args = _arguments(ctx, config.args)
    cwd = _working_directory(ctx, config.cwd)
    extra_env = _environment(ctx, config.env)
    timeout = strict_float(ctx, "timeout", config.timeout, 60.0)
    if timeout <= 0:
        raise NodeError("shell_command timeout must be greater than zero seconds")
    fail_on_nonzero = strict_bool(ctx, "fail_on_nonzero", config.fail_on_nonzero, True)

    run_env = ctx.services.env
    max_output = lenient_positive_int(
        run_env, "IRONFLOW_MAX_SHELL_OUTPUT_BYTES", DEFAULT_MAX_OUTPUT
    )
    policy = ShellAllowList.from_env(run_env)
    check_flow_env(extra_env, policy=policy, env=run_env)
    # The program is chosen with the operator's PATH, before the flow's env applies.
    search_path = operator_path(run_env)
    try:
        executable = await trio.to_thread.run_sync(
            lambda: resolve_allowed_program(policy, cmd, cwd=cwd, search_path=search_path)
        )
        completed = await run_contained(
            [cmd, *args],
            executable=executable,
            cwd=cwd,
            env={**child_process_env(run_env), **extra_env},
            timeout=timeout,
            max_output=max_output,
        )
    except OSError as error:
        raise NodeError(_os_text(error)) from None
    if completed is None:
        raise NodeError(
            f"Command '{cmd}' timed out after {format_seconds(timeout)}s (process terminated)"
        )

    output: dict[str, Any] = {
        f"{config.output_key}_stdout": completed.stdout.decode("utf-8", errors="replace"),
        f"{config.output_key}_stderr": completed.stderr.decode("utf-8", errors="replace"),
        f"{config.output_key}_code": completed.returncode,
        f"{config.output_key}_success": completed.returncode == 0,
    }
    if completed.truncated:
        output[f"{config.output_key}_output_truncated"] = True
    if fail_on_nonzero and completed.returncode != 0:
        raise NodeFailure(f"Command '{cmd}' exited with code {completed.returncode}", output)
    return output
