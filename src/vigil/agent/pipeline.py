"""The pipeline: sources -> bounded queue -> one thread (hooks, self filter, detection) -> actions, outputs.

Sources call :meth:`Pipeline.submit` from their own threads; it never blocks: when the queue is full
the event is dropped and counted. One pipeline thread takes events in batches, runs the enrichment
hooks, drops events of the agent itself and its children, asks the :class:`~vigil.agent.detection.Detector`
what to do, hands alerts' actions to the action runner and reported events to every output, and
flushes the outputs after each batch. Each stage counts received, emitted, dropped and latency; the
counters are logged every ``stats_interval`` seconds and at stop.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import orjson

from vigil.agent.counters import StatsBoard
from vigil.agent.detection import Detector
from vigil.agent.outputs import Output

__all__ = ["ActionSink", "Hook", "Pipeline", "SelfFilter"]

logger = logging.getLogger(__name__)

_IDLE_TICK_S = 1.0  # an idle pipeline flushes outputs and checks the stats timer this often

#: An enrichment hook: returns the (possibly modified) event, or None to drop it.
Hook = Callable[[dict[str, Any]], dict[str, Any] | None]


class ActionSink(Protocol):
    """What the pipeline needs of the action runner."""

    def submit(self, actions: Sequence[str], event: dict[str, Any], process: Any) -> Any: ...


class ProcessLookup(Protocol):
    """What the pipeline needs of the sensor's process tracker."""

    def get_by_guid(self, guid: str) -> Any: ...

    def resolve(self, pid: int) -> Any:
        """The tracked process (live, or exited within its grace period), else read from /proc.

        Events that do not come through the sensor (canary hits, blocked execs) may arrive before
        the sensor has seen the exec of their process; /proc still knows it.
        """

    def add_detection(self, guid: str, signatures: list[str], criticality: int) -> None:
        """Count an alert against the process (WHIDS' threat score)."""


class SelfFilter:
    """Recognises events of the agent's own process and of every process it started.

    Descendants are learnt from ProcessCreate events (a parent in the set adds the child) and
    forgotten on ProcessTerminate, so pid reuse does not hide someone else's process.
    """

    def __init__(self, pid: int | None = None) -> None:
        self.own = str(os.getpid() if pid is None else pid)
        self.pids: set[str] = {self.own}

    def __call__(self, event: dict[str, Any]) -> bool:
        ev = event.get("Event") or {}
        data = ev.get("EventData") or {}
        pid = str(data.get("ProcessId", ""))
        eid = (ev.get("System") or {}).get("EventID")
        if pid in self.pids:
            if eid == 5 and pid != self.own:
                self.pids.discard(pid)
            return True
        if eid == 1 and str(data.get("ParentProcessId", "")) in self.pids:
            self.pids.add(pid)
            return True
        return False


