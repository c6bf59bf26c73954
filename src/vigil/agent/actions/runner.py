"""ActionRunner: run the actions of a detection on its source process, as WHIDS does.

Gates (every run): the process is known (or ``dump_untracked``), it is not the agent nor one of
its children, and its run count is below ``max_dumps`` (per process GUID, all actions together).
Order: blacklist, kill (SIGSTOP first when something is dumped), memdump (once per process),
report or brief (brief wins), filedump, then kill's SIGKILL. Artifact-producing actions also store
the event as ``event.json``, reported as a final ``ActionResult("event", ...)``.

With ``on_event`` each action that ran also gives a `Vigil/Operational` 103 event (ProcessGuid,
ProcessId, Image, Action, Result, Message, Signature, Artifacts). ``run`` is synchronous; ``submit`` queues the job on a pool of ``workers`` threads (2, as WHIDS)
and returns at once (False when the queue is full: the job is counted as dropped).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.agent.actions._proc import is_descendant, sha256_path
from vigil.agent.actions.artifacts import Artifact, ArtifactStore, safe_name
from vigil.agent.actions.blacklist import ExecBlocker
from vigil.agent.actions.blacklist_store import Blacklist
from vigil.agent.actions.errors import ActionError
from vigil.agent.actions.events import RESPONSE_ACTION, Event, operational_event
from vigil.agent.actions.filedump import FileDumper, ProcessLike
from vigil.agent.actions.kill import send_signal
from vigil.agent.actions.memdump import write_core
from vigil.agent.actions.report import ReportOptions, build_report

logger = logging.getLogger(__name__)

ACTIONS = ("blacklist", "kill", "memdump", "report", "brief", "filedump")
ReportContext = Callable[[], Mapping[str, Any]]


@dataclass
class ActionResult:
    """Outcome of one action: ``ok``, a message, and the artifacts it stored."""

    action: str
    ok: bool
    message: str = ""
    artifacts: list[Artifact] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "ok": self.ok,
            "message": self.message,
            "artifacts": [a.to_dict() for a in self.artifacts],
        }


class ActionRunner:
    """Runs detection actions (see module docstring)."""

    def __init__(
        self,
        dump_dir: str | os.PathLike[str],
        *,
        blocker: ExecBlocker | None = None,
        blacklist: Blacklist | None = None,
        max_dumps: int = 4,
        dump_untracked: bool = False,
        enable_reporting: bool = False,
        report_options: ReportOptions | None = None,
        report_context: ReportContext | None = None,
        compress: bool = True,
        workers: int = 2,
        max_queue: int = 256,
        agent_pid: int | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.store = ArtifactStore(dump_dir, compress=compress)
        self.on_event = on_event
        self.store.root.mkdir(parents=True, exist_ok=True)
        self.blocker = blocker
        self.blacklist = blocker.blacklist if blocker is not None else blacklist
        self.max_dumps = max_dumps
        self.dump_untracked = dump_untracked
        self.enable_reporting = enable_reporting
        self.report_options = report_options or ReportOptions()
        self.report_context = report_context
        self.agent_pid = os.getpid() if agent_pid is None else agent_pid
        self.files = FileDumper(self.store)
        self.counters = {"jobs": 0, "dropped": 0, "capped": 0, "refused": 0, "failed": 0}
        self._runs: dict[str, int] = {}
        self._dumped: set[str] = set()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_queue)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vigil-action")

    # -- entry points --------------------------------------------------------------------------
    def submit(self, actions: Sequence[str], event: Mapping[str, Any], process: ProcessLike | None) -> bool:
        """Queue a job without blocking; False when the queue is full (counted as dropped)."""
        if not self._slots.acquire(blocking=False):
            self.counters["dropped"] += 1
            logger.warning(
                "action queue full; dropping %s for pid %s", list(actions), getattr(process, "pid", "?")
            )
            return False

        def job() -> None:
            try:
                self.run(actions, event, process)
            except Exception:
                logger.exception("action job failed")
            finally:
                self._slots.release()

        self._pool.submit(job)
        return True

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def run(
        self, actions: Sequence[str], event: Mapping[str, Any], process: ProcessLike | None
    ) -> list[ActionResult]:
        """Run ``actions`` now; one ActionResult per requested action (plus ``event`` when stored)."""
        wanted = list(dict.fromkeys(a.strip().lower() for a in actions if a and a.strip()))
        if not wanted:
            return []
        self.counters["jobs"] += 1
        unknown = [ActionResult(a, False, f"unknown action {a!r}") for a in wanted if a not in ACTIONS]
        wanted = [a for a in wanted if a in ACTIONS]
        refusal = self._gate(process)
        if refusal:
            self.counters["refused" if "cap" not in refusal else "capped"] += 1
            logger.info("actions %s not run: %s", wanted, refusal)
            return unknown + [ActionResult(a, False, refusal) for a in wanted]
        assert process is not None
        if "brief" in wanted and "report" in wanted:
            wanted.remove("report")
        results = unknown + self._run_gated(wanted, event, process)
        self.counters["failed"] += sum(1 for r in results if not r.ok)
        self._report_results(results, event, process)
        return results

    # -- internals -------------------------------------------------------------------------------
    def _report_results(
        self, results: list[ActionResult], event: Mapping[str, Any], process: ProcessLike
    ) -> None:
        """One `Vigil/Operational` 103 event per action that ran (not for the stored event)."""
        if self.on_event is None:
            return
        sigs = event.get("Event", {}).get("Detection", {}).get("Signature", [])
        for r in results:
            if r.action == "event":
                continue
            data = {
                "ProcessGuid": process.guid or None,
                "ProcessId": process.pid,
                "Image": process.image or None,
                "Action": r.action,
                "Result": "success" if r.ok else "failure",
                "Message": r.message,
                "Signature": ";".join(map(str, sigs)) or None,
                "Artifacts": ";".join(a.path for a in r.artifacts) or None,
            }
            try:
                self.on_event(operational_event(RESPONSE_ACTION, data))
            except Exception:
                logger.exception("response-action event sink failed")

    def _key(self, process: ProcessLike) -> str:
        return process.guid or f"pid-{process.pid}-{getattr(process, 'start_time', 0)}"

    def _gate(self, process: ProcessLike | None) -> str:
        if process is None:
            return "" if self.dump_untracked else "untracked process (dump-untracked is off)"
        if process.pid == self.agent_pid or process.pid == os.getpid():
            return "refusing to act on the agent itself"
        if self.agent_pid > 1 and is_descendant(process.pid, self.agent_pid):
            return "refusing to act on a child of the agent"
        with self._lock:
            key = self._key(process)
            count = self._runs.get(key, 0)
            if count >= self.max_dumps:
                return f"action cap reached for {key} ({self.max_dumps} runs)"
            self._runs[key] = count + 1
        return ""

    def _run_gated(
        self, wanted: list[str], event: Mapping[str, Any], process: ProcessLike
    ) -> list[ActionResult]:
        results: dict[str, ActionResult] = {}
        directory: Path | None = None

        def event_dir() -> Path:
            nonlocal directory
            if directory is None:
                directory = self.store.event_dir(process.guid, event)
            return directory

        dumps = any(a in wanted for a in ("memdump", "filedump", "report", "brief"))
        if "blacklist" in wanted:
            results["blacklist"] = self._blacklist(process, event)
        if "kill" in wanted and dumps:
            stop = self._signal(process, signal.SIGSTOP)
            if not stop.ok:
                results["kill"] = stop
        if "memdump" in wanted:
            results["memdump"] = self._guard("memdump", lambda: self._memdump(process, event_dir()))
        for name in ("report", "brief"):
            if name in wanted:
                results[name] = self._guard(name, functools.partial(self._report, name, event_dir))
        if "filedump" in wanted:
            results["filedump"] = self._guard("filedump", lambda: self._filedump(process, event, event_dir()))
        if "kill" in wanted and "kill" not in results:
            results["kill"] = self._signal(process, signal.SIGKILL)
        ordered = [results[a] for a in wanted if a in results]
        if directory is not None:
            art = self.store.write_json(directory, "event.json", event, "event")
            ordered.append(ActionResult("event", True, "event stored", [art]))
        return ordered

    def _guard(self, action: str, fn: Callable[[], ActionResult]) -> ActionResult:
        try:
            return fn()
        except ActionError as exc:
            return ActionResult(action, False, str(exc))
        except OSError as exc:
            logger.warning("%s failed: %s", action, exc)
            return ActionResult(action, False, f"{type(exc).__name__}: {exc}")

    def _signal(self, process: ProcessLike, sig: int) -> ActionResult:
        ticks = getattr(process, "start_ticks", None) or None  # 0: unknown
        try:
            send_signal(process.pid, sig, agent_pid=self.agent_pid, start_ticks=ticks)
        except ActionError as exc:
            return ActionResult("kill", False, str(exc))
        return ActionResult("kill", True, f"{signal.Signals(sig).name} sent to pid {process.pid}")

    def _blacklist(self, process: ProcessLike, event: Mapping[str, Any]) -> ActionResult:
        if self.blacklist is None:
            return ActionResult("blacklist", False, "no exec blacklist configured")
        digest = getattr(process, "sha256", "") or (getattr(process, "hashes", None) or {}).get("sha256", "")
        if not digest:
            try:
                digest = sha256_path(f"/proc/{process.pid}/exe")
            except OSError as exc:
                return ActionResult("blacklist", False, f"cannot hash the image of pid {process.pid}: {exc}")
        sigs = event.get("Event", {}).get("Detection", {}).get("Signature", [])
        reason = f"{process.image} ({', '.join(map(str, sigs)) or 'manual'})"
        try:
            self.blacklist.add(digest, reason)
        except ActionError as exc:
            return ActionResult("blacklist", False, str(exc))
        return ActionResult("blacklist", True, f"sha256 {digest} blacklisted")

    def _memdump(self, process: ProcessLike, directory: Path) -> ActionResult:
        key = self._key(process)
        with self._lock:
            if key in self._dumped:
                return ActionResult("memdump", False, f"memory of {key} already dumped")
            self._dumped.add(key)
        name = f"{safe_name(os.path.basename(process.image) or 'proc')}_{process.pid}_{time.time_ns()}.core"
        meta = {"pid": process.pid, "image": process.image, "process_guid": process.guid}
        with self.store.writer(directory, name, "memdump", meta) as w:
            summary = write_core(process.pid, w)
        assert w.artifact is not None
        msg = (
            f"{summary.regions} regions, {summary.memory_bytes} bytes ({summary.unreadable_bytes} unreadable)"
        )
        return ActionResult("memdump", True, msg, [w.artifact])

    def _report(self, name: str, directory: Callable[[], Path]) -> ActionResult:
        if not self.enable_reporting:
            return ActionResult(name, False, "reporting is disabled (reporting.enable)")
        context = dict(self.report_context()) if self.report_context is not None else {}
        report = build_report(brief=name == "brief", options=self.report_options, **context)
        art = self.store.write_json(directory(), "report.json", report, name)
        return ActionResult(name, True, f"{len(report['processes'])} processes", [art])

    def _filedump(self, process: ProcessLike, event: Mapping[str, Any], directory: Path) -> ActionResult:
        arts = self.files.dump(process, event, directory)
        copied = sum(1 for a in arts if a.kind == "file")
        return ActionResult("filedump", True, f"{copied} files copied, {len(arts) - copied} hashes", arts)
