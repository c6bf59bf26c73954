"""The sensor: starts the event sources and turns their raw records into enriched Sysmon events.

Sources run in their own threads and hand raw records to the sensor, which handles each one in
the calling thread under one lock (records keep one order): it merges them (cn_proc exec + audit
EXECVE by pid), keeps the process tracker current, builds Sysmon-shaped events, runs the
enrichment hooks and hands each event to the caller's sink. The sensor's own thread only keeps
time (held records' deadlines, expiry of exited processes). The agent never reports on itself or
its children (`exclude_pids` and their descendants).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from vigil.agent.enrich import HookContext, HookRegistry, default_hooks
from vigil.agent.hashing import MAX_HASH_BYTES, Hasher, stat_key
from vigil.agent.records import EventBuilder
from vigil.agent.sources.base import EventSource, RawRecord
from vigil.agent.sources.loop import SourceLoop
from vigil.agent.sources.registry import DEFAULT_SOURCES, FALLBACKS, create_source
from vigil.agent.sysmon import AGENT_HEALTH, EventFactory
from vigil.agent.tracker import ProcessInfo, ProcessTracker

logger = logging.getLogger(__name__)

EventSink = Callable[[dict[str, Any]], None]
_AUDIT_WAIT_S = 1.0  # how long a pid-only cn_proc exec waits for its audit EXECVE record (at most)
_SYNC_WAIT_S = 2.0  # how long a record that overtook its process's exec waits for it (at most)
_IMAGE_WAIT_S = 1.0  # how long an exec of a process already gone waits for fanotify's image hashes
_HASH_WAIT_S = 10.0  # an exec whose image is being hashed by the worker (big binaries)
_TICK_S = 0.1  # while records are held, the timer looks at their deadlines this often at least
_PARENT_GRACE_S = 0.1  # a child's exec waits for its parent's held exec: the parent's deadline + this
_STOP = object()
_PROCESS_RECORDS = ("exit", "connect", "dns", "file_create", "file_delete", "module")
_HOLDABLE = _PROCESS_RECORDS[1:]  # an exit never overtakes its exec: cn_proc keeps them in order


class Sensor:
    """Facade over sources, tracker and enrichment. See docs/agent-events.md for the output."""

    def __init__(
        self,
        *,
        sources: list[str] | None = None,
        watch_paths: list[str] | None = None,
        exclude_pids: set[int] | None = None,
        hostname: str | None = None,
        source_options: Mapping[str, Mapping[str, Any]] | None = None,
        hooks: HookRegistry | None = None,
        queue_size: int = 65536,
        extra_sources: list[EventSource] | None = None,
        shared_reader: bool = True,
        coalesce_s: float = 0.002,
    ) -> None:
        self.watch_paths = list(watch_paths or [])
        self.exclude_pids = set(exclude_pids) if exclude_pids is not None else {os.getpid()}
        self.factory = EventFactory(hostname)
        self.tracker = ProcessTracker()
        self.hooks = hooks or default_hooks()
        self._names = list(sources) if sources is not None else list(DEFAULT_SOURCES)
        if self.watch_paths and sources is None and "files" not in self._names:
            self._names.append("files")
        self._options = {k: dict(v) for k, v in (source_options or {}).items()}
        if self.watch_paths:
            self._options.setdefault("files", {}).setdefault("paths", self.watch_paths)
        self._extra = list(extra_sources or [])
        # cn_proc, audit and fanotify_exec share one reader thread (sources/loop.py)
        self._loop: SourceLoop | None = SourceLoop(coalesce_s=coalesce_s) if shared_reader else None
        # Records are handled in the source's thread under this lock (see _put); the queue only
        # wakes the timer thread and stops it.
        self._lock = threading.RLock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._queue_size = queue_size  # kept for callers; records no longer wait in a queue
        self._timer_idle = False
        self._stopped = False
        self._next_due = float("inf")  # the earliest deadline in _pending
        self._sources: dict[str, EventSource] = {}
        self._status: dict[str, str | None] = {}
        self._sink: EventSink | None = None
        self._thread: threading.Thread | None = None
        self._builder = EventBuilder(self.factory, self.tracker)
        self._pending: dict[int, tuple[float, RawRecord, list[RawRecord]]] = {}
        self._hasher: Hasher | None = None
        self._audit_seen: dict[int, int] = {}
        self._children_waiting: dict[int, list[int]] = {}  # ppid -> children whose exec waits for it
        self._stopping = False
        self._audit_exec = False
        self._audit_net = False
        self._fanotify_exec = False
        self._exec_sources = False
        self.sockets: dict[int, RawRecord] = {}
        self.counters = {
            "received": 0,
            "emitted": 0,
            "dropped": 0,
            "excluded": 0,
            "queue_full": 0,
            "errors": 0,
            "parent_waits": 0,
        }
        self.latency_ns_total = 0

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, sink: EventSink) -> None:
        self._sink = sink
        self._stopping = False
        self._stopped = False
        self.tracker.seed()
        self._hasher = Hasher(self.tracker.hash_cache)
        self._thread = threading.Thread(target=self._timer, name="vigil-sensor", daemon=True)
        self._thread.start()
        wanted = list(self._names)
        candidates: list[EventSource] = []
        for name in wanted:
            try:
                candidates.append(create_source(name, self._options.get(name, {}), self.tracker))
            except (ValueError, TypeError) as e:
                self._unavailable(name, f"bad options: {e}")
            except ImportError as e:
                self._unavailable(name, f"not importable: {e}")
        candidates.extend(self._extra)
        if self._loop is not None:
            self._loop.start()
            for src in candidates:
                src.attach_loop(self._loop)
        for src in candidates:
            self._start_source(src)
        for name, fallback in FALLBACKS.items():
            if name in wanted and self._status.get(name) is not None and fallback not in self._sources:
                logger.info("sensor: %s is unavailable, starting %s instead", name, fallback)
                fb = create_source(fallback, self._options.get(fallback, {}), self.tracker)
                if self._loop is not None:
                    fb.attach_loop(self._loop)
                self._start_source(fb)
        audit = self._sources.get("audit")
        rule_sets = getattr(audit, "rule_sets", ())
        self._audit_exec = audit is not None and "exec" in rule_sets
        self._audit_net = audit is not None and "net" in rule_sets
        self._fanotify_exec = "fanotify_exec" in self._sources
        self._exec_sources = self._audit_exec or "proc_connector" in self._sources

    def _start_source(self, src: EventSource) -> None:
        unmet = src.requirements()
        if unmet:
            self._unavailable(src.name, "; ".join(unmet))
            return
        try:
            src.start(self._put)
        except Exception as e:
            try:
                src.stop()
            except Exception:
                logger.exception("sensor: cleaning up %s failed", src.name)
            self._unavailable(src.name, f"could not start: {e}")
            return
        self._sources[src.name] = src
        self._status[src.name] = None
        logger.info("sensor: source %s running", src.name)

    def _unavailable(self, name: str, why: str) -> None:
        self._status[name] = why
        logger.warning("sensor: source %s is unavailable: %s", name, why)
        self._put({"type": "health", "source": name, "state": "unavailable", "message": why})

    def stop(self) -> None:
        for src in list(self._sources.values()):
            try:
                src.stop()
            except Exception:
                logger.exception("sensor: stopping %s failed", src.name)
        self._sources.clear()
        if self._loop is not None:
            self._loop.stop()
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=10)
            self._thread = None
        if self._hasher is not None:
            self._hasher.stop()
            self._hasher = None

    def status(self) -> dict[str, str | None]:
        """Source name -> None when running, else why it is not."""
        return dict(self._status)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.counters)
        out["queued"] = self._queue.qsize()
        out["pending"] = len(self._pending)
        out["sources"] = {name: src.stats() for name, src in self._sources.items()}
        out["hook_errors"] = self.hooks.errors
        out["hash_cache"] = {"hits": self.tracker.hash_cache.hits, "misses": self.tracker.hash_cache.misses}
        out["hash_origins"] = dict(self.tracker.hash_origins)
        return out

    @property
    def sources(self) -> dict[str, EventSource]:
        return dict(self._sources)

    # -- pipeline --------------------------------------------------------------------------------
    def _put(self, record: RawRecord) -> None:
        """The sources' sink: the record is handled at once, in the calling source's thread.

        Handing each record to a sensor thread cost a thread wakeup and a GIL hand-off per record
        (about five per exec), which dominated the agent's CPU at ordinary exec rates. The lock
        keeps records in one order, as the queue did; the sensor thread only keeps time (held
        records' deadlines, the expiry of exited processes).
        """
        record["_t"] = time.monotonic_ns()
        with self._lock:
            if self._stopped:
                self.counters["dropped"] += 1
                return
            self.counters["received"] += 1
            try:
                self._handle(record)
            except Exception:
                self.counters["errors"] += 1
                logger.exception("sensor: could not handle %s record", record.get("type"))
            if self._pending and time.monotonic() >= self._next_due:
                self._flush_pending()
            if self._timer_idle and (self._pending or self.tracker.has_exited()):
                self._timer_idle = False
                self._queue.put(None)  # the timer sleeps without a deadline: give it one

    def _hold(self, pid: int, deadline: float, rec: RawRecord, later: list[RawRecord]) -> None:
        """Keep `rec` (and the records behind it) of `pid` until `deadline` at most."""
        self._pending[pid] = (deadline, rec, later)
        self._next_due = min(self._next_due, deadline)

    def _timer(self) -> None:
        """Releases held records at their deadline and expires exited processes; sleeps when
        there is nothing to wait for (an idle sensor makes no wakeups)."""
        last_expire = time.monotonic()
        get = self._queue.get
        while True:
            with self._lock:
                now = time.monotonic()
                if self._pending:
                    timeout: float | None = min(_TICK_S, max(0.0, self._next_due - now))
                else:
                    timeout = 1.0 if self.tracker.has_exited() else None
                self._timer_idle = timeout is None
            try:
                item = get(timeout=timeout)
            except queue.Empty:
                item = None
            with self._lock:
                if item is _STOP:
                    self._flush_pending(force=True)
                    self._stopped = True
                    return
                now = time.monotonic()
                if self._pending and now >= self._next_due:
                    self._flush_pending()
                if now - last_expire > 1.0:
                    self.tracker.expire()
                    last_expire = now

    def _handle(self, rec: RawRecord) -> None:
        typ = rec.get("type")
        pid = rec.get("pid", -1)
        if typ == "fork":
            info = self.tracker.on_fork(pid, rec["ppid"], rec.get("mono_ns"))
            self._excluded(info)
            return
        if typ == "exec":
            self._on_exec(rec)
            return
        if typ == "socket_closed":
            self.sockets.pop(rec["inode"], None)
            return
        if typ == "exit":
            self._audit_seen.pop(pid, None)  # a cn_proc exec that never came is not awaited
        if typ == "hashed":
            pending = self._pending.get(pid)
            if pending is not None and pending[1].get("_await_hash"):
                del self._pending[pid]
                self._process_chain(pending[1], pending[2])
            else:
                known = self.tracker.get(pid)
                if known is not None and not known.hashes:
                    self.tracker.hash_from_cache(known)  # a process older than the agent
            return
        if typ == "image":
            self._process(rec)  # remembers the hashes for the exec
            pending = self._pending.get(pid)
            if (
                pending is not None
                and pending[1].get("source") == "audit"
                and not pending[1].get("_await_parent")
            ):
                del self._pending[pid]
                self._process_chain(pending[1], pending[2])
            return
        if typ in _HOLDABLE and pid not in self._pending and self._exec_not_seen_yet(pid):
            # Sources race: this record overtook the exec of its process. Hold it until the exec
            # is processed (or a moment has passed), so it is attributed to the new image.
            self._hold(
                pid, time.monotonic() + _SYNC_WAIT_S, {"type": "exec", "pid": pid, "source": "sync"}, []
            )
        if pid in self._pending and typ in _PROCESS_RECORDS:
            _deadline, first, later = self._pending[pid]
            if typ == "exit" and first.get("source") == "sync":
                # cn_proc reports exec before exit: no exec is in flight any more
                del self._pending[pid]
                for item in later:
                    self._process(item)
                self._process(rec)
                return
            later.append(rec)  # keep order: ProcessCreate first
            return
        if typ == "socket":
            self.sockets[rec["inode"]] = rec
            if self._audit_net or not (
                rec["proto"].startswith("tcp") and rec["state"] in ("ESTABLISHED", "SYN_SENT")
            ):
                return
        self._process(rec)

    def _on_exec(self, rec: RawRecord) -> None:
        pid = rec["pid"]
        if rec.get("source") == "audit":
            pending = self._pending.pop(pid, None)
            later: list[RawRecord] = []
            if pending is not None and pending[1].get("source") == "audit":
                # an earlier exec of this pid still waited for its image hash: it goes first
                pending[1]["_await_hash"] = False
                self._process_chain(pending[1], pending[2])
                pending = None
            if pending is None or pending[1].get("source") != "proc_connector":
                self._audit_seen[pid] = self._audit_seen.get(pid, 0) + 1  # cn_proc's exec is still to come
            if pending is not None:
                later = pending[2]
            if (
                self._fanotify_exec
                and not self.tracker.has_exec_image(pid)
                and not os.path.exists(f"/proc/{pid}/exe")
            ):
                # The process is gone, so /proc/PID/exe cannot give the executed file and the path
                # may name another one by now: wait for fanotify's race-free image hash.
                self._hold(pid, time.monotonic() + _IMAGE_WAIT_S, rec, later)
                return
            self._process_chain(rec, later)
            return
        # pid-only exec (cn_proc, procpoll)
        seen = self._audit_seen.get(pid, 0)
        if seen:
            if seen == 1:
                del self._audit_seen[pid]
            else:
                self._audit_seen[pid] = seen - 1
            return
        pending = self._pending.get(pid)
        if self._audit_exec and rec.get("source") == "proc_connector":
            if pending is None:
                self._hold(pid, time.monotonic() + _AUDIT_WAIT_S, rec, [])
            elif pending[1].get("source") == "sync":
                self._hold(pid, pending[0], rec, pending[2])  # still waiting for audit's record
            return
        held: list[RawRecord] = []
        if pending is not None and pending[1].get("source") == "sync":
            del self._pending[pid]
            held = pending[2]
        self._process_chain(rec, held)

    def _exec_not_seen_yet(self, pid: int) -> bool:
        """Whether a record of `pid` may have overtaken the fork or exec of its process.

        Sources run in separate threads, so a file or network record can reach the queue before
        the exec that preceded it in the process. The tracked image is compared with /proc; a
        process already gone is held until its exit (cn_proc keeps exec before exit) or a moment.
        """
        if not self._exec_sources or pid <= 0:
            return False
        info = self.tracker.get(pid)
        if info is None:
            # exited and already known (late record): nothing to wait for; else its fork is on its way
            return self.tracker.find(pid) is None
        try:
            exe = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
        except OSError:
            # gone or a zombie: its exec may be in flight; a kernel thread (no exe) never execs
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                return True
            return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z"
        if exe == info.image:
            info.from_fork = False
            return False
        return True

    def _flush_pending(self, force: bool = False) -> None:
        now = time.monotonic()
        if force:
            self._stopping = True  # nothing waits any more, not even for a parent's exec
        due = [p for p, v in self._pending.items() if force or v[0] <= now]
        self._next_due = min((v[0] for v in self._pending.values() if v[0] > now), default=float("inf"))
        for pid in due:
            entry = self._pending.pop(pid, None)
            if entry is None:
                continue  # released meanwhile (a child waiting for this parent's exec)
            _deadline, rec, later = entry
            if rec.get("source") == "sync":
                info = self.tracker.get(pid)
                if info is not None:
                    info.from_fork = False  # no exec came: the held records belong to the fork
                for item in later:
                    self._process(item)
            else:
                rec["_await_hash"] = False  # past its deadline: hash inline if still needed
                self._process_chain(rec, later)  # no audit record came: enrich from /proc
        for ppid in [p for p in self._children_waiting if p not in self._pending]:
            del self._children_waiting[ppid]  # that parent's exec went without building (bounded)

    def _excluded(self, info: ProcessInfo | None) -> bool:
        if info is None:
            return False
        if info.excluded is None:
            parent = self.tracker.parent_of(info)
            if parent is not None and parent.excluded is not None:
                info.excluded = parent.excluded or info.pid in self.exclude_pids  # decided once per process
            else:
                info.excluded = info.pid in self.exclude_pids or any(
                    p.pid in self.exclude_pids for p in self.tracker.ancestry(info.pid)
                )
        return info.excluded

    def _process_chain(self, first: RawRecord, later: list[RawRecord]) -> None:
        """Process `first`, then `later` in order (behind `first` if it now waits for a hash)."""
        self._process(first)
        pid = first.get("pid")
        pending = self._pending.get(pid) if pid is not None else None
        if pending is not None and pending[1] is first:
            pending[2].extend(later)
            return
        for item in later:
            self._process(item)

    def _needs_hash(self, rec: RawRecord) -> str | None:
        """The image path of an exec whose hashes are not cached yet, else None."""
        pid = rec["pid"]
        if self._hasher is None or not self.tracker.hash_images or self.tracker.has_exec_image(pid):
            return None
        path = rec.get("exe") or ""
        try:
            st = os.stat(f"/proc/{pid}/exe")
        except OSError:
            try:
                st = os.stat(path)
            except OSError:
                return None
        if st.st_mode & 0o170000 != 0o100000 or st.st_size > MAX_HASH_BYTES:
            return None
        return None if self.tracker.hash_cache.peek(stat_key(st)) else path

    def _wait_for_parent_exec(self, rec: RawRecord) -> bool:
        """Hold an exec while the exec of its parent is itself still held; True when held.

        A process may exec and fork a child that execs within the same millisecond. The parent's
        exec can still be held here (waiting for its audit record, for fanotify's image, or for the
        hash of a new binary) when the child's exec arrives; building the child's event then would
        give it the parent's pre-exec image as ParentImage. So the child waits behind the parent's
        exec (at most as long as the parent's own deadline) and is built when the parent is.
        """
        pid = rec["pid"]
        ppid = rec.get("ppid")
        if not ppid or ppid <= 0:
            known = self.tracker.get(pid)
            ppid = known.ppid if known is not None else 0
        held = self._pending.get(ppid) if ppid > 0 else None
        if held is None or self._stopping or held[1].get("type") != "exec" or held[1].get("source") == "sync":
            return False
        mine = self._pending.get(pid)
        if mine is not None and mine[1] is not rec:
            return False  # an earlier record of this pid is held: never replace it
        deadline = rec.setdefault("_parent_deadline", held[0] + _PARENT_GRACE_S)
        if time.monotonic() >= deadline:
            return False
        later = self._pending.pop(pid, (0.0, {}, []))[2]
        rec["_await_parent"] = ppid
        self._hold(pid, deadline, rec, later)
        self._children_waiting.setdefault(ppid, []).append(pid)
        self.counters["parent_waits"] += 1
        return True

    def _release_children(self, ppid: int) -> None:
        """The exec of `ppid` was built: build the children's execs that waited for it."""
        for child in self._children_waiting.pop(ppid, ()):
            entry = self._pending.get(child)
            if entry is not None and entry[1].get("_await_parent") == ppid:
                del self._pending[child]
                entry[1]["_await_parent"] = None
                self._process_chain(entry[1], entry[2])

    def _process(self, rec: RawRecord) -> None:
        if rec.get("type") == "exec" and self._pending and self._wait_for_parent_exec(rec):
            return
        if rec.get("type") == "exec" and "_await_hash" not in rec:
            path = self._needs_hash(rec)
            if path is not None and self._hasher is not None:
                # hash in the worker; this process's records wait, everyone else's go on
                rec["_await_hash"] = True
                pid = rec["pid"]
                later = self._pending.pop(pid, (0.0, {}, []))[2]
                self._hold(pid, time.monotonic() + _HASH_WAIT_S, rec, later)
                self._hasher.submit(pid, path, lambda p: self._put({"type": "hashed", "pid": p}))
                return
        built = self._builder.build(rec)
        if built is not None:
            self._deliver(rec, *built)
        if rec.get("type") == "exec" and self._children_waiting:
            self._release_children(rec["pid"])  # after the parent's own ProcessCreate

    def _deliver(self, rec: RawRecord, event: dict[str, Any], info: ProcessInfo | None) -> None:
        """Filter, enrich and hand a built event to the sink."""
        if self._excluded(info) or rec.get("pid") in self.exclude_pids:
            self.counters["excluded"] += 1
            return
        if info is not None and not info.hashes and not info.hash_requested and self._hasher is not None:
            # known from /proc at start (never exec'd under the agent): hash its image in the
            # background; this event goes without, the next ones carry ImageHashes
            info.hash_requested = True
            if not self.tracker.hash_from_cache(info) and info.image.startswith("/"):
                self._hasher.submit(info.pid, info.image, lambda p: self._put({"type": "hashed", "pid": p}))
        ts_ns = rec.get("ts_ns") or time.time_ns()
        rec["_eid"] = event["Event"]["System"]["EventID"]
        self.hooks.run(event, HookContext(self.tracker, info, rec, ts_ns))
        sink = self._sink
        if sink is None:
            return
        t0 = rec.get("_t")
        if t0:
            self.latency_ns_total += time.monotonic_ns() - t0
        try:
            sink(event)
            self.counters["emitted"] += 1
        except Exception:
            self.counters["dropped"] += 1
            logger.exception("sensor: the event sink raised")

    def health_event(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return self.factory.vigil(AGENT_HEALTH, data, pid=os.getpid())