class Pipeline:
    def __init__(
        self,
        detector: Detector,
        outputs: Iterable[Output],
        *,
        actions: ActionSink | None = None,
        tracker: ProcessLookup | None = None,
        hooks: Iterable[Hook] = (),
        is_self: Callable[[dict[str, Any]], bool] | None = None,
        queue_size: int = 65536,
        batch_size: int = 512,
        stats_interval: float = 30.0,
        board: StatsBoard | None = None,
        inline: bool = False,
    ) -> None:
        self.detector = detector
        # inline: submit() runs hooks, detection, actions and outputs in the caller's thread (under
        # _work_lock) instead of queueing for the pipeline thread: at ordinary rates the hand-off
        # (a wakeup and a GIL switch per event) cost more CPU than the work. The thread then only
        # flushes outputs of non-alert events and logs counters on its tick.
        self.inline = inline
        self._work_lock = threading.Lock()
        self.outputs = list(outputs)
        self.actions = actions
        self.tracker = tracker
        self.hooks = list(hooks)
        self.is_self = is_self if is_self is not None else SelfFilter()
        self.batch_size = batch_size
        self.stats_interval = stats_interval
        self.board = board if board is not None else StatsBoard()
        # SimpleQueue (no Condition per put and get, unlike queue.Queue), bounded by checking its
        # size at intake, which the intake lock serializes.
        self._queue: queue.SimpleQueue[tuple[float, dict[str, Any], bool] | None] = queue.SimpleQueue()
        self._maxsize = queue_size
        self._accepted = 0  # events queued (written under the intake lock)
        self._finished = 0  # events taken off the queue and handled (written by the pipeline thread)
        self._intake_lock = threading.Lock()
        self._accepting = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.intake = self.board.stage("intake")
        self.hook_stage = self.board.stage("hooks")
        self.detect = self.board.stage("detect")
        self.act = self.board.stage("actions")
        self.out = {o.name: self.board.stage(f"output.{o.name}") for o in self.outputs}
        self.total = self.board.stage("pipeline")
        self._last_stats = time.monotonic()
        self._window_start = self._last_stats
        self._window_events = 0
        self._error_logs = 0
        #: Called when counters are logged; its dict goes under "sources" (the agent sets it).
        self.extra_stats: Callable[[], dict[str, Any]] | None = None

    # -- intake (any thread) -------------------------------------------------------------------------
    def submit(self, event: dict[str, Any], *, act: bool = True) -> None:
        """The sink handed to sources: enqueue without blocking, count a drop when full or closed.

        ``act=False`` marks events that describe no live process (replayed, recorded): they are
        detected and reported, never acted on, since their pids may now belong to someone else.
        """
        with self._intake_lock:
            self.intake.received += 1
            if not self._accepting:
                self.intake.dropped += 1
                return
            if self._maxsize and self._queue.qsize() >= self._maxsize:
                self.intake.dropped += 1
                if self.intake.dropped in (1, 100) or self.intake.dropped % 10000 == 0:
                    logger.warning("pipeline queue full: %d events dropped so far", self.intake.dropped)
                return
            self._accepted += 1
            self.intake.emitted += 1
            if not self.inline:
                self._queue.put((time.monotonic(), event, act))
                return
        t0 = time.monotonic()
        with self._work_lock:
            try:
                alert = self._process(t0, event, act)
            except Exception:
                alert = False
                self.detect.dropped += 1
                self._log_error("pipeline: event processing failed")
            if alert:
                self._flush()  # alerts reach their outputs at once; other events on the next tick
            self._finished += 1
            self._window_events += 1

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        self._accepting = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="vigil-pipeline", daemon=True)
        self._thread.start()

    def close_intake(self) -> None:
        """Refuse new events (they are counted as dropped); queued ones still drain."""
        with self._intake_lock:
            self._accepting = False

    def drain(self, timeout: float) -> bool:
        """Wait until every queued event went through; False when ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while self._finished < self._accepted:
            if time.monotonic() >= deadline or self._thread is None or not self._thread.is_alive():
                return False
            time.sleep(0.005)
        return True

    def stop(self, timeout: float = 10.0) -> bool:
        """Close intake, drain within ``timeout``, stop the thread, close outputs; True if all drained."""
        self.close_intake()
        drained = self.drain(timeout)
        self._stop.set()
        self._queue.put(None)  # wakes the thread
        if self._thread is not None:
            self._thread.join(timeout=max(1.0, timeout))
        left = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._finished += 1
                left += 1
        if left:
            self.total.dropped += left  # accepted at intake, never processed
            logger.warning("pipeline stopped with %d events not drained within %.1f s", left, timeout)
        for out in self.outputs:
            try:
                out.close()
            except Exception:
                logger.exception("output %s: close failed", out.name)
        self.log_stats(final=True)
        return drained and not left

    # -- the pipeline thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        q = self._queue
        while not self._stop.is_set():
            try:
                # idle: one wakeup per tick (or at the next stats line), no polling
                due = self._last_stats + self.stats_interval - time.monotonic()
                first = q.get(timeout=max(0.0, min(_IDLE_TICK_S, due)))
            except queue.Empty:
                with self._work_lock:
                    self._flush()
                    self._maybe_log_stats()
                continue
            if first is None:
                continue  # stop() wakes us
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    batch.append(item)
            for t0, event, act in batch:
                try:
                    self._process(t0, event, act)
                except Exception:
                    self.detect.dropped += 1
                    self._log_error("pipeline: event processing failed")
            self._flush()
            self._finished += len(batch)
            self._window_events += len(batch)
            self._maybe_log_stats()

    def _process(self, t0: float, event: dict[str, Any], act: bool = True) -> bool:
        """Hooks, detection, actions and outputs for one event; True when it raised an alert."""
        if self.hooks:
            t = time.monotonic()
            self.hook_stage.received += 1
            for hook in self.hooks:
                try:
                    result = hook(event)
                except Exception:
                    self._log_error(
                        f"hook {getattr(hook, '__name__', hook)!r} failed; event passed on unchanged"
                    )
                    continue
                if result is None:
                    self.hook_stage.dropped += 1
                    return False
                event = result
            self.hook_stage.emitted += 1
            self.hook_stage.observe(time.monotonic() - t)

        self.detect.received += 1
        if self.is_self(event):
            self.detect.dropped += 1
            return False
        t = time.monotonic()
        verdict = self.detector.inspect(event)
        self.detect.observe(time.monotonic() - t)
        if verdict.alert:
            self.detect.emitted += 1
            if self.tracker is not None:
                self._score(event)

        if verdict.actions and act and self.actions is not None:
            self._act(verdict.actions, event)

        if verdict.report:
            for out in self.outputs:
                stage = self.out[out.name]
                stage.received += 1
                t = time.monotonic()
                try:
                    out.write(event, alert=verdict.alert)
                    stage.emitted += 1
                except Exception:
                    stage.dropped += 1
                    self._log_error(f"output {out.name}: write failed")
                stage.observe(time.monotonic() - t)
        self.total.received += 1
        self.total.emitted += int(verdict.report)
        self.total.observe(time.monotonic() - t0)
        return bool(verdict.alert and verdict.report)

    def _act(self, actions: Sequence[str], event: dict[str, Any]) -> None:
        assert self.actions is not None
        self.act.received += 1
        t = time.monotonic()
        process = self._process_of(event) if self.tracker is not None else None
        try:
            accepted = self.actions.submit(list(actions), event, process)
            if accepted is False:  # the runner's queue is full
                self.act.dropped += 1
            else:
                self.act.emitted += 1
        except Exception:
            self.act.dropped += 1
            self._log_error("actions: submit failed")
        self.act.observe(time.monotonic() - t)

    def _process_of(self, event: dict[str, Any]) -> Any:
        """The event's process: by ProcessGuid, else by pid; never a different process that reused the pid."""
        assert self.tracker is not None
        data = event.get("Event", {}).get("EventData") or {}
        guid = data.get("ProcessGuid")
        guid = guid if isinstance(guid, str) and guid else None
        if guid is not None:
            process = self.tracker.get_by_guid(guid)
            if process is not None:
                return process
        try:
            process = self.tracker.resolve(int(data.get("ProcessId", "")))
        except (TypeError, ValueError):
            return None
        if process is not None and guid is not None and getattr(process, "guid", guid) != guid:
            return None  # the pid now belongs to another process
        return process

    def _score(self, event: dict[str, Any]) -> None:
        assert self.tracker is not None
        ev = event.get("Event", {})
        guid = (ev.get("EventData") or {}).get("ProcessGuid")
        detection = ev.get("Detection") or {}
        if isinstance(guid, str) and guid:
            try:
                self.tracker.add_detection(
                    guid, list(detection.get("Signature", [])), int(detection.get("Criticality", 0))
                )
            except Exception:
                self._log_error("tracker: add_detection failed")

    def _flush(self) -> None:
        for out in self.outputs:
            try:
                out.flush()
            except Exception:
                self._log_error(f"output {out.name}: flush failed")

    def _log_error(self, message: str) -> None:
        self._error_logs += 1
        if self._error_logs <= 10 or self._error_logs % 1000 == 0:
            logger.exception("%s (%d errors so far)", message, self._error_logs)

    # -- counters -----------------------------------------------------------------------------------
    def _maybe_log_stats(self) -> None:
        if time.monotonic() - self._last_stats >= self.stats_interval:
            self.log_stats()

    def log_stats(self, *, final: bool = False) -> dict[str, Any]:
        """Log the per-stage counters as one JSON object (and return it); resets latency windows."""
        now = time.monotonic()
        elapsed = max(now - self._window_start, 1e-9)
        snap: dict[str, Any] = {
            "stages": self.board.snapshot(),
            "eps": round(self._window_events / elapsed, 1),
            "queued": self._queue.qsize(),
        }
        for out in self.outputs:
            snap["stages"][f"output.{out.name}"]["output"] = out.stats()
        if self.extra_stats is not None:
            try:
                snap["sources"] = self.extra_stats()
            except Exception:
                logger.exception("source statistics failed")
        self._last_stats = self._window_start = now
        self._window_events = 0
        if not final and self._maxsize and snap["queued"] * 2 >= self._maxsize:
            logger.warning(
                "pipeline falling behind: %d events queued of %d (pipeline.queue_size); beyond it events are dropped",
                snap["queued"],
                self._maxsize,
            )
        logger.info(
            "%s %s", "final stats" if final else "stats", orjson.dumps(snap).decode(), extra={"stats": snap}
        )
        return snap
