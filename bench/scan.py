"""End-to-end `vigil scan` over events-205k.jsonl (the WHIDS sample x300), as gene was measured.

Usage: .venv/bin/python bench/scan.py [--jobs N ...] [--runs N]
Builds bench/out/events-205k.jsonl with ../shared/bench/make-events-205k.sh if missing, runs
`vigil scan --rules ../shared/data/gene-rules/rules events-205k.jsonl --output FILE` in a child
process for each --jobs value, and the start-up alone (the same command over an empty file), in
--runs interleaved rounds (bench/cli_run.py::scan_scaling: wall time; CPU time of the scanning process
itself and of its worker processes; peak RSS; every run's output checked against one job's), then the
same scan with `--all --attack` (one job, and each other --jobs N) checked byte for byte against
gene's golden output repeated 300 times, and a plain orjson decode of the file (the floor). Prints one
JSON object; `scaling` compares each --jobs N with --jobs 1: wall speed-up (median of the per-round
ratios, best against best, medians), and total CPU per event (parent + workers) relative to one job,
the figure to trust on a shared machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.cli_run import run_measured, scan_scaling

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "../shared"
OUT = ROOT / "bench/out"
EVENTS = OUT / "events-205k.jsonl"
EVENTS_COUNT = 205500
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
    ap.add_argument("--runs", type=int, default=5, help="interleaved rounds (see bench/cli_run.py)")
    ap.add_argument(
        "--idle-wait",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S s for idle cores before each round",
    )
    args = ap.parse_args()
    _ensure_events()
    rules = str(SHARED / "data/gene-rules/rules")
    result: dict[str, Any] = {
        "bench": "scan",
        "input": str(EVENTS.relative_to(ROOT)),
        "gene_events_per_s": 25000,
    }
    scan = [*VIGIL, "scan", "--rules", rules]
    result.update(
        scan_scaling(
            scan,
            [str(EVENTS)],
            args.jobs,
            args.runs,
            EVENTS_COUNT,
            output_dir=OUT,
            idle_wait_s=args.idle_wait,
        )
    )
    for jobs in args.jobs:
        entry = result[f"jobs{jobs}"]
        entry["lines"] = entry.pop("output_lines")
        entry["parent_cpu_share"] = round(entry["parent_cpu_s"] / max(entry["cpu_s"], 1e-9), 3)
    for scaling in result.get("scaling", {}).values():
        # the names this bench printed before bench/cli_run.py was shared
        scaling["cpu_per_event_vs_jobs1"] = scaling["cpu_vs_jobs1"]
        scaling["scan_cpu_per_event_vs_jobs1"] = scaling["scan_cpu_vs_jobs1"]
    golden = _golden_x300_sha()
    for jobs in sorted({1, *args.jobs}):
        out = OUT / f"scan-all-a-j{jobs}.jsonl"
        r = _run(
            [
                *VIGIL,
                "scan",
                "--rules",
                rules,
                "--all",
                "--attack",
                "--jobs",
                str(jobs),
                "--output",
                str(out),
                str(EVENTS),
            ]
        )
        result["all_attack" if jobs == 1 else f"all_attack_jobs{jobs}"] = {
            "wall_s": round(r["wall_s"], 3),
            "events_per_s": round(EVENTS_COUNT / r["wall_s"]),
            "max_rss_mb": round(r["max_rss_mb"], 1),
            "identical_to_gene_golden_x300": hashlib.sha256(out.read_bytes()).hexdigest() == golden,
        }
        out.unlink()
    result["orjson_decode_floor"] = _floor()
    result["cpu_count"] = os.cpu_count()
    result["load_average"] = os.getloadavg()
    result["python"] = sys.version.split()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
