"""The response side of the agent, built from the config: action runner, exec blocker, canaries.

:class:`Response` owns the three and their lifecycle. The exec blocker and the canaries produce
``Vigil/Operational`` events (101 blocked exec, 100 canary access), and the runner one per action
taken (103); they go through the pipeline like any other. :func:`builtin_rules` makes 100 and 101
alerts, as WHIDS generates its ``Builtin:Canary*`` rules, and reports 103 as a filter match. A part that cannot run here is reported with its reason and the rest runs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from vigil.agent.config import AgentConfig

__all__ = ["OPERATIONAL", "Response", "builtin_rules"]

logger = logging.getLogger(__name__)

OPERATIONAL = "Vigil/Operational"
CANARY_ACCESS = 100
BLOCKED_EXEC = 101
RESPONSE_ACTION = 103


def builtin_rules(config: AgentConfig) -> str:
    """Gene rules (one JSON object per line) for the agent's own operational events."""
    rules: list[dict[str, Any]] = [
        {
            # What the runner did (one event per action): reported as a filter match, never an alert,
            # so that an action can never trigger more actions.
            "Name": "Builtin:ResponseAction",
            "Tags": ["vigil", "response"],
            "Meta": {"Events": {OPERATIONAL: [RESPONSE_ACTION]}, "Filter": True, "Schema": "2.0.0"},
            "Matches": [],
            "Condition": "",
        },
        {
            "Name": "Builtin:BlockedExec",
            "Tags": ["vigil", "blacklist"],
            "Meta": {
                "Events": {OPERATIONAL: [BLOCKED_EXEC]},
                "Criticality": 10,
                "Schema": "2.0.0",
                "Comment": "A blacklisted executable was refused at exec (or killed right after).",
            },
            "Matches": ["$target: TargetFilename ~= '.'"],
            "Condition": "$target",
        },
    ]
    if config.canaries.enable:
        rules.append(
            {
                "Name": "Builtin:CanaryAccessed",
                "Tags": ["vigil", "canary"],
                "Meta": {
                    "Events": {OPERATIONAL: [CANARY_ACCESS]},
                    "Criticality": 10,
                    "Schema": "2.0.0",
                    "Comment": "A process touched a decoy file.",
                },
                "Matches": ["$target: TargetFilename ~= '.'"],
                "Condition": "$target",
                "Actions": list(config.canaries.actions),
            }
        )
    return "\n".join(json.dumps(r) for r in rules) + "\n"


class Response:
    """Runner, blocker and canaries for an endpoint; ``status`` says what runs and why not."""

    def __init__(
        self,
        config: AgentConfig,
        sink: Callable[[dict[str, Any]], None],
        *,
        report_context: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self.report_context = report_context  # what reports add from the tracker (processes ...)
        self.runner: Any = None
        self.blocker: Any = None
        self.canaries: Any = None
        self.status: dict[str, str | None] = {}

    def start(self, rule_actions: Iterable[str] = ()) -> None:
        """Build the runner; start the exec blocker only when blacklisting can happen.

        ``rule_actions``: every action named by a loaded rule. The blocker (fanotify permission
        marks on every local filesystem) starts when a band, the canaries or a rule uses
        ``blacklist``, or when the persisted blacklist is not empty.
        """
        c = self.config
        try:
            from vigil.agent.actions.blacklist import ExecBlocker  # type: ignore[import-not-found,unused-ignore]
            from vigil.agent.actions.blacklist_store import Blacklist  # type: ignore[import-not-found,unused-ignore]
            from vigil.agent.actions.report import ReportOptions  # type: ignore[import-not-found,unused-ignore]
            from vigil.agent.actions.runner import ActionRunner  # type: ignore[import-not-found,unused-ignore]
        except ImportError as e:
            self._unavailable("actions", f"not part of this build ({e})")
            return
        blacklist = Blacklist(os.path.join(c.data_dir, "blacklist.json"))
        used = set(rule_actions) | set(c.actions.low + c.actions.medium + c.actions.high + c.actions.critical)
        if c.canaries.enable:
            used |= set(c.canaries.actions)
        if "blacklist" in used or blacklist.entries():
            blocker = ExecBlocker(blacklist, on_event=self.sink)
            try:
                blocker.start()
            except Exception as e:  # ActionUnavailable: no fanotify, no CAP_SYS_ADMIN
                self._unavailable("blacklist", str(e))
            else:
                self.blocker = blocker
                self.status["blacklist"] = None
        try:
            options = ReportOptions(
                osquery_tables=tuple(c.reporting.osquery_tables), timeout=c.reporting.timeout
            )
        except Exception as e:
            self._unavailable("report", str(e))
            options = None
        self.runner = ActionRunner(
            c.dump.dir,
            blocker=self.blocker,
            blacklist=blacklist if self.blocker is None else None,
            max_dumps=c.actions.max_per_process,
            dump_untracked=c.actions.act_on_untracked,
            enable_reporting=c.reporting.enable,
            report_options=options,
            report_context=self.report_context,
            compress=c.dump.compression,
            workers=c.actions.workers,
            on_event=self.sink,
        )
        self.status["actions"] = None
        if c.canaries.enable:
            self._start_canaries()

    def _start_canaries(self) -> None:
        c = self.config
        try:
            from vigil.agent.canaries import CanaryGroup, CanaryManager  # type: ignore[import-not-found,unused-ignore]
        except ImportError as e:
            self._unavailable("canaries", f"not part of this build ({e})")
            return
        try:
            groups = [
                CanaryGroup(directories=g.directories, files=g.files, delete=g.delete)
                for g in c.canaries.groups
            ]
            manager = CanaryManager(
                groups,
                state_path=os.path.join(c.data_dir, "canaries.json"),
                on_event=self.sink,
                whitelist=c.canaries.whitelist,
            )
            backend = manager.start()
        except Exception as e:
            self._unavailable("canaries", str(e))
            return
        self.canaries = manager
        self.status["canaries"] = None
        logger.info("canaries watched with %s: %d files", backend, len(manager.files))

    def stop(self) -> None:
        if self.canaries is not None:
            self._quietly(self.canaries.stop, "canaries")
            self._quietly(self.canaries.uninstall, "canaries")  # as WHIDS: decoys live while the agent runs
        if self.runner is not None:
            self._quietly(lambda: self.runner.shutdown(wait=True), "action runner")
        if self.blocker is not None:
            self._quietly(self.blocker.stop, "exec blocker")

    def _unavailable(self, part: str, why: str) -> None:
        self.status[part] = why
        logger.warning("%s unavailable: %s", part, why)

    @staticmethod
    def _quietly(fn: Callable[[], Any], what: str) -> None:
        try:
            fn()
        except Exception:
            logger.exception("stopping %s failed", what)
