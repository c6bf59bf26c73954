"""Exec-to-kill latency of the exec blacklist, on unique test binaries only.

Two paths, one JSON object:
- ``deny``: the fanotify exec-permission blocker. Time from posix_spawn() of a blacklisted binary to
  its EPERM, against spawning an allowed binary with and without the blocker. Runs in a child in a
  private mount namespace with only a private tmpfs marked, under ``timeout -s KILL``.
- ``kill_at_exec``: the backstop for memfd and unmarked filesystems. A netlink process-connector
  listener sees the exec, ``ExecBlocker.check_exec`` hashes /proc/PID/exe and kills through a pidfd;
  time from posix_spawn() to the process being dead (its pidfd readable).

Usage (root): .venv/bin/python bench/agent_kill.py [--runs N]
The responder runs in its child process (the agent's default). A thread responder cannot be
measured this way: os.posix_spawn holds the GIL while the exec waits for the responder, a deadlock.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import resource
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vigil.agent.actions.blacklist import ExecBlocker
from vigil.agent.actions.blacklist_store import Blacklist

NETLINK_CONNECTOR, CN_IDX_PROC, PROC_EVENT_EXEC = 11, 1, 0x2


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 3)


def unique_binary(src: str, dst: str, tag: str) -> str:
    shutil.copyfile(src, dst)
    with open(dst, "ab") as f:
        f.write(b"\0VIGIL-BENCH-" + tag.encode())
    os.chmod(dst, 0o755)
    return dst


# -- deny path (child in a private mount namespace) -----------------------------------------------
def deny_child(root: str, runs: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"none", b"/", None, (1 << 14) | (1 << 18), None) != 0:  # MS_REC | MS_PRIVATE
        raise OSError(ctypes.get_errno(), "make / private")
    if libc.mount(b"vigil-bench", root.encode(), b"tmpfs", 0, b"size=64m") != 0:
        raise OSError(ctypes.get_errno(), "mount tmpfs")
    evil = unique_binary("/bin/true", os.path.join(root, "evil"), os.urandom(8).hex())
    plain = unique_binary("/bin/true", os.path.join(root, "plain"), os.urandom(8).hex())
    with open(evil, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()

    def spawn(path: str) -> tuple[float, bool]:
        t0 = time.perf_counter()
        try:
            pid = os.posix_spawn(path, [path], {})
        except PermissionError:
            return time.perf_counter() - t0, False
        dt = time.perf_counter() - t0
        os.waitpid(pid, 0)
        return dt, True

    baseline = [spawn(plain)[0] for _ in range(runs)]
    blacklist = Blacklist(None)
    with ExecBlocker(blacklist, mounts=[root]) as blocker:
        empty = [spawn(plain)[0] for _ in range(runs)]  # nothing to block: no marks at all
        blocker.block(digest, "bench")
        allowed = [spawn(plain)[0] for _ in range(runs)]
        denied_runs = [spawn(evil) for _ in range(runs)]
    counters = dict(blocker.counters)
    assert not any(ok for _, ok in denied_runs), "a blacklisted exec was allowed"
    denied = [dt for dt, _ in denied_runs]
    print(
        json.dumps(
            {
                "spawn_no_blocker_ms_p50": pct(baseline, 0.5),
                "spawn_no_blocker_ms_p99": pct(baseline, 0.99),
                "spawn_empty_blacklist_ms_p50": pct(empty, 0.5),
                "spawn_empty_blacklist_ms_p99": pct(empty, 0.99),
                "spawn_allowed_ms_p50": pct(allowed, 0.5),
                "spawn_allowed_ms_p99": pct(allowed, 0.99),
                "exec_to_deny_ms_p50": pct(denied, 0.5),
                "exec_to_deny_ms_p99": pct(denied, 0.99),
                "denied": counters["denied"],
                "errors": counters["errors"],
            }
        )
    )


def run_deny(runs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as root:
        argv = ["timeout", "-s", "KILL", "120", "unshare", "--mount", sys.executable, __file__]
        argv += ["--deny-child", root, "--runs", str(runs)]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"deny child failed: {proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- kill-at-exec path ----------------------------------------------------------------------------
class ExecListener(threading.Thread):
    """Minimal netlink process-connector reader: calls ``on_exec(pid)`` for every exec."""

    def __init__(self, on_exec) -> None:
        super().__init__(daemon=True)
        self.on_exec = on_exec
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        self.sock.bind((os.getpid(), CN_IDX_PROC))
        cn = struct.pack("=IIIIHH", CN_IDX_PROC, 1, 0, 0, 4, 0) + struct.pack("=I", 1)  # MCAST_LISTEN
        self.sock.send(struct.pack("=IHHII", 16 + len(cn), 3, 0, 0, os.getpid()) + cn)
        self.stop = False

    def run(self) -> None:
        while not self.stop:
            data = self.sock.recv(8192)
            off = 0
            while off + 16 <= len(data):
                nl_len = struct.unpack_from("=I", data, off)[0]
                what = struct.unpack_from("=I", data, off + 36)[0]
                if what == PROC_EVENT_EXEC:
                    pid = struct.unpack_from("=I", data, off + 52)[0]
                    self.on_exec(pid)
                off += max(nl_len, 16)


def run_kill_at_exec(runs: int) -> dict:
    work = tempfile.mkdtemp(prefix="vigil-bench-")
    stand_in = subprocess.Popen(["sleep", "600"])  # plays the agent: the bench's own children are fair game
    try:
        evil = unique_binary("/bin/sleep", os.path.join(work, "evil-sleep"), os.urandom(8).hex())
        with open(evil, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        blacklist = Blacklist(None)
        blacklist.add(digest, "bench")
        blocker = ExecBlocker(blacklist, mounts=[], agent_pid=stand_in.pid)
        ours: set[int] = set()
        killed: set[int] = set()
        lock = threading.Lock()

        def on_exec(pid: int) -> None:
            with lock:
                mine = pid in ours
            if mine and blocker.check_exec(pid):
                killed.add(pid)

        listener = ExecListener(on_exec)
        listener.start()
        latencies = []
        for _ in range(runs):
            t0 = time.perf_counter()
            with lock:
                pid = os.posix_spawn(evil, [evil, "30"], {})
                ours.add(pid)
            pidfd = os.pidfd_open(pid)
            ready, _, _ = select.select([pidfd], [], [], 5)
            latencies.append(time.perf_counter() - t0)
            os.close(pidfd)
            if not ready:
                os.kill(pid, 9)
            os.waitpid(pid, 0)
        listener.stop = True
        return {
            "exec_to_kill_ms_p50": pct(latencies, 0.5),
            "exec_to_kill_ms_p99": pct(latencies, 0.99),
            "exec_to_kill_ms_max": pct(latencies, 1.0),
            "killed": len(killed),
        }
    finally:
        stand_in.kill()
        stand_in.wait()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--deny-child")
    args = ap.parse_args()
    if args.deny_child:
        deny_child(args.deny_child, args.runs)
        return
    if os.geteuid() != 0:
        raise SystemExit("agent_kill bench needs root (fanotify permission events, netlink connector)")
    t0 = time.perf_counter()
    deny = run_deny(args.runs)
    kill = run_kill_at_exec(args.runs)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "name": "agent_kill",
                "events": 4 * args.runs,
                "seconds": round(seconds, 3),
                "events_per_s": round(4 * args.runs / seconds, 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "runs": args.runs,
                "responder": "process",
                "deny": deny,
                "kill_at_exec": kill,
            }
        )
    )


if __name__ == "__main__":
    main()
