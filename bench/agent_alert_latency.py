"""Benchmark: exec-to-alert latency, events lost and CPU per exec of a real `vigil agent run` (root).

    sudo .venv/bin/python bench/agent_alert_latency.py [--execs 500] [--rate 100] [--workers 1]
        [--binary true|static] [--idle-seconds 5]

Starts the agent in standalone mode with one rule that matches a private copy of the test binary,
then measures:

- **idle**: the agent's CPU time (utime+stime of /proc/PID/stat) over ``--idle-seconds`` before
  any load, with the number of execs the rest of the host made meanwhile (the agent sees every
  process on the host; a shared machine is never quiet).
- **load**: a C generator (bench/execgen.py, built with gcc at run time) runs the private binary
  ``--execs`` times at ``--rate`` execs/s, each with a unique argument, recording child pid and
  spawn time. ``alerts.jsonl`` is followed: latency = alert line in the file - spawn; *lost* = a
  spawned pid without an alert carrying its pid and argument; *drain* = last alert - last spawn.
  CPU per exec = the agent's CPU time from the first spawn to the last alert (or the wait limit),
  divided by the execs; also per host exec (ours plus everyone else's, counted by a process-
  connector listener in this process).

``--default-rules`` and ``--rules DIR`` load more rules next to the benchmark's (bench/rule_dirs.py).
``--binary static`` spawns a copy of a static do-nothing program compiled here: an exec of it costs
the kernel about half of dynamic /bin/true's, so a 2-core machine can generate 2 000 execs/s with
the agent running. The agent's work per exec is the same for both. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "src"))

from bench import rule_dirs
from bench.execgen import ExecGen, build
from vigil.agent.sources.proc_connector import ProcConnectorSource

TICK = os.sysconf("SC_CLK_TCK")
AUDIT_LOCK = "/run/vigil-audit-tests.lock"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def thread_times(pid: int) -> dict[int, tuple[float, float, int]]:
    """tid -> (user CPU seconds, system CPU seconds, voluntary context switches) of each thread of `pid`."""
    out: dict[int, tuple[float, float, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            status = (task / "status").read_text()
        except OSError:
            continue
        switches = int(status.split("voluntary_ctxt_switches:", 1)[1].split()[0])
        out[int(task.name)] = (int(fields[11]) / TICK, int(fields[12]) / TICK, switches)
    return out


def thread_names(pid: int) -> dict[int, str]:
    """tid -> Python thread name, from `py-spy dump` when it is installed (else empty)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return {}
    try:
        text = subprocess.run(
            [spy, "dump", "--pid", str(pid)], check=False, capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    names = {}
    for line in text.splitlines():
        if line.startswith("Thread ") and '"' in line:
            head, name = line.split('"', 2)[:2]
            tid = head.split()[1]
            if tid.isdigit():
                names[int(tid)] = name
    return names


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class HostExecs:
    """Counts every exec on the host (cn_proc), to put the agent's CPU per exec in context."""

    def __init__(self) -> None:
        self.execs = 0
        self._lock = threading.Lock()
        self._src = ProcConnectorSource()

    def _sink(self, record: dict[str, Any]) -> None:
        if record.get("type") == "exec":
            with self._lock:
                self.execs += 1

    def __enter__(self) -> HostExecs:
        self._src.start(self._sink)
        return self

    def __exit__(self, *exc: object) -> None:
        self._src.stop()


def static_true(directory: Path) -> Path:
    src = directory / "static-true.c"
    src.write_text("int main(void) { return 0; }\n")
    out = directory / "static-true"
    subprocess.run(["gcc", "-O2", "-static", "-o", str(out), str(src)], check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--execs", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--workers", type=int, default=1, help="generator processes sharing the rate")
    parser.add_argument("--binary", choices=["true", "static"], default="true")
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for alerts after the last spawn"
    )
    parser.add_argument(
        "--threads",
        action="store_true",
        help="also report CPU and wakeups per agent thread (py-spy names them)",
    )
    rule_dirs.add_arguments(parser)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: the agent's kernel sources")

    # Audit state is global: wait for other vigil tests and benchmarks using it (their lock).
    audit_lock = open(AUDIT_LOCK, "w")  # noqa: SIM115 - held for the whole run
    fcntl.flock(audit_lock, fcntl.LOCK_EX)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp_dir, HostExecs() as host:
        tmp = Path(tmp_dir)
        generator = ExecGen(build(tmp_dir), tmp_dir)
        binary = tmp / "vigil-bench-true"
        shutil.copy(static_true(tmp) if args.binary == "static" else Path("/bin/true"), binary)
        data = tmp / "data"
        (data / "rules").mkdir(parents=True)
        rule = {
            "Name": "BenchExec",
            "Meta": {"Events": {"Linux-Sysmon/Operational": [1]}, "Criticality": 5, "Schema": "2.0.0"},
            "Matches": [f"$im: Image = '{binary}'"],
            "Condition": "$im",
        }
        (data / "rules" / "bench.gen").write_text(json.dumps(rule))
        rules_loaded = rule_dirs.install(args, data / "rules")
        config = tmp / "agent.toml"
        config.write_text(f'data_dir = "{data}"\nendpoint = false\nstats_interval = 3600\n')
        log = (tmp / "agent.log").open("wb")
        agent = subprocess.Popen(
            [sys.executable, "-m", "vigil", "-v", "agent", "run", "--config", str(config)], stderr=log
        )
        try:
            deadline = time.monotonic() + 60
            while "agent running" not in (tmp / "agent.log").read_text():
                if agent.poll() is not None or time.monotonic() > deadline:
                    sys.exit("the agent did not start:\n" + (tmp / "agent.log").read_text())
                time.sleep(0.05)
            time.sleep(1.0)  # let start-up work (seeding, first hashes) finish
            idle_cpu0, idle_execs0, idle_t0 = cpu_seconds(agent.pid), host.execs, time.monotonic()
            time.sleep(args.idle_seconds)
            idle_cpu = cpu_seconds(agent.pid) - idle_cpu0
            idle_wall = time.monotonic() - idle_t0
            idle_execs = host.execs - idle_execs0

            alerts_path = data / "logs" / "alerts.jsonl"
            arrived: dict[tuple[int, str], int] = {}
            offset = 0
            buffer = b""

            def follow() -> None:
                nonlocal offset, buffer
                if not alerts_path.exists():
                    return
                with alerts_path.open("rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                if not chunk:
                    return
                now = time.time_ns()
                offset += len(chunk)
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line:
                        ev = json.loads(line)["Event"]["EventData"]
                        tag = ev["CommandLine"].rsplit(" ", 1)[-1]
                        arrived.setdefault((int(ev["ProcessId"]), tag), now)

            run = f"run{os.getpid()}"
            start_ns = time.time_ns() + 300_000_000
            threads0 = thread_times(agent.pid)
            cpu0, execs0, t0 = cpu_seconds(agent.pid), host.execs, time.monotonic()
            proc = generator.start(str(binary), run, args.execs, args.rate, start_ns, args.workers)
            while proc.poll() is None:
                follow()
                time.sleep(0.002)
            spawned = generator.wait()
            last_spawn_ns = max(s.t_ns for s in spawned)
            wait_until = time.monotonic() + args.wait
            while len(arrived) < len(spawned) and time.monotonic() < wait_until:
                follow()
                time.sleep(0.002)
            follow()
            cpu = cpu_seconds(agent.pid) - cpu0
            wall = time.monotonic() - t0
            host_execs = host.execs - execs0
            per_thread: dict[str, Any] = {}
            if args.threads:
                threads1 = thread_times(agent.pid)
                names = thread_names(agent.pid)
                for tid, (tuser, tsys, tsw) in sorted(threads1.items(), key=lambda kv: -kv[1][0] - kv[1][1]):
                    user_a, sys_a, sw_a = threads0.get(tid, (0.0, 0.0, 0))
                    if tuser + tsys - user_a - sys_a > 0 or tsw - sw_a > 0:
                        per_thread[names.get(tid, str(tid))] = {
                            "cpu_ms_per_exec": round(
                                (tuser + tsys - user_a - sys_a) * 1000 / len(spawned), 3
                            ),
                            "sys_ms_per_exec": round((tsys - sys_a) * 1000 / len(spawned), 3),
                            "wakeups_per_exec": round((tsw - sw_a) / len(spawned), 2),
                        }
            loadavg = os.getloadavg()
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=60)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
            log.close()
        text = (tmp / "agent.log").read_text()
        final = json.loads(text.split("final stats ", 1)[1].splitlines()[0]) if "final stats " in text else {}
        pipeline = final.get("stages", {}).get("pipeline", {}).get("latency", {})
        sensor = final.get("sources", {}).get("sensor", {})
        latencies = []
        lost = []
        for s in spawned:
            got = arrived.get((s.pid, f"{run}-{s.n}"))
            if got is None:
                lost.append(s.pid)
            else:
                latencies.append((got - s.t_ns) / 1e6)
        first_ns = min(s.t_ns for s in spawned)
        span = (last_spawn_ns - first_ns) / 1e9
        print(
            json.dumps(
                {
                    "name": "agent_alert_latency",
                    **rules_loaded,
                    "binary": args.binary,
                    "execs": args.execs,
                    "rate": args.rate,
                    "achieved_rate": round((len(spawned) - 1) / span, 1) if span > 0 else None,
                    "alerts": len(latencies),
                    "lost": len(lost),
                    "lost_pids_sample": lost[:10],
                    "alert_p50_ms": round(percentile(latencies, 0.50), 2),
                    "alert_p99_ms": round(percentile(latencies, 0.99), 2),
                    "alert_max_ms": round(max(latencies, default=0.0), 2),
                    "drain_ms": round((max(arrived.values()) - last_spawn_ns) / 1e6, 1) if arrived else None,
                    "pipeline_mean_ms": pipeline.get("mean_ms"),
                    "pipeline_p99_ms": pipeline.get("p99_ms"),
                    "agent_cpu_s": round(cpu, 3),
                    "agent_cpu_percent": round(cpu / wall * 100, 1),
                    "agent_cpu_ms_per_exec": round(cpu * 1000 / len(spawned), 3),
                    "host_execs": host_execs,
                    "agent_cpu_ms_per_host_exec": round(cpu * 1000 / host_execs, 3) if host_execs else None,
                    "idle_agent_cpu_percent": round(idle_cpu / idle_wall * 100, 2),
                    "idle_host_execs_per_s": round(idle_execs / idle_wall, 1),
                    "sensor": {k: sensor.get(k) for k in ("received", "emitted", "dropped", "queue_full")},
                    "loadavg": loadavg,
                    **({"threads": per_thread} if args.threads else {}),
                    "agent_exit": agent.returncode,
                }
            )
        )


if __name__ == "__main__":
    main()
