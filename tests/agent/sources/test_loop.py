"""The shared reader loop: ready descriptors are drained after the coalescing wait, idle work runs on time."""

from __future__ import annotations

import os
import threading
import time

import pytest

from vigil.agent.sources.loop import SourceLoop


def test_a_ready_descriptor_is_drained_once_with_everything_written_during_the_wait() -> None:
    loop = SourceLoop(coalesce_s=0.05)
    r, w = os.pipe()
    os.set_blocking(r, False)
    got: list[bytes] = []
    done = threading.Event()

    def drain() -> None:
        got.append(os.read(r, 100))
        done.set()

    loop.start()
    try:
        loop.register(r, drain)
        os.write(w, b"fork ")
        time.sleep(0.01)  # inside the coalescing wait
        os.write(w, b"exec")
        assert done.wait(5)
        time.sleep(0.1)
        assert got == [b"fork exec"]  # one call for both writes
        loop.unregister(r)
        os.write(w, b"later")
        time.sleep(0.1)
        assert got == [b"fork exec"]  # unregistered: no more calls
    finally:
        loop.stop()
        os.close(r)
        os.close(w)


def test_idle_work_runs_when_its_time_comes_without_data() -> None:
    loop = SourceLoop()
    r, w = os.pipe()
    due = time.monotonic() + 0.1
    calls: list[float] = []

    def idle() -> int | None:
        if calls:
            return None
        return int(max(0.0, due - time.monotonic()) * 1000)

    loop.start()
    try:
        loop.register(r, lambda: calls.append(time.monotonic()), idle)
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert calls and calls[0] >= due - 0.01
    finally:
        loop.stop()
        os.close(r)
        os.close(w)


def test_a_negative_coalescing_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="coalesce_s must be >= 0, got -1"):
        SourceLoop(coalesce_s=-1)
