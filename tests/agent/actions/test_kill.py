"""kill: pidfd signal behind guards (never init, the agent, its children or kernel threads)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from vigil.agent.actions import kill
from vigil.agent.actions.errors import ActionRefused, TargetGone

from .conftest import needs_root


@pytest.fixture
def no_signals(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record any signal the module tries to send instead of sending it (refusal tests stay harmless)."""
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(kill.signal, "pidfd_send_signal", lambda fd, sig: sent.append((fd, sig)))
    return sent


@needs_root
def test_kill_terminates_a_test_process(orphans) -> None:
    pid = orphans.spawn(["sleep", "60"])
    assert orphans.alive(pid)
    kill.kill_process(pid)
    assert orphans.wait_exit(pid), "the test process survived SIGKILL"


@needs_root
def test_suspend_stops_a_test_process(orphans) -> None:
    pid = orphans.spawn(["sleep", "60"])
    kill.suspend_process(pid)
    deadline = time.monotonic() + 5
    state = "?"
    while time.monotonic() < deadline and state != "T":
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
        time.sleep(0.01)
    assert state == "T"


def test_refuses_pid_1_without_signalling(no_signals) -> None:
    with pytest.raises(ActionRefused, match="pid 1"):
        kill.kill_process(1)
    assert no_signals == []


@pytest.mark.parametrize("pid", [0, -1])
def test_refuses_non_positive_pids(no_signals, pid: int) -> None:
    with pytest.raises((ActionRefused, TargetGone)):
        kill.kill_process(pid)
    assert no_signals == []


def test_refuses_the_agent_itself(no_signals) -> None:
    with pytest.raises(ActionRefused, match="agent itself"):
        kill.kill_process(os.getpid())
    assert no_signals == []


def test_refuses_children_of_the_agent(no_signals) -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(ActionRefused, match="child of the agent"):
            kill.kill_process(child.pid)
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()
    assert no_signals == []


def test_refuses_kernel_threads(no_signals) -> None:
    with pytest.raises(ActionRefused, match="kernel thread"):
        kill.kill_process(2)
    assert no_signals == []


@needs_root
def test_refuses_a_reused_pid(orphans, no_signals) -> None:
    pid = orphans.spawn(["sleep", "60"])
    with pytest.raises(TargetGone, match="reused"):
        kill.kill_process(pid, start_ticks=1)
    assert no_signals == []
    assert orphans.alive(pid)


def test_missing_pid_is_target_gone() -> None:
    with pytest.raises(TargetGone):
        kill.kill_process(2**22 + 12345)


def test_guard_rejects_non_int(no_signals) -> None:
    with pytest.raises(ActionRefused, match="must be an int"):
        kill.check_guards("12")  # type: ignore[arg-type]
    assert signal.SIGKILL not in [s for _, s in no_signals]
