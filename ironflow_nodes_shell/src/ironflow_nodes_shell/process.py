"""Run one program, capture its output bounded, and leave nothing of it behind.

On Linux the program runs under a small supervisor (``_reaper.py``) that is a
child subreaper: whatever the program spawns stays below the supervisor even
after ``setsid`` or a double fork, and the supervisor ``SIGKILL``s and reaps
that whole subtree when the program exits, when the engine stops it (the
node's timeout, the step's ``timeout()``, run cancellation, an error while
reading) and when the engine itself dies (SH-5, ENG-170, PY-6). Elsewhere the
program leads its own process group and the group is killed instead.

stdout and stderr are drained concurrently; each keeps at most ``max_output``
bytes and the rest is read and dropped so the child never blocks on a full
pipe (SH-2).
"""

from __future__ import annotations

import marshal
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import trio

_CHUNK = 65536
_REAP_GRACE_SECONDS = 10.0
_REAPER = str(Path(__file__).with_name("_reaper.py"))
SUPERVISED = sys.platform == "linux"


@attrs.frozen
class Completed:
    """A finished command: its captured output and exit status."""

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


async def run_contained(
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
    cancellation propagates as a plain ``trio.Cancelled`` once everything the
    program started is dead and reaped.
    """
    if SUPERVISED:
        return await _run_supervised(
            argv, executable=executable, cwd=cwd, env=env, timeout=timeout, max_output=max_output
        )
    return await _run_in_group(
        argv, executable=executable, cwd=cwd, env=env, timeout=timeout, max_output=max_output
    )


async def _run_supervised(
    argv: Sequence[str],
    *,
    executable: str | None,
    cwd: str | None,
    env: Mapping[str, str],
    timeout: float,
    max_output: int,
) -> Completed | None:
    spec = marshal.dumps((executable, list(argv), cwd, dict(env)))
    status_read, status_write = os.pipe()
    try:
        supervisor = await trio.lowlevel.open_process(
            [sys.executable, "-I", "-S", _REAPER, str(status_write)],
            # The supervisor's own environment stays minimal: the program could
            # read it through /proc, and it is not the program's environment.
            env=_supervisor_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=(status_write,),
        )
    except BaseException:
        os.close(status_read)
        raise
    finally:
        os.close(status_write)
    status_stream = trio.lowlevel.FdStream(status_read)
    # No checkpoint may come between the spawn and this ``try``: the cleanup
    # below must own the supervisor from the first moment it exists.
    finished = False
    command_pid: int | None = None
    try:
        status = _StatusReader(status_stream)
        assert supervisor.stdin is not None
        # stdin stays open after the spec: it is the supervisor's lifeline, and
        # closes (so the supervisor kills the tree) if this process dies.
        try:
            await supervisor.stdin.send_all(len(spec).to_bytes(8, "big") + spec)
        except trio.BrokenResourceError:
            raise OSError("the process supervisor stopped before starting the program") from None
        started = (await status.line()).split()
        if started[:1] == ["error"]:
            errno = int(started[1])
            raise OSError(errno, os.strerror(errno))
        if started[:1] != ["pid"]:
            raise OSError("the process supervisor stopped before starting the program")
        command_pid = int(started[1])
        stdout, stderr = _Capture(max_output), _Capture(max_output)
        with trio.move_on_after(timeout) as deadline:
            await _collect(supervisor, stdout, stderr)
        if deadline.cancelled_caught:
            return None
        finished = True
        ending = (await status.line()).split()
        code = int(ending[1]) if ending and ending[0] == "exit" else -1
        return Completed(
            stdout=bytes(stdout.data),
            stderr=bytes(stderr.data),
            returncode=code if code >= 0 else -1,
            truncated=stdout.truncated or stderr.truncated,
        )
    finally:
        with trio.CancelScope(shield=True):
            if not finished:
                await _stop_supervisor(supervisor, command_pid)
            await _close_pipes(supervisor)
            await status_stream.aclose()


def _supervisor_env() -> dict[str, str]:
    """What the interpreter needs to start, nothing else."""
    return {name: os.environ[name] for name in ("LD_LIBRARY_PATH",) if name in os.environ}


class _StatusReader:
    """Reads the supervisor's newline-terminated status lines."""

    def __init__(self, stream: trio.lowlevel.FdStream) -> None:
        self._stream = stream
        self._buffer = b""

    async def line(self) -> str:
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some(256)
            if not chunk:
                return ""
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("ascii", errors="replace")


async def _stop_supervisor(supervisor: trio.Process, command_pid: int | None) -> None:
    """Ask the supervisor to kill its subtree; force the groups if it does not answer."""
    if supervisor.returncode is None:
        try:
            supervisor.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        with trio.move_on_after(_REAP_GRACE_SECONDS):
            await supervisor.wait()
    if supervisor.returncode is None:
        if command_pid is not None:
            try:
                os.killpg(command_pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        await _kill_group(supervisor)


async def _run_in_group(
    argv: Sequence[str],
    *,
    executable: str | None,
    cwd: str | None,
    env: Mapping[str, str],
    timeout: float,
    max_output: int,
) -> Completed | None:
    """Fallback without a subreaper: the program leads a group, the group is killed."""
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
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            await stream.aclose()
