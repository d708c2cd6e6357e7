"""Run one program in its own process group and capture its output, bounded.

The child leads a new session (``start_new_session=True``), so everything it
spawns shares its process group. Whenever the child is not allowed to finish
on its own — the node's timeout, the step's ``timeout()``, run cancellation,
an error while reading — the whole group gets ``SIGKILL`` and the child is
reaped, so no grandchild outlives the step (SH-5, ENG-170, PY-6). stdout and
stderr are drained concurrently; each keeps at most ``max_output`` bytes and
the rest is read and dropped so the child never blocks on a full pipe (SH-2).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence

import attrs
import trio

_CHUNK = 65536
_REAP_GRACE_SECONDS = 10.0


@attrs.frozen
class Completed:
    stdout: bytes
    stderr: bytes
    returncode: int
    """The exit status, or -1 when a signal ended the child (SH-3)."""
    truncated: bool
    """True when either stream hit the cap."""


class _Capture:
    """Keeps the first ``limit`` bytes of a stream and counts what it dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    async def drain(self, stream: trio.abc.ReceiveStream) -> None:
        while True:
            chunk = await stream.receive_some(_CHUNK)
            if not chunk:
                return
            room = self.limit - len(self.data)
            if len(chunk) > room:
                self.truncated = True
                if room > 0:
                    self.data += chunk[:room]
            else:
                self.data += chunk


async def run_in_group(
    argv: Sequence[str],
    *,
    executable: str | None,
    cwd: str | None,
    env: Mapping[str, str],
    timeout: float,
    max_output: int,
) -> Completed | None:
    """Run ``argv`` to completion; None when ``timeout`` seconds passed first.

    Spawn failures (missing program, bad ``cwd``) raise ``OSError``. Trio
    cancellation propagates as a plain ``trio.Cancelled`` after the group is
    killed and reaped.
    """
    process = await trio.lowlevel.open_process(
        list(argv),
        executable=executable,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    # No checkpoint may come between the spawn and this ``try``: the cleanup
    # below must own the child from the first moment it exists.
    finished = False
    try:
        stdout, stderr = _Capture(max_output), _Capture(max_output)
        with trio.move_on_after(timeout) as deadline:
            await _collect(process, stdout, stderr)
        if deadline.cancelled_caught:
            return None
        finished = True
        code = process.returncode
        return Completed(
            stdout=bytes(stdout.data),
            stderr=bytes(stderr.data),
            returncode=code if code is not None and code >= 0 else -1,
            truncated=stdout.truncated or stderr.truncated,
        )
    finally:
        with trio.CancelScope(shield=True):
            if not finished:
                await _kill_group(process)
            await _close_pipes(process)


async def _collect(process: trio.Process, stdout: _Capture, stderr: _Capture) -> None:
    """Wait for the child to exit and for both pipes to reach end of file."""
    assert process.stdout is not None and process.stderr is not None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stdout.drain, process.stdout)
            nursery.start_soon(stderr.drain, process.stderr)
            await process.wait()
    except BaseExceptionGroup as group:
        # Callers (the engine's deadline handling) expect a bare Cancelled or
        # a bare error, not trio's nursery wrapper.
        raise _first_leaf(group) from None


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    cancelled, rest = group.split(trio.Cancelled)
    chosen = rest if rest is not None else cancelled
    assert chosen is not None
    leaf: BaseException = chosen
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


async def _kill_group(process: trio.Process) -> None:
    """SIGKILL every process in the child's group, then reap the child."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        # The group is already empty (or the pid was never a group leader).
        if process.returncode is None:
            try:
                process.kill()
            except ProcessLookupError:
                pass
    with trio.move_on_after(_REAP_GRACE_SECONDS):
        await process.wait()


async def _close_pipes(process: trio.Process) -> None:
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            await stream.aclose()
