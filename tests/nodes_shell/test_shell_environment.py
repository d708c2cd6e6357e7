"""What a shell step's program finds in its environment (beyond upstream).

The attacks: with ``IRONFLOW_SHELL_ALLOW=echo`` a flow sets ``LD_PRELOAD`` to
a library it wrote, or ``PATH`` to a directory with its own ``echo``; and a
child reads settings that ``IRONFLOW_ENV_ALLOWLIST`` hides from ``env()``, or
the server's own secrets.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from ironflow_core.configs import structure_config
from ironflow_core.errors import NodeError
from ironflow_nodes_shell.node import ShellCommandConfig, run_shell_command

PRELOAD_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void attack(void) {
    const char *marker = getenv("MARKER");
    FILE *f = marker ? fopen(marker, "w") : NULL;
    if (f) { fputs("constructor ran", f); fclose(f); }
}
"""


async def run(ctx: Any, **config: Any) -> dict[str, Any]:
    return await run_shell_command(ctx, structure_config(ShellCommandConfig, config))


def loader_refusal(name: str) -> str:
    return (
        f"shell_command: env name '{name}' is refused while IRONFLOW_SHELL_ALLOW is set: "
        "it changes which code a program loads or runs"
    )


@pytest.fixture
def preload_library(tmp_path):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("needs a C compiler to build the attacking library")
    source = tmp_path / "attack.c"
    source.write_text(PRELOAD_SOURCE)
    library = tmp_path / "attack.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


async def test_ld_preload_runs_the_flows_code_without_a_policy(make_ctx, tmp_path,
                                                               preload_library):
    """The control: the library really runs its constructor when allowed to load."""
    marker = tmp_path / "marker"
    env = {"LD_PRELOAD": str(preload_library), "MARKER": str(marker)}
    await run(make_ctx(), cmd="echo", env=env)
    assert marker.read_text() == "constructor ran"


async def test_ld_preload_is_refused_under_a_policy(make_ctx, tmp_path, preload_library):
    marker = tmp_path / "marker"
    ctx = make_ctx(env={"IRONFLOW_SHELL_ALLOW": "echo",
                        "IRONFLOW_SHELL_ENV_ALLOW": "LD_PRELOAD,MARKER"})
    with pytest.raises(NodeError) as info:
        await run(ctx, cmd="echo", env={"LD_PRELOAD": str(preload_library),
                                        "MARKER": str(marker)})
    assert str(info.value) == loader_refusal("LD_PRELOAD")
    assert not marker.exists()


async def test_path_override_cannot_swap_the_allowed_program(make_ctx, tmp_path):
    fake_dir = tmp_path / "bin"
    fake_dir.mkdir()
    (fake_dir / "echo").write_text("#!/bin/sh\nprintf fake\n")
    (fake_dir / "echo").chmod(0o755)
    ctx = make_ctx(env={"IRONFLOW_SHELL_ALLOW": "echo", "IRONFLOW_SHELL_ENV_ALLOW": "*"})
    with pytest.raises(NodeError) as info:
        await run(ctx, cmd="echo", env={"PATH": str(fake_dir)})
    assert str(info.value) == loader_refusal("PATH")


@pytest.mark.parametrize("name", [
    "LD_LIBRARY_PATH", "LD_AUDIT", "GCONV_PATH", "BASH_ENV", "ENV", "PYTHONPATH",
    "PYTHONSTARTUP", "PERL5OPT", "PERL5LIB", "RUBYOPT", "NODE_OPTIONS", "GLIBC_TUNABLES",
    "BASH_FUNC_echo%%", "GIT_SSH_COMMAND", "HOME", "XDG_CONFIG_HOME", "ld_preload",
])
async def test_loader_and_interpreter_names_are_refused_under_a_policy(make_ctx, name):
    ctx = make_ctx(env={"IRONFLOW_SHELL_ALLOW": "echo", "IRONFLOW_SHELL_ENV_ALLOW": "*"})
    with pytest.raises(NodeError, match="IRONFLOW_SHELL_ALLOW is set") as info:
        await run(ctx, cmd="echo", env={name: "x"})
    assert repr(name)[1:-1] in str(info.value)


