"""Run one command and account for its CPU: its own, its children's (e.g. `vigil scan --jobs N`
workers), and the peak RSS, on a shared machine where wall time alone says little.

The command runs under a small wrapper process, so RUSAGE_CHILDREN starts from zero for every
measurement. The wrapper waits for the command without reaping it (``waitid`` with ``WNOWAIT``) and
reads ``/proc/PID/stat`` of the finished process: utime+stime is the command's own CPU, and
cutime+cstime the CPU of the children it waited for (a process pool joins its workers).
"""

from __future__ import annotations

import compileall
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import vigil

_WRAPPER = """
import json, os, resource, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
stderr = child.stderr.read()
os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
wall = time.perf_counter() - start
with open(f"/proc/{child.pid}/stat") as handle:
    fields = handle.read().rsplit(")", 1)[1].split()
tick = os.sysconf("SC_CLK_TCK")
own = (int(fields[11]) + int(fields[12])) / tick
children = (int(fields[13]) + int(fields[14])) / tick
child.wait()
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": child.returncode, "wall_s": wall, "parent_cpu_s": own, "children_cpu_s": children,
                  "cpu_s": usage.ru_utime + usage.ru_stime, "max_rss_mb": usage.ru_maxrss / 1024,
                  "stderr": stderr.decode(errors="replace")[-2000:]}))
"""


def precompile() -> None:
    """Write vigil's bytecode first, as installing a package does.

    An editable checkout run with ``PYTHONDONTWRITEBYTECODE`` set (this machine sets it) otherwise
    compiles every changed module from source at each start, which would be counted as start-up.
    """
    compileall.compile_dir(Path(vigil.__file__).parent, quiet=1)


def run_measured(command: list[str], cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Wall seconds, CPU seconds (total, the command's own, its children's), peak RSS (MB) of the
    largest process, exit code, the tail of stderr, and the 1-minute load average at the end."""
    precompile()
    res = subprocess.run([sys.executable, "-c", _WRAPPER, *command], capture_output=True, check=True, cwd=cwd)
    out: dict[str, Any] = json.loads(res.stdout)
    out["load_average_1m"] = os.getloadavg()[0]
    return out


def summary_line(stderr: str, key: str) -> str | None:
    """The value of ``key: value`` in `vigil scan`'s summary on stderr."""
    for line in reversed(stderr.splitlines()):
        if line.startswith(f"{key}: "):
            return line.split(": ", 1)[1]
    return None


def scan_scaling(
    scan: list[str], inputs: list[str], jobs: list[int], runs: int, events: int
) -> dict[str, Any]:
    """``scan --jobs N INPUTS`` for each N (best wall of ``runs``; CPU as medians), the start-up alone
    (the same command over an empty JSON-lines file), and each N against one job: wall speed-up and
    total CPU (parent + workers) relative to one job, the figure that a shared machine does not skew."""
    import statistics
    import tempfile

    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        empty = os.path.join(tmp, "empty.jsonl")
        open(empty, "wb").close()
        for n in jobs:
            measured = [run_measured([*scan, "--jobs", str(n), *inputs]) for _ in range(runs)]
            starts = [run_measured([*scan, "--jobs", str(n), empty]) for _ in range(runs)]
            best = min(measured, key=lambda r: r["wall_s"])
            cpu = statistics.median(r["cpu_s"] for r in measured)
            parent = statistics.median(r["parent_cpu_s"] for r in measured)
            start = statistics.median(r["cpu_s"] for r in starts)
            result[f"jobs{n}"] = {
                "rc": best["rc"],
                "wall_s": round(best["wall_s"], 3),
                "events_per_s": round(events / best["wall_s"]),
                "runs_wall_s": [round(r["wall_s"], 3) for r in measured],
                "runs_cpu_s": [round(r["cpu_s"], 3) for r in measured],
                "runs_load_average_1m": [round(r["load_average_1m"], 2) for r in measured],
                "median_cpu_s": round(cpu, 3),
                "median_parent_cpu_s": round(parent, 3),
                "median_children_cpu_s": round(statistics.median(r["children_cpu_s"] for r in measured), 3),
                "events_per_cpu_s": round(events / cpu),
                "startup_cpu_s": round(start, 3),
                "startup_wall_s": round(statistics.median(r["wall_s"] for r in starts), 3),
                "scan_cpu_s": round(cpu - start, 3),
                "scan_parent_cpu_share": round(max(parent - start, 0) / max(cpu - start, 1e-9), 3),
                "max_rss_mb": round(max(r["max_rss_mb"] for r in measured), 1),
                "summary_events": summary_line(best["stderr"], "events"),
                "summary_errors": summary_line(best["stderr"], "errors"),
            }
    if "jobs1" in result:
        one = result["jobs1"]
        result["scaling"] = {
            f"jobs{n}": {
                "wall_speedup": round(one["wall_s"] / result[f"jobs{n}"]["wall_s"], 2),
                "cpu_vs_jobs1": round(result[f"jobs{n}"]["median_cpu_s"] / one["median_cpu_s"], 3),
                "scan_cpu_vs_jobs1": round(
                    result[f"jobs{n}"]["scan_cpu_s"] / max(one["scan_cpu_s"], 1e-9), 3
                ),
            }
            for n in jobs
            if n != 1
        }
    return result
