"""paused_gc: no cyclic collection inside, the collector restored after, nesting and threads."""

from __future__ import annotations

import gc
import threading

from ironflow_core.gc_pause import paused_gc


def test_the_collector_is_off_inside_and_restored_after():
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    try:
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_exception_still_restores_the_collector():
    try:
        with paused_gc():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled()


def test_overlapping_pauses_in_threads_end_with_the_last_one():
    inside, leave = threading.Event(), threading.Event()

    def worker():
        with paused_gc():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=worker)
    thread.start()
    assert inside.wait(10)
    with paused_gc():
        pass
    assert not gc.isenabled()  # the worker's pause is still on
    leave.set()
    thread.join(10)
    assert gc.isenabled()
