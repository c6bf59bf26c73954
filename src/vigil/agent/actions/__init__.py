"""Response actions: kill, exec blacklist, memory and file dumps, IR report, and their runner."""

from vigil.agent.actions.artifacts import Artifact, ArtifactStore, event_hash
from vigil.agent.actions.availability import Availability, check_actions
from vigil.agent.actions.blacklist import ExecBlocker
from vigil.agent.actions.blacklist_store import Blacklist
from vigil.agent.actions.errors import ActionError, ActionRefused, ActionUnavailable, InvalidInput, TargetGone
from vigil.agent.actions.events import BLOCKED_EXEC, CANARY_ACCESS, RESPONSE_ACTION, operational_event
from vigil.agent.actions.filedump import FileDumper
from vigil.agent.actions.kill import kill_process, send_signal, suspend_process
from vigil.agent.actions.memdump import dump_to_file, write_core
from vigil.agent.actions.mounts import local_filesystems
from vigil.agent.actions.report import ReportCommand, ReportOptions, build_report
from vigil.agent.actions.runner import ACTIONS, ActionResult, ActionRunner

__all__ = [
    "ACTIONS",
    "BLOCKED_EXEC",
    "CANARY_ACCESS",
    "RESPONSE_ACTION",
    "ActionError",
    "ActionRefused",
    "ActionResult",
    "ActionRunner",
    "ActionUnavailable",
    "Artifact",
    "ArtifactStore",
    "Availability",
    "Blacklist",
    "ExecBlocker",
    "FileDumper",
    "InvalidInput",
    "ReportCommand",
    "ReportOptions",
    "TargetGone",
    "build_report",
    "check_actions",
    "dump_to_file",
    "event_hash",
    "kill_process",
    "local_filesystems",
    "operational_event",
    "send_signal",
    "suspend_process",
    "write_core",
]
