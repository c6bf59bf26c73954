"""Signal a process through a pidfd, behind guards that protect the system and the agent.

The pidfd is opened first and every guard is checked after, so the signal reaches the very
process the guards looked at, even if its pid is recycled meanwhile (checked with the start time).
"""

from __future__ import annotations

import logging
import os
import signal

from vigil.agent.actions._proc import is_descendant, read_stat
from vigil.agent.actions.errors import ActionRefused, TargetGone

logger = logging.getLogger(__name__)

_KTHREADD = 2
_PF_KTHREAD = 0x00200000


def check_guards(pid: int, *, agent_pid: int | None = None, start_ticks: int | None = None) -> None:
    """Raise ActionRefused when ``pid`` must never be signalled, TargetGone when it does not exist.

    Refused: pid <= 1, the agent, any descendant of the agent (direct children only when the agent
    is pid 1 of a container), kernel threads, and a pid whose start time differs from
    ``start_ticks`` (pid reuse).
    """
    agent = os.getpid() if agent_pid is None else agent_pid
    if not isinstance(pid, int) or isinstance(pid, bool):
        raise ActionRefused(f"pid must be an int, got {pid!r}", action="kill", target=pid)
    if pid <= 1:
        raise ActionRefused(f"refusing to signal pid {pid} (init or invalid)", action="kill", target=pid)
    if pid in (agent, os.getpid()):
        raise ActionRefused(f"refusing to signal the agent itself (pid {pid})", action="kill", target=pid)
    try:
        st = read_stat(pid)
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise TargetGone(f"pid {pid} does not exist", action="kill", target=pid) from exc
    if _KTHREADD in (pid, st.ppid) or st.flags & _PF_KTHREAD:
        raise ActionRefused(f"refusing to signal kernel thread {pid} ({st.comm})", action="kill", target=pid)
    if start_ticks is not None and st.start_ticks != start_ticks:
        raise TargetGone(
            f"pid {pid} was reused (start {st.start_ticks} != {start_ticks})", action="kill", target=pid
        )
    if st.ppid == agent or (agent > 1 and is_descendant(pid, agent)):
        raise ActionRefused(f"refusing to signal pid {pid}: a child of the agent", action="kill", target=pid)


def send_signal(
    pid: int, sig: int = signal.SIGKILL, *, agent_pid: int | None = None, start_ticks: int | None = None
) -> None:
    """Send ``sig`` to ``pid`` through a pidfd after the guards passed.

    Raises ActionRefused (guard) or TargetGone (no such process, or it exited meanwhile).
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError as exc:
        raise TargetGone(f"pid {pid} does not exist", action="kill", target=pid) from exc
    except OSError as exc:
        raise TargetGone(f"pidfd_open({pid}) failed: {exc.strerror}", action="kill", target=pid) from exc
    try:
        check_guards(pid, agent_pid=agent_pid, start_ticks=start_ticks)
        try:
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError as exc:
            raise TargetGone(f"pid {pid} exited before the signal", action="kill", target=pid) from exc
        logger.info("sent signal %s to pid %s", signal.Signals(sig).name, pid)
    finally:
        os.close(pidfd)


def kill_process(pid: int, *, agent_pid: int | None = None, start_ticks: int | None = None) -> None:
    """SIGKILL ``pid`` (see send_signal)."""
    send_signal(pid, signal.SIGKILL, agent_pid=agent_pid, start_ticks=start_ticks)


def suspend_process(pid: int, *, agent_pid: int | None = None, start_ticks: int | None = None) -> None:
    """SIGSTOP ``pid`` so it cannot act while it is dumped (see send_signal)."""
    send_signal(pid, signal.SIGSTOP, agent_pid=agent_pid, start_ticks=start_ticks)
