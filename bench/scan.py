"""End-to-end `vigil scan` over events-205k.jsonl (the WHIDS sample x300), as gene was measured.

Usage: .venv/bin/python bench/scan.py [--jobs N ...] [--runs N]
Builds bench/out/events-205k.jsonl with ../shared/bench/make-events-205k.sh if missing, runs
`vigil scan --rules ../shared/data/gene-rules/rules events-205k.jsonl --output FILE` in a child
process for each --jobs value (wall time; CPU time of the scanning process itself and of its worker
processes, see bench/cli_run.py; peak RSS), the start-up alone (the same command over an empty file),
the same scan with `--all --attack` checked byte for byte against gene's golden output repeated 300
times, and a plain orjson decode of the file (the floor). Prints one JSON object; `scaling` compares
each --jobs N with --jobs 1: wall speed-up, and total CPU per event (parent + workers) relative to one
job, the figure to trust on a shared machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.cli_run import run_measured

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "../shared"
OUT = ROOT / "bench/out"
EVENTS = OUT / "events-205k.jsonl"
VIGIL = [sys.executable, "-m", "vigil"]


def _ensure_events() -> None:
    if not EVENTS.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(SHARED / "bench/make-events-205k.sh"), str(EVENTS)], check=True, stdout=subprocess.DEVNULL
        )


def _run(args: list[str]) -> dict[str, Any]:
    return run_measured(args, cwd=ROOT)


def _floor() -> dict[str, Any]:
    """Plain orjson decode of every line: what no Python scan of this file can beat."""
    loads = orjson.loads
    start = time.perf_counter()
    cpu = time.process_time()
    n = 0
    with open(EVENTS, "rb") as f:
        for line in f:
            loads(line)
            n += 1
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - start
    return {
        "events": n,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "events_per_s": round(n / wall),
        "events_per_cpu_s": round(n / cpu),
    }


def _golden_x300_sha() -> str:
    golden = (SHARED / "data/golden/whids-sample-events.gene-v2.3.0.all-a.jsonl").read_bytes()
    h = hashlib.sha256()
    for _ in range(300):
        h.update(golden)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    _ensure_events()
    rules = str(SHARED / "data/gene-rules/rules")
    result: dict[str, Any] = {
        "bench": "scan",
        "input": str(EVENTS.relative_to(ROOT)),
        "gene_events_per_s": 25000,
    }
    empty = OUT / "empty.jsonl"
    empty.write_bytes(b"")
    for jobs in args.jobs:
        runs = []
        starts = []
        for _ in range(args.runs):
            out = OUT / f"scan-j{jobs}.jsonl"
            r = _run(
                [*VIGIL, "scan", "--rules", rules, "--jobs", str(jobs), "--output", str(out), str(EVENTS)]
            )
            lines = out.read_bytes().count(b"\n")
            runs.append(
                {
                    **r,
                    "lines": lines,
                    "events_per_s": round(205500 / r["wall_s"]),
                    "events_per_cpu_s": round(205500 / r["cpu_s"]),
                    "parent_cpu_share": round(r["parent_cpu_s"] / r["cpu_s"], 3),
                }
            )
            starts.append(
                _run(
                    [
                        *VIGIL,
                        "scan",
                        "--rules",
                        rules,
                        "--jobs",
                        str(jobs),
                        "--output",
                        os.devnull,
                        str(empty),
                    ]
                )
            )
        best = min(runs, key=lambda x: x["wall_s"])
        result[f"jobs{jobs}"] = {
            k: (round(v, 3) if isinstance(v, float) else v) for k, v in best.items() if k != "stderr"
        }
        result[f"jobs{jobs}"]["stderr_tail"] = best["stderr"].strip().splitlines()[-6:]
        cpu = statistics.median(r["cpu_s"] for r in runs)
        parent = statistics.median(r["parent_cpu_s"] for r in runs)
        start_cpu = statistics.median(r["cpu_s"] for r in starts)
        result[f"jobs{jobs}"].update(
            {
                "runs_wall_s": [round(r["wall_s"], 3) for r in runs],
                "runs_cpu_s": [round(r["cpu_s"], 3) for r in runs],
                "runs_load_average_1m": [round(r["load_average_1m"], 2) for r in runs],
                "median_cpu_s": round(cpu, 3),
                "median_parent_cpu_s": round(parent, 3),
                "startup_cpu_s": round(start_cpu, 3),
                "startup_wall_s": round(statistics.median(r["wall_s"] for r in starts), 3),
                # CPU of the scan itself (start-up taken off), and the parent's share of it
                "scan_cpu_s": round(cpu - start_cpu, 3),
                "scan_parent_cpu_share": round(max(parent - start_cpu, 0) / max(cpu - start_cpu, 1e-9), 3),
            }
        )
    if "jobs1" in result:
        one = result["jobs1"]
        result["scaling"] = {
            f"jobs{jobs}": {
                "wall_speedup": round(one["wall_s"] / result[f"jobs{jobs}"]["wall_s"], 2),
                "cpu_per_event_vs_jobs1": round(
                    result[f"jobs{jobs}"]["median_cpu_s"] / one["median_cpu_s"], 3
                ),
                "scan_cpu_per_event_vs_jobs1": round(
                    result[f"jobs{jobs}"]["scan_cpu_s"] / max(one["scan_cpu_s"], 1e-9), 3
                ),
            }
            for jobs in args.jobs
            if jobs != 1
        }
    out = OUT / "scan-all-a.jsonl"
    r = _run([*VIGIL, "scan", "--rules", rules, "--all", "--attack", "--output", str(out), str(EVENTS)])
    same = hashlib.sha256(out.read_bytes()).hexdigest() == _golden_x300_sha()
    result["all_attack"] = {
        "wall_s": round(r["wall_s"], 3),
        "events_per_s": round(205500 / r["wall_s"]),
        "max_rss_mb": round(r["max_rss_mb"], 1),
        "identical_to_gene_golden_x300": same,
    }
    result["orjson_decode_floor"] = _floor()
    result["cpu_count"] = os.cpu_count()
    result["load_average"] = os.getloadavg()
    result["python"] = sys.version.split()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
