"""Agent sensor benchmark: exec-to-event latency, events lost under load, CPU at a steady rate.

    sudo .venv/bin/python bench/agent_latency.py [--seconds 3] [--rates 500,2000] [--cpu-rate 100]

The C exec generator (bench/execgen.py, built with gcc at run time) runs `/bin/true bench-<run>-<n>`
with posix_spawn at a fixed total rate (`--workers` processes share it) and records the
wall-clock time just before each spawn. The sensor (cn_proc +
audit + fanotify exec hashes, as the agent runs by default) delivers ProcessCreate events to a
sink that records when each arrived. Latency = arrival - spawn; lost = spawned processes without
a ProcessCreate carrying their full command line. CPU = this process's CPU time (the sensor's
threads; spawners are separate processes) over wall time. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import resource
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(1, os.path.join(os.path.dirname(__file__), "..", "src"))

from bench.execgen import ExecGen, build
from vigil.agent.sensor import Sensor


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


class Bench:
    """One long-lived sensor (as in the agent) measured under several loads."""

    def __init__(self, sources: list[str], generator: ExecGen) -> None:
        self.generator = generator
        self.tag = "bench-none-"
        self.arrivals: dict[str, int] = {}
        self.sensor = Sensor(
            sources=sources, exclude_pids=set(), source_options={"fanotify_exec": {"mounts": ["/"]}}
        )

    def sink(self, event: dict[str, Any]) -> None:
        if event["Event"]["System"]["EventID"] == 1:
            cmd = event["Event"]["EventData"]["CommandLine"]
            if self.tag in cmd:
                self.arrivals.setdefault(cmd, time.time_ns())

    def run_load(self, rate: float, seconds: float, workers: int) -> dict[str, Any]:
        run = f"{int(rate)}-{time.monotonic_ns()}"
        self.tag = f"bench-{run}-"
        self.arrivals = {}
        tag, arrivals = self.tag, self.arrivals
        count = int(rate * seconds)
        start_ns = time.time_ns() + 500_000_000
        proc = self.generator.start("/bin/true", f"bench-{run}", count, rate, start_ns, workers)
        time.sleep(max(0.0, start_ns / 1e9 - time.time()))
        received0 = self.sensor.counters["received"]
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.monotonic()
        proc.wait()
        spawned = [(s.pid, s.n, s.t_ns) for s in self.generator.wait()]
        spawn_wall = time.monotonic() - wall0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(arrivals) < len(spawned):
            time.sleep(0.01)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.monotonic() - wall0
        records = self.sensor.counters["received"] - received0
        latencies = []
        lost = 0
        for _pid, n, t in spawned:
            got = arrivals.get(f"/bin/true {tag}{n}")
            if got is None:
                lost += 1
            else:
                latencies.append((got - t) / 1e6)
        cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        return {
            "target_rate": rate,
            "achieved_rate": round(len(spawned) / spawn_wall, 1) if spawn_wall > 0 else None,
            "spawned": len(spawned),
            "lost": lost,
            "latency_ms_p50": round(percentile(latencies, 50), 3),
            "latency_ms_p99": round(percentile(latencies, 99), 3),
            "latency_ms_max": round(max(latencies), 3) if latencies else None,
            "agent_cpu_pct_of_one_core": round(100 * cpu / wall, 1),
            # raw records the sensor handled in the window, ours and the rest of the host's
            "records_per_s": round(records / wall, 1),
            "records_per_spawn": round(records / len(spawned), 2) if spawned else None,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rates", default="500,2000")
    ap.add_argument("--cpu-rate", type=float, default=100.0)
    ap.add_argument("--cpu-seconds", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--sources", default="proc_connector,audit,fanotify_exec")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/agent_latency.py needs root (kernel event sources)")
    sources = args.sources.split(",")
    audit_lock = open("/run/vigil-audit-tests.lock", "w")  # noqa: SIM115 - audit state is global
    fcntl.flock(audit_lock, fcntl.LOCK_EX)
    t0 = time.monotonic()
    tmp = tempfile.TemporaryDirectory(prefix="vigil-bench-")
    bench = Bench(sources, ExecGen(build(tmp.name), tmp.name))
    bench.sensor.start(bench.sink)
    try:
        bench.run_load(50, 0.5, 1)  # warm-up: the spawner's interpreter gets hashed once
        loads = [bench.run_load(float(r), args.seconds, args.workers) for r in args.rates.split(",")]
        # the sensor also sees every other process on the host: measure that background first
        received0 = bench.sensor.counters["received"]
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        time.sleep(args.cpu_seconds)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        background = {
            "records_per_s": round((bench.sensor.counters["received"] - received0) / args.cpu_seconds, 1),
            "agent_cpu_pct_of_one_core": round(
                100 * ((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)) / args.cpu_seconds,
                1,
            ),
        }
        steady = bench.run_load(args.cpu_rate, args.cpu_seconds, 1)
        status = bench.sensor.status()
        stats = bench.sensor.stats()
    finally:
        bench.sensor.stop()
        tmp.cleanup()
    events = sum(x["spawned"] for x in loads) + steady["spawned"]
    seconds = time.monotonic() - t0
    print(
        json.dumps(
            {
                "name": "agent_latency",
                "events": events,
                "seconds": round(seconds, 2),
                "events_per_s": round(events / seconds, 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "sources": status,
                "sensor": {
                    k: stats[k] for k in ("received", "emitted", "dropped", "queue_full", "hash_origins")
                },
                "loads": loads,
                "background_without_bench_load": background,
                "steady": steady,
                "loadavg_1m": os.getloadavg()[0],
                "exec_to_event_ms_p50": steady["latency_ms_p50"],
                "exec_to_event_ms_p99": steady["latency_ms_p99"],
                "cpu_pct_at_100_execs_s": steady["agent_cpu_pct_of_one_core"],
                "cpu_pct_at_100_execs_s_minus_background": round(
                    steady["agent_cpu_pct_of_one_core"] - background["agent_cpu_pct_of_one_core"], 1
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
