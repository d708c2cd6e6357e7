"""Which programs, and which environment names, an operator lets flows use.

``IRONFLOW_SHELL_ALLOW`` — unset means every program may run, as upstream.
When set it is a comma list of bare program names (matched against a bare
``cmd`` only, so ``echo`` never admits ``/tmp/evil/echo``) and absolute paths
(matched against the normalised path the program will be started from). A
bare ``cmd`` is resolved here, with the *operator's* ``PATH`` (absolute
entries only) before anything from the flow applies, and exactly the resolved
file is executed, so the check and the exec see the same program.

``IRONFLOW_SHELL_ENV_ALLOW`` — the names a flow's ``env`` may set (comma list;
``PREFIX_*`` admits a prefix). Unset: any name when no program policy is set,
none when one is. While a program policy is set, names that change which code
a program loads or runs (``LD_*``, ``PATH``, ``BASH_ENV``, ``PYTHON*``, …) are
refused even if listed: they would turn an allowed program into any program.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterable, Mapping

import attrs

from ironflow_core import NodeError

ALLOW_VAR = "IRONFLOW_SHELL_ALLOW"
ENV_ALLOW_VAR = "IRONFLOW_SHELL_ENV_ALLOW"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Names a program, its loader, its shell or its interpreter reads to find code
# to run (or a configuration that names such code). Compared in upper case.
LOADER_NAMES = frozenset({
    "PATH", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND",
    "IFS", "CDPATH", "GLOBIGNORE", "GCONV_PATH", "LOCPATH", "NLSPATH",
    "GLIBC_TUNABLES", "HOSTALIASES", "RESOLV_HOST_CONF", "LOCALDOMAIN", "RES_OPTIONS",
    "HOME", "ZDOTDIR", "INPUTRC", "CLASSPATH", "PHPRC", "PHP_INI_SCAN_DIR",
    "TCLLIBPATH", "LESSOPEN", "LESSCLOSE", "PAGER", "EDITOR", "VISUAL", "BROWSER",
    "SSH_ASKPASS", "SUDO_ASKPASS", "GIT_ASKPASS", "GIT_SSH", "GIT_SSH_COMMAND",
    "GIT_EXEC_PATH", "GIT_EXTERNAL_DIFF", "GIT_PAGER", "GIT_EDITOR",
    "GIT_PROXY_COMMAND", "GIT_TEMPLATE_DIR", "OPENSSL_CONF", "OPENSSL_ENGINES",
})
LOADER_PREFIXES = (
    "LD_", "DYLD_", "PYTHON", "PERL", "RUBY", "GEM_", "BUNDLE_", "NODE_", "NPM_CONFIG_",
    "LUA_", "JAVA_", "_JAVA_", "JDK_", "BASH_FUNC_", "MALLOC_", "GIT_CONFIG", "XDG_",
    "DOTNET_", "CORECLR_", "COMPLUS_",
)


@attrs.frozen
class ShellAllowList:
    """The commands ``IRONFLOW_SHELL_ALLOW`` lets ``shell_command`` run."""

    names: frozenset[str]
    paths: frozenset[str]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ShellAllowList | None:
        """The operator's list, or None when the variable is unset (no policy)."""
        raw = env.get(ALLOW_VAR)
        if raw is None:
            return None
        names: set[str] = set()
        paths: set[str] = set()
        for item in raw.split(","):
            entry = item.strip()
            if not entry:
                continue
            if "/" in entry:
                paths.add(os.path.normpath(os.path.abspath(entry)))
            else:
                names.add(entry)
        return cls(frozenset(names), frozenset(paths))


def operator_path(env: Mapping[str, str]) -> str:
    """The operator's ``PATH`` without relative entries (those follow the flow's ``cwd``)."""
    raw = env.get("PATH")
    entries = (raw if raw is not None else os.defpath).split(os.pathsep)
    return os.pathsep.join(entry for entry in entries if os.path.isabs(entry))


def resolve_allowed_program(
    policy: ShellAllowList | None, cmd: str, *, cwd: str | None, search_path: str
) -> str | None:
    """Check ``cmd`` against the policy (blocking: may search ``search_path``).

    Returns the absolute file to execute, or None when there is no policy and
    ``cmd`` is started as given. Raises ``NodeError`` when the policy refuses
    it, ``FileNotFoundError`` when an allowed name is not on the operator's PATH.
    """
    if policy is None:
        return None
    if "/" not in cmd:
        if cmd and (cmd in policy.names or policy.paths):
            found = shutil.which(cmd, path=search_path)
            resolved = os.path.normpath(os.path.abspath(found)) if found else None
            if resolved is not None and (cmd in policy.names or resolved in policy.paths):
                return resolved
            if resolved is None and cmd in policy.names:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
    else:
        base = cwd if cwd is not None else os.getcwd()
        resolved = os.path.normpath(os.path.join(os.path.abspath(base), cmd))
        if resolved in policy.paths:
            return resolved
    raise NodeError(f"shell_command: program '{cmd}' is not allowed by {ALLOW_VAR}")


def is_loader_name(name: str) -> bool:
    """Whether an environment variable steers the dynamic loader (never passed on)."""
    upper = name.upper()
    return upper in LOADER_NAMES or upper.startswith(LOADER_PREFIXES)


def _env_allow_entries(env: Mapping[str, str]) -> list[str] | None:
    raw = env.get(ENV_ALLOW_VAR)
    if raw is None:
        return None
    return [entry.strip() for entry in raw.split(",") if entry.strip()]


def _listed(name: str, entries: Iterable[str]) -> bool:
    for entry in entries:
        if entry.endswith("*") and name.startswith(entry[:-1]):
            return True
        if name == entry:
            return True
    return False


def check_flow_env(
    names: Iterable[str], *, policy: ShellAllowList | None, env: Mapping[str, str]
) -> None:
    """Refuse ``env`` names the operator did not let flows set (see module docstring)."""
    entries = _env_allow_entries(env)
    if entries is None and policy is None:
        return
    for name in names:
        if policy is not None and is_loader_name(name):
            raise NodeError(
                f"shell_command: env name '{name}' is refused while {ALLOW_VAR} is set: "
                "it changes which code a program loads or runs"
            )
        if policy is not None and not _ENV_NAME.fullmatch(name):
            raise NodeError(
                f"shell_command: env name {name!r} is not a valid environment variable name"
            )
        if not _listed(name, entries or ()):
            raise NodeError(
                f"shell_command: env name '{name}' is not allowed by {ENV_ALLOW_VAR}"
                + ("" if entries is not None else f" (unset: no names while {ALLOW_VAR} is set)")
            )
