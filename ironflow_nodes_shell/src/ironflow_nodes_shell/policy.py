"""Which programs an operator lets flows start: ``IRONFLOW_SHELL_ALLOW``.

Unset means every program may run, as upstream. When set it is a comma list of
bare program names (matched against a bare ``cmd`` only, so ``echo`` never
admits ``/tmp/evil/echo``) and absolute paths (matched against the normalised
path the program will actually be started from). A bare ``cmd`` admitted by an
absolute entry is resolved through the child's ``PATH`` here, and the resolved
file is what gets executed, so the check and the exec see the same program.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

import attrs

from ironflow_core.errors import NodeError

ALLOW_VAR = "IRONFLOW_SHELL_ALLOW"


@attrs.frozen
class ShellAllowList:
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


def resolve_allowed_program(
    policy: ShellAllowList | None, cmd: str, *, cwd: str | None, child_path: str | None
) -> str | None:
    """Check ``cmd`` against the policy (blocking: may search ``PATH``).

    Returns the absolute file to execute when the policy pinned one, None when
    ``cmd`` may be started as given; raises ``NodeError`` when it is refused.
    """
    if policy is None:
        return None
    if "/" not in cmd:
        if cmd in policy.names:
            return None
        if policy.paths and cmd:
            found = shutil.which(cmd, path=child_path if child_path is not None else os.defpath)
            if found is not None:
                resolved = os.path.normpath(os.path.abspath(found))
                if resolved in policy.paths:
                    return resolved
    else:
        base = cwd if cwd is not None else os.getcwd()
        resolved = os.path.normpath(os.path.join(os.path.abspath(base), cmd))
        if resolved in policy.paths:
            return resolved
    raise NodeError(f"shell_command: program '{cmd}' is not allowed by {ALLOW_VAR}")
