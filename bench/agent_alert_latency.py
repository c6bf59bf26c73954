"""Benchmark: exec-to-alert latency of a real `vigil agent run` (root: kernel sources).

    sudo python bench/agent_alert_latency.py [--execs 500] [--rate 100]

Starts the agent in standalone mode with one rule that matches a private copy of /bin/true, runs that
binary ``--execs`` times at ``--rate`` execs per second (each with a unique argument), and follows
``alerts.jsonl``: the latency of an exec is the time from just before its spawn to the moment its
alert line is in the file. Also reports alerts lost and the agent's CPU time per second of run.
``--default-rules`` and ``--rules DIR`` load more rules next to the benchmark's (bench/rule_dirs.py).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import rule_dirs


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--execs", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0)
    rule_dirs.add_arguments(parser)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: the agent's kernel sources")

    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        binary = tmp / "vigil-bench-true"
        shutil.copy("/bin/true", binary)
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
            alerts_path = data / "logs" / "alerts.jsonl"
            spawned: dict[str, float] = {}
            arrived: dict[str, float] = {}
            offset = 0
            buffer = b""
            cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()

            def follow() -> None:
                nonlocal offset, buffer
                if not alerts_path.exists():
                    return
                with alerts_path.open("rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                now = time.perf_counter()
                offset += len(chunk)
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line:
                        tag = json.loads(line)["Event"]["EventData"]["CommandLine"].rsplit(" ", 1)[-1]
                        arrived.setdefault(tag, now)

            start = time.perf_counter()
            for i in range(args.execs):
                due = start + i / args.rate
                while time.perf_counter() < due:
                    follow()
                    time.sleep(0.0005)
                tag = f"run{i}"
                spawned[tag] = time.perf_counter()
                subprocess.Popen([str(binary), tag]).wait()
                follow()
            wait_until = time.perf_counter() + 10
            while len(arrived) < len(spawned) and time.perf_counter() < wait_until:
                follow()
                time.sleep(0.0005)
            cpu1, t1 = cpu_seconds(agent.pid), time.monotonic()
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
        latencies = [(arrived[t] - spawned[t]) * 1000 for t in spawned if t in arrived]
        slowest = sorted(((arrived[t] - spawned[t]) * 1000, t) for t in spawned if t in arrived)[-5:]
        print(
            json.dumps(
                {
                    "name": "agent_alert_latency",
                    **rules_loaded,
                    "execs": args.execs,
                    "rate": args.rate,
                    "alerts": len(latencies),
                    "lost": len(spawned) - len(latencies),
                    "alert_p50_ms": round(percentile(latencies, 0.50), 2),
                    "alert_p99_ms": round(percentile(latencies, 0.99), 2),
                    "alert_max_ms": round(max(latencies, default=0.0), 2),
                    "slowest": [f"{tag}: {ms:.1f} ms" for ms, tag in reversed(slowest)],
                    "pipeline_mean_ms": pipeline.get("mean_ms"),
                    "pipeline_p99_ms": pipeline.get("p99_ms"),
                    "agent_cpu_percent": round((cpu1 - cpu0) / (t1 - t0) * 100, 1),
                    "agent_exit": agent.returncode,
                }
            )
        )


if __name__ == "__main__":
    main()
