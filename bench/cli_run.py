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
import time
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


def machine_busy(seconds: float = 1.0) -> float:
    """Share of the machine's CPU time (all cores) that was not idle over ``seconds``, in per cent."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:9]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    total, idle = sample()
    time.sleep(seconds)
    total2, idle2 = sample()
    return round(100 * (1 - (idle2 - idle) / max(total2 - total, 1)), 1)


def wait_until_idle(max_wait_s: float, busy_below: float = 10.0) -> float:
    """Wait (at most ``max_wait_s``) until other processes leave the cores alone; the last busy %."""
    deadline = time.monotonic() + max_wait_s
    while True:
        busy = machine_busy()
        if busy < busy_below or time.monotonic() >= deadline:
            return busy


def scan_scaling(
    scan: list[str],
    inputs: list[str],
    jobs: list[int],
    runs: int = 5,
    events: int = 0,
    *,
    output_dir: str | os.PathLike[str] | None = None,
    idle_wait_s: float = 0.0,
) -> dict[str, Any]:
    """``scan --jobs N INPUTS`` for each N, ``runs`` rounds, and the start-up alone (the same command
    over an empty JSON-lines file); each N against one job.

    The machine's speed drifts by tens of per cent over seconds, so the runs are interleaved: each
    round runs every N once, then every N's start-up once, in the order of ``jobs`` in even rounds and
    the reverse in odd ones (ABBA: a steady drift adds to both sides of a pair alike). The wall
    speed-up is then given three ways: the median of the per-round ratios (``wall_speedup_pairs_median``:
    runs next to each other, so the least affected by drift), best against best (``wall_speedup``) and
    median against median. CPU is given as medians: total (parent + workers), relative to one job,
    the figure that a shared machine does not skew.

    With ``idle_wait_s``, each round first waits (up to that long) for a moment when the cores are
    idle (under 10 % busy over a second), for a shared machine; ``rounds_busy_percent`` says how busy
    the machine was just before each round.

    With ``output_dir``, the timed runs of N write ``--output DIR/scan-jN.jsonl``; each run's output
    is hashed and ``scaling`` says whether every run of N wrote what one job wrote.
    """
    import hashlib
    import statistics
    import tempfile

    measured: dict[int, list[dict[str, Any]]] = {n: [] for n in jobs}
    starts: dict[int, list[dict[str, Any]]] = {n: [] for n in jobs}
    busy: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        empty = os.path.join(tmp, "empty.jsonl")
        open(empty, "wb").close()
        for round_ in range(runs):
            busy.append(wait_until_idle(idle_wait_s) if idle_wait_s else machine_busy(0.2))
            order = jobs if round_ % 2 == 0 else jobs[::-1]
            for n in order:
                output: list[str] = []
                path = None
                if output_dir is not None:
                    path = Path(output_dir, f"scan-j{n}.jsonl")
                    output = ["--output", str(path)]
                run = run_measured([*scan, "--jobs", str(n), *output, *inputs])
                if path is not None:
                    data = path.read_bytes()
                    run["output_lines"] = data.count(b"\n")
                    run["output_sha256"] = hashlib.sha256(data).hexdigest()
                measured[n].append(run)
            for n in order:
                starts[n].append(run_measured([*scan, "--jobs", str(n), empty]))

    def median(values: Any) -> float:
        return float(statistics.median(values))

    result: dict[str, Any] = {
        "method": f"{runs} interleaved rounds (ABBA order)",
        "rounds_busy_percent": busy,
    }
    for n in jobs:
        runs_n, starts_n = measured[n], starts[n]
        best = min(runs_n, key=lambda r: r["wall_s"])
        cpu = median(r["cpu_s"] for r in runs_n)
        parent = median(r["parent_cpu_s"] for r in runs_n)
        start = median(r["cpu_s"] for r in starts_n)
        stderr = best["stderr"].strip().splitlines()
        entry: dict[str, Any] = {
            "rc": best["rc"],
            "wall_s": round(best["wall_s"], 3),
            "median_wall_s": round(median(r["wall_s"] for r in runs_n), 3),
            "events_per_s": round(events / best["wall_s"]),
            "cpu_s": round(best["cpu_s"], 3),
            "parent_cpu_s": round(best["parent_cpu_s"], 3),
            "children_cpu_s": round(best["children_cpu_s"], 3),
            "load_average_1m": round(best["load_average_1m"], 2),
            "runs_wall_s": [round(r["wall_s"], 3) for r in runs_n],
            "runs_cpu_s": [round(r["cpu_s"], 3) for r in runs_n],
            "runs_load_average_1m": [round(r["load_average_1m"], 2) for r in runs_n],
            "median_cpu_s": round(cpu, 3),
            "median_parent_cpu_s": round(parent, 3),
            "median_children_cpu_s": round(median(r["children_cpu_s"] for r in runs_n), 3),
            "events_per_cpu_s": round(events / cpu),
            "startup_cpu_s": round(start, 3),
            "startup_wall_s": round(median(r["wall_s"] for r in starts_n), 3),
            "runs_startup_wall_s": [round(r["wall_s"], 3) for r in starts_n],
            "scan_cpu_s": round(cpu - start, 3),
            "scan_parent_cpu_share": round(max(parent - start, 0) / max(cpu - start, 1e-9), 3),
            "max_rss_mb": round(max(r["max_rss_mb"] for r in runs_n), 1),
            "summary_events": summary_line(best["stderr"], "events"),
            "summary_errors": summary_line(best["stderr"], "errors"),
            "stderr_tail": stderr[-6:],
        }
        if output_dir is not None:
            entry["output_lines"] = best["output_lines"]
        result[f"jobs{n}"] = entry
    if 1 in jobs:
        one = result["jobs1"]
        result["scaling"] = {}
        for n in jobs:
            if n == 1:
                continue
            this = result[f"jobs{n}"]
            pairs = [a["wall_s"] / b["wall_s"] for a, b in zip(measured[1], measured[n], strict=True)]
            scan_pairs = [
                (a["wall_s"] - sa["wall_s"]) / max(b["wall_s"] - sb["wall_s"], 1e-9)
                for a, b, sa, sb in zip(measured[1], measured[n], starts[1], starts[n], strict=True)
            ]
            scaling: dict[str, Any] = {
                "wall_speedup_pairs_median": round(median(pairs), 2),
                "wall_speedup": round(one["wall_s"] / this["wall_s"], 2),
                "wall_speedup_medians": round(one["median_wall_s"] / this["median_wall_s"], 2),
                "wall_speedup_pairs": [round(p, 2) for p in pairs],
                "scan_wall_speedup_pairs_median": round(median(scan_pairs), 2),
                "cpu_vs_jobs1": round(this["median_cpu_s"] / one["median_cpu_s"], 3),
                "scan_cpu_vs_jobs1": round(this["scan_cpu_s"] / max(one["scan_cpu_s"], 1e-9), 3),
            }
            if output_dir is not None:
                golden = {r["output_sha256"] for r in measured[1]}
                scaling["output_identical_to_jobs1"] = len(golden) == 1 and all(
                    r["output_sha256"] in golden for r in measured[n]
                )
            result["scaling"][f"jobs{n}"] = scaling
    return result
