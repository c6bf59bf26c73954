"""Benchmark: the sensor's Python work per exec, without the kernel (no root needed).

    .venv/bin/python bench/agent_sensor_replay.py [--execs 5000] [--runs 3]

A Sensor without sources is fed, from this thread, the raw records one short-lived exec produces
(cn_proc fork, audit exec with argv/cwd/exe, cn_proc exit) for pids that do not exist, and its
events go to a list. Reported: CPU time per exec (this process, best of ``--runs``). It measures
the record handling, tracking, event building and hooks with warm caches: what one exec costs
when nothing else runs, as opposed to bench/agent_alert_latency.py, which measures the whole
agent on a live host. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vigil.agent.sensor import Sensor

FIRST_FAKE_PID = 3_000_000  # above the default pid_max: never a live process


def run_once(execs: int) -> tuple[float, int]:
    events: list[dict[str, Any]] = []
    sensor = Sensor(sources=[], exclude_pids={1_999_999_999})
    sensor.start(events.append)
    parent = os.getpid()
    put = sensor._put  # the sources' sink
    try:
        cpu0 = time.process_time()
        for i in range(execs):
            pid = FIRST_FAKE_PID + i
            put(
                {
                    "type": "fork",
                    "pid": pid,
                    "ppid": parent,
                    "mono_ns": time.monotonic_ns(),
                    "source": "proc_connector",
                }
            )
            put(
                {
                    "type": "exec",
                    "source": "audit",
                    "pid": pid,
                    "ppid": parent,
                    "uid": 0,
                    "euid": 0,
                    "auid": 0,
                    "gid": 0,
                    "comm": "true",
                    "exe": "/usr/bin/true",
                    "ts_ns": time.time_ns(),
                    "syscall": "execve",
                    "success": True,
                    "exit": 0,
                    "argv": ["/bin/true", f"replay-{i}"],
                    "cwd": "/tmp",
                }
            )
            put(
                {
                    "type": "exit",
                    "pid": pid,
                    "status": 0,
                    "mono_ns": time.monotonic_ns(),
                    "source": "proc_connector",
                }
            )
        deadline = time.monotonic() + 30
        while len(events) < 2 * execs and time.monotonic() < deadline:
            time.sleep(0.01)
        cpu = time.process_time() - cpu0
    finally:
        sensor.stop()
    return cpu, len(events)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--execs", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = [run_once(args.execs) for _ in range(args.runs)]
    best = min(cpu for cpu, _ in results)
    print(
        json.dumps(
            {
                "name": "agent_sensor_replay",
                "execs": args.execs,
                "events": results[0][1],
                "cpu_us_per_exec_best": round(best / args.execs * 1e6, 1),
                "cpu_us_per_exec_runs": [round(cpu / args.execs * 1e6, 1) for cpu, _ in results],
                "loadavg": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
