"""Response actions: kill, exec blacklist, memory and file dumps, IR report, and their runner."""

from vigil.agent.actions.blacklist import ExecBlocker
from vigil.agent.actions.blacklist_store import Blacklist
from vigil.agent.actions.errors import ActionError, ActionRefused, ActionUnavailable, InvalidInput, TargetGone
from vigil.agent.actions.kill import kill_process, send_signal, suspend_process

__all__ = [
    "ActionError",
    "ActionRefused",
    "ActionUnavailable",
    "Blacklist",
    "ExecBlocker",
    "InvalidInput",
    "TargetGone",
    "kill_process",
    "send_signal",
    "suspend_process",
]
