"""Supervisor that runs one command and leaves no descendant behind (Linux).

The engine starts this file as its own program (``python -I -S _reaper.py
<status-fd>``), never imports it. It makes itself a *child subreaper*
(``PR_SET_CHILD_SUBREAPER``): every process the command starts that loses its
parent — a ``setsid`` daemon, a double fork — re-parents to this supervisor
instead of to init. When the command exits, when the engine asks it to stop
(``SIGTERM``) or when the engine dies (its end of our stdin closes), it kills
its whole subtree with ``SIGKILL`` and reaps it, and only then reports and
exits. So nothing the command started outlives the step, whatever session or
process group it moved to.

Protocol. stdin carries an 8-byte length and a ``marshal``-ed ``(executable,
argv, cwd, env)`` (same interpreter on both ends), then stays open as the
engine's lifeline; the command itself gets ``/dev/null`` as stdin and inherits
stdout/stderr, and leads its own session. Status lines go to
``<status-fd>``: ``pid <n>`` once spawned, or ``error <errno>`` when the spawn
failed; then ``exit <code>``, ``signal <n>`` or ``stopped`` once the subtree
is gone.

Only the standard library, imported lightly: this runs once per
``shell_command`` and its start-up time is the node's overhead.
"""

import _signal
import marshal
import os
import select
import sys
import time

_PR_SET_CHILD_SUBREAPER = 36
_STOP_SIGNALS = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)
_KILL_BUDGET_SECONDS = 10.0

_stopping = False


def _on_stop(signum, frame):
    global _stopping
    _stopping = True


def _on_child(signum, frame):
    """Installed only so that SIGCHLD reaches the wakeup descriptor."""


def _prctl(option, value):
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl failed")


def _read_exactly(size):
    chunks, left = [], size
    while left:
        chunk = os.read(0, min(left, 65536))
        if not chunk:
            raise EOFError("the engine closed the spec pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_spec():
    return marshal.loads(_read_exactly(int.from_bytes(_read_exactly(8), "big")))


def _spawn(executable, argv, cwd, env):
    """fork + exec; returns the pid, or raises OSError with the child's errno."""
    errors_r, errors_w = os.pipe()  # both ends close on exec
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked child
        try:
            os.close(errors_r)
            _signal.set_wakeup_fd(-1)
            for signum in (*_STOP_SIGNALS, _signal.SIGCHLD, _signal.SIGPIPE, _signal.SIGXFSZ):
                _signal.signal(signum, _signal.SIG_DFL)
            os.setsid()  # the command leads its own session and group (SH-5)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            if cwd is not None:
                os.chdir(cwd)
            if executable is not None:
                os.execve(executable, argv, env)
            os.execvpe(argv[0], argv, env)
        except OSError as error:
            os.write(errors_w, str(error.errno or 0).encode())
        finally:
            os._exit(127)
    os.close(errors_w)
    report = os.read(errors_r, 64)
    os.close(errors_r)
    if report:
        os.waitpid(pid, 0)
        errno = int(report)
        raise OSError(errno, os.strerror(errno))
    return pid


def _descendants(root):
    """Every live process below ``root``, found through ``/proc`` parent links."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    found, queue = [], [root]
    while queue:
        for child in children.get(queue.pop(), ()):
            found.append(child)
            queue.append(child)
    return found


def _kill_subtree(command_pid):
    """SIGKILL and reap everything below us until no child is left."""
    me = os.getpid()
    deadline = time.monotonic() + _KILL_BUDGET_SECONDS
    status = None
    while True:
        for pid in _descendants(me):
            try:
                os.kill(pid, _signal.SIGKILL)
            except OSError:
                pass
        try:
            while True:
                pid, code = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                if pid == command_pid and status is None:
                    status = code
        except ChildProcessError:
            return status
        if time.monotonic() > deadline:
            return status
        time.sleep(0.002)


def _wait_command(command_pid, wakeup):
    """Reap re-parented orphans while waiting; the command's wait status, or None
    when the engine asked us to stop or went away."""
    while not _stopping:
        try:
            while True:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                if pid == command_pid:
                    return status
        except ChildProcessError:
            return None
        ready, _, _ = select.select([0, wakeup], [], [])
        if wakeup in ready:
            os.read(wakeup, 4096)
        if 0 in ready and not os.read(0, 4096):
            return None  # the engine is gone: its end of our stdin closed
    return None


def main():
    """Reap the command's process group when the engine dies, then report its status."""
    status_fd = int(sys.argv[1])
    wakeup, wakeup_write = os.pipe()
    os.set_blocking(wakeup_write, False)
    _signal.set_wakeup_fd(wakeup_write)
    for signum in _STOP_SIGNALS:
        _signal.signal(signum, _on_stop)
    _signal.signal(_signal.SIGCHLD, _on_child)
    os.set_inheritable(status_fd, False)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    executable, argv, cwd, env = _read_spec()
    if _stopping:
        return
    try:
        command_pid = _spawn(executable, argv, cwd, env)
    except OSError as error:
        os.write(status_fd, f"error {error.errno}\n".encode())
        return
    os.write(status_fd, f"pid {command_pid}\n".encode())
    status = _wait_command(command_pid, wakeup)
    for signum in _STOP_SIGNALS:
        _signal.signal(signum, _signal.SIG_IGN)
    late = _kill_subtree(command_pid)
    if status is None and not _stopping:
        status = late
    if status is None:
        os.write(status_fd, b"stopped\n")
    elif os.WIFSIGNALED(status):
        os.write(status_fd, f"signal {os.WTERMSIG(status)}\n".encode())
    else:
        os.write(status_fd, f"exit {os.waitstatus_to_exitcode(status)}\n".encode())


if __name__ == "__main__":
    main()
    os._exit(0)  # skip interpreter teardown: it is most of the exit time