async def test_under_a_policy_the_flow_sets_no_names_unless_the_operator_lists_them(make_ctx):
    ctx = make_ctx(env={"IRONFLOW_SHELL_ALLOW": "sh"})
    with pytest.raises(NodeError) as info:
        await run(ctx, cmd="sh", args=["-c", "echo $NAME"], env={"NAME": "x"})
    assert str(info.value) == (
        "shell_command: env name 'NAME' is not allowed by IRONFLOW_SHELL_ENV_ALLOW"
        " (unset: no names while IRONFLOW_SHELL_ALLOW is set)"
    )


async def test_listed_names_and_prefixes_pass(make_ctx):
    ctx = make_ctx(env={"IRONFLOW_SHELL_ALLOW": "sh",
                        "IRONFLOW_SHELL_ENV_ALLOW": "NAME, APP_*"})
    out = await run(ctx, cmd="sh", args=["-c", 'printf "$NAME $APP_MODE"'],
                    env={"NAME": "n", "APP_MODE": "m"})
    assert out["shell_stdout"] == "n m"
    with pytest.raises(NodeError, match=r"'OTHER' is not allowed by IRONFLOW_SHELL_ENV_ALLOW$"):
        await run(ctx, cmd="sh", args=["-c", "true"], env={"OTHER": "x"})


async def test_env_allowlist_applies_without_a_program_policy(make_ctx):
    ctx = make_ctx(env={"IRONFLOW_SHELL_ENV_ALLOW": "NAME"})
    assert (await run(ctx, cmd="sh", args=["-c", 'printf "$NAME"'],
                      env={"NAME": "n"}))["shell_stdout"] == "n"
    with pytest.raises(NodeError, match="'LD_PRELOAD' is not allowed"):
        await run(ctx, cmd="true", env={"LD_PRELOAD": "x"})


async def test_without_any_policy_the_flow_env_is_free_as_upstream(make_ctx):
    out = await run(make_ctx(), cmd="sh", args=["-c", 'printf "$PYTHONPATH"'],
                    env={"PYTHONPATH": "/x"})
    assert out["shell_stdout"] == "/x"


PRINT = 'for n in SERVER_DB_URL IRONFLOW_API_KEY GITHUB_WEBHOOK_SECRET IRONFLOW_REDIS_PASSWORD; do eval "printf \\"$n=%s;\\" \\"\\${$n-unset}\\""; done'


async def test_child_inherits_only_what_env_allowlist_lets_env_read(make_ctx):
    ctx = make_ctx(env={"IRONFLOW_ENV_ALLOWLIST": "PATH, VISIBLE",
                        "VISIBLE": "v", "SERVER_DB_URL": "postgres://hidden"})
    out = await run(ctx, cmd="sh", args=["-c", 'printf "$VISIBLE;${SERVER_DB_URL-unset}"'])
    assert out["shell_stdout"] == "v;unset"


async def test_server_secrets_never_reach_a_child_even_when_allowlisted(make_ctx):
    secrets = {"IRONFLOW_API_KEY": "k" * 32, "GITHUB_WEBHOOK_SECRET": "s" * 32,
               "IRONFLOW_REDIS_PASSWORD": "p", "SERVER_DB_URL": "db"}
    for allowlist in (None, "PATH,SERVER_DB_URL,IRONFLOW_API_KEY,GITHUB_WEBHOOK_SECRET"):
        env = dict(secrets)
        if allowlist is not None:
            env["IRONFLOW_ENV_ALLOWLIST"] = allowlist
        out = await run(make_ctx(env=env), cmd="sh", args=["-c", PRINT])
        assert out["shell_stdout"] == (
            "SERVER_DB_URL=db;IRONFLOW_API_KEY=unset;GITHUB_WEBHOOK_SECRET=unset;"
            "IRONFLOW_REDIS_PASSWORD=unset;"
        )
