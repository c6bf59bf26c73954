"""Benchmark: every SigmaHQ Windows rule in one engine over the EVTX corpus.

    .venv/bin/python bench/sigma_scan.py                # rules/windows over ../shared/data/evtx/evtx
    .venv/bin/python bench/sigma_scan.py --repeat 3     # the matching phase three times (steadier)
    .venv/bin/python bench/sigma_scan.py --linux        # agent view: rules/linux + examples/rules,
                                                        # per-event match latency on Linux events
    .venv/bin/python bench/sigma_scan.py --jobs 1 2     # the real `vigil scan --jobs N` over the
                                                        # corpus: scan-phase events/s, load apart
    .venv/bin/python bench/sigma_scan.py --startup      # `vigil scan` of no event: rule loading
                                                        # without, into and from the rule cache

Prints one JSON object. Load is reported apart from scanning: ``load_seconds`` (YAML + pySigma
parse + compile to IR, the rule cache off), ``load_cached_seconds`` (the same rules read back from
a warm rule cache, in a process that already imported pySigma), ``engine_index_seconds`` (the
engine's dispatch tables: buckets are generated on their first event) and
``engine_compile_seconds`` (every bucket's code generated, as the agent does at start; the timed
phases below use that engine). Scanning is
measured two ways over the same events: ``match_*`` matches events already decoded (the engine
alone; ``match_first_pass_*`` is the first pass of a freshly compiled engine, whose per-value
caches start empty), ``scan_*`` reads the .evtx files and matches (what ``vigil scan`` does, minus
output).
``*_per_cpu_s`` divides by the process CPU time, steadier on a shared machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.cli_run import run_measured, summary_line

DEFAULT_CORPUS = Path("../shared/data/evtx/evtx")
DEFAULT_RULES = Path("../shared/data/sigma/rules/windows")
LINUX_RULES = Path("../shared/data/sigma/rules/linux")
DEFAULT_LINUX_EVENTS = Path("examples/events/linux-sample.jsonl")
DEFAULT_GENE_RULES = Path("examples/rules")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--linux", action="store_true", help="Linux Sigma rules next to the default rules")
    parser.add_argument("--jobs", type=int, nargs="+", help="time `vigil scan --jobs N` for each N instead")
    parser.add_argument(
        "--runs", type=int, default=5, help="with --jobs/--startup: rounds (medians over them)"
    )
    parser.add_argument("--startup", action="store_true", help="time rule loading by `vigil scan` alone")
    args = parser.parse_args(argv)
    if args.startup:
        return startup(args.rules, args.runs)
    if args.linux:
        return linux(args.repeat)
    if args.jobs:
        return cli(args.corpus, args.rules, args.jobs, args.runs)

    from vigil.engine import Engine
    from vigil.engine.sigma import load_sigma
    from vigil.events.evtx import read_evtx

    t0 = time.perf_counter()
    ruleset = load_sigma([args.rules], use_cache=False)
    t1 = time.perf_counter()
    load_sigma([args.rules])  # fills the rule cache if needed
    c0 = time.perf_counter()
    load_sigma([args.rules])
    load_cached = time.perf_counter() - c0
    engine = Engine()
    for rule in ruleset.rules:
        engine.add_rule(rule.ir)
    c0 = time.perf_counter()
    engine.compile()
    index_s = time.perf_counter() - c0
    e0 = time.perf_counter()
    engine.compile(lazy=False)
    t2 = time.perf_counter()

    files = sorted(args.corpus.rglob("*.evtx"))
    errors: list[Any] = []
    # vigil scan runs with the cyclic GC off (decoded events are acyclic): so do the timed phases,
    # else a full collection over the rule set's objects (0.1 s) lands in one pass or another.
    gc.disable()

    # scan: read + match, file by file, as vigil scan does.
    c0, s0 = _cpu(), time.perf_counter()
    scanned = positives = 0
    for f in files:
        for event in read_evtx(f, on_error=errors.append):
            scanned += 1
            if engine.match(event).signature:
                positives += 1
    scan_s, scan_cpu = time.perf_counter() - s0, _cpu() - c0

    # match: the engine alone over the decoded events. Recompiled first, so the first pass starts
    # with empty per-value caches, as a scan of new logs does; later passes (--repeat) reuse them.
    events = [e for f in files for e in read_evtx(f, on_error=errors.append)]
    engine.compile(lazy=False)
    c0, s0 = _cpu(), time.perf_counter()
    for event in events:
        engine.match(event)
    first_s, first_cpu = time.perf_counter() - s0, _cpu() - c0
    for _ in range(args.repeat - 1):
        for event in events:
            engine.match(event)
    match_s, match_cpu = time.perf_counter() - s0, _cpu() - c0
    gc.enable()
    matched = len(events) * args.repeat

    print(
        json.dumps(
            {
                "name": "sigma_scan",
                "rules": len(ruleset.rules),
                "rules_rejected": len(ruleset.rejections),
                "files": len(files),
                "events": scanned,
                "positives": positives,
                "load_seconds": round(t1 - t0, 3),
                "load_cached_seconds": round(load_cached, 3),
                "engine_index_seconds": round(index_s, 3),
                "engine_compile_seconds": round(t2 - e0, 3),
                "scan_seconds": round(scan_s, 3),
                "scan_events_per_s": round(scanned / scan_s),
                "scan_events_per_cpu_s": round(scanned / scan_cpu),
                "match_first_pass_events_per_s": round(len(events) / first_s),
                "match_first_pass_events_per_cpu_s": round(len(events) / first_cpu),
                "match_events": matched,
                "match_seconds": round(match_s, 3),
                "match_events_per_s": round(matched / match_s),
                "match_events_per_cpu_s": round(matched / match_cpu),
                "seconds": round(scan_s, 3),
                "events_per_s": round(scanned / scan_s),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "read_errors": len(errors),
            }
        )
    )
    return 0


def cli(corpus: Path, rules: Path, jobs: list[int], runs: int) -> int:
    """The real ``vigil scan --rules RULES --jobs N`` over the corpus, the load apart, two ways.

    Every round runs, for each N, the scan of the corpus and the same command over an empty
    JSON-lines file (start-up and rule load alone), one after the other, so that the load of a
    shared machine weighs on both alike. Per N: ``scan_wall_s_by_difference`` is the median wall of
    the scans minus the median wall of the empty runs (``scan_wall_s_paired_median``: the median of
    that difference within each round); ``scan_seconds_printed`` the median of what vigil scan
    prints as ``scanning seconds`` (from the end of the rule load to the last byte written, workers'
    fork and join included; ``_min``: the least disturbed run); the events/s of each; CPU the same
    way (parent + workers). ``scan_speedup_printed_median``: per round, one job's printed scan
    seconds over N's, median over the rounds. ``same_output`` compares the output files of every
    run of every N.
    """
    import hashlib
    import statistics
    import tempfile

    from vigil.events.evtx import read_evtx

    files = sorted(corpus.rglob("*.evtx"))
    events = sum(1 for f in files for _ in read_evtx(f, on_error=lambda error: None))
    runs_by_jobs: dict[int, list[dict[str, Any]]] = {n: [] for n in jobs}
    empty_by_jobs: dict[int, list[dict[str, Any]]] = {n: [] for n in jobs}
    digests: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        empty = os.path.join(tmp, "empty.jsonl")
        output = os.path.join(tmp, "out")
        open(empty, "wb").close()
        scan = [sys.executable, "-m", "vigil", "scan", "--rules", str(rules), "--output", output]
        for _ in range(runs):
            for n in jobs:
                runs_by_jobs[n].append(run_measured([*scan, "--jobs", str(n), *map(str, files)]))
                digests.add(hashlib.sha256(Path(output).read_bytes()).hexdigest())
                empty_by_jobs[n].append(run_measured([*scan, "--jobs", str(n), empty]))
    result: dict[str, Any] = {
        "name": "sigma_scan_cli",
        "rules": str(rules),
        "files": len(files),
        "events": events,
        "runs": runs,
        "same_output": len(digests) == 1,
    }
    median = statistics.median
    for n in jobs:
        full, bare = runs_by_jobs[n], empty_by_jobs[n]
        by_difference = median(r["wall_s"] for r in full) - median(r["wall_s"] for r in bare)
        printed_runs = [float(summary_line(r["stderr"], "scanning seconds") or "nan") for r in full]
        printed = median(printed_runs)
        paired = median(a["wall_s"] - b["wall_s"] for a, b in zip(full, bare, strict=True))
        scan_cpu = median(r["cpu_s"] for r in full) - median(r["cpu_s"] for r in bare)
        result[f"jobs{n}"] = {
            "rc": sorted({r["rc"] for r in full}),
            "summary_events": summary_line(full[0]["stderr"], "events"),
            "summary_errors": summary_line(full[0]["stderr"], "errors"),
            "summary_rules": summary_line(full[0]["stderr"], "rules"),
            "load_seconds_printed": round(
                median(float(summary_line(r["stderr"], "load seconds") or "nan") for r in full), 3
            ),
            "scan_seconds_printed": round(printed, 3),
            "scan_events_per_s_printed": round(events / printed),
            "scan_seconds_printed_min": round(min(printed_runs), 3),
            "scan_events_per_s_printed_best": round(events / min(printed_runs)),
            "runs_scan_seconds_printed": printed_runs,
            "wall_s_median": round(median(r["wall_s"] for r in full), 3),
            "empty_input_wall_s_median": round(median(r["wall_s"] for r in bare), 3),
            "scan_wall_s_by_difference": round(by_difference, 3),
            "scan_events_per_s_by_difference": round(events / by_difference) if by_difference > 0 else None,
            "scan_wall_s_paired_median": round(paired, 3),
            "runs_wall_s": [round(r["wall_s"], 3) for r in full],
            "runs_empty_input_wall_s": [round(r["wall_s"], 3) for r in bare],
            "cpu_s_median": round(median(r["cpu_s"] for r in full), 3),
            "parent_cpu_s_median": round(median(r["parent_cpu_s"] for r in full), 3),
            "workers_cpu_s_median": round(median(r["children_cpu_s"] for r in full), 3),
            "empty_input_cpu_s_median": round(median(r["cpu_s"] for r in bare), 3),
            "scan_cpu_s_by_difference": round(scan_cpu, 3),
            "scan_events_per_cpu_s": round(events / scan_cpu) if scan_cpu > 0 else None,
            "max_rss_mb": round(max(r["max_rss_mb"] for r in full), 1),
            "runs_load_average_1m": [round(r["load_average_1m"], 2) for r in full],
        }
    if 1 in jobs:
        # per round, the printed scan seconds of one job over those of N: the rounds see alike loads
        result["scan_speedup_printed_median"] = {
            f"jobs{n}": round(
                median(
                    float(summary_line(a["stderr"], "scanning seconds") or "nan")
                    / float(summary_line(b["stderr"], "scanning seconds") or "nan")
                    for a, b in zip(runs_by_jobs[1], runs_by_jobs[n], strict=True)
                ),
                2,
            )
            for n in jobs
            if n != 1
        }
    result["cpu_count"] = os.cpu_count()
    print(json.dumps(result))
    return 0


def startup(rules: Path, runs: int) -> int:
    """``vigil scan --rules RULES`` over no event: the rule cache off, empty (filled by the run),
    and warm. CPU (user + system) of the whole process, from ``/proc``, and wall time; medians."""
    import statistics
    import tempfile

    from bench.cli_run import run_measured

    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        empty = Path(tmp) / "empty.jsonl"
        empty.write_bytes(b"")
        os.environ["VIGIL_RULE_CACHE_DIR"] = str(Path(tmp) / "cache")
        scan = [sys.executable, "-m", "vigil", "scan", "--rules", str(rules), "--output", os.devnull]
        result: dict[str, Any] = {"name": "sigma_scan_startup", "rules": str(rules), "runs": runs}
        for label, extra, fresh in (
            ("no_cache", ["--no-rule-cache"], False),
            ("cold_cache", [], True),
            ("warm_cache", [], False),
        ):
            samples = []
            for _ in range(1 if fresh else runs):
                if fresh:
                    shutil.rmtree(Path(tmp) / "cache", ignore_errors=True)
                m = run_measured([*scan, *extra, str(empty)])
                if m["rc"] != 0:
                    raise SystemExit(f"{label}: vigil scan failed: {m['stderr']}")
                samples.append(m)
            result[f"{label}_cpu_s"] = round(statistics.median(m["cpu_s"] for m in samples), 3)
            result[f"{label}_wall_s"] = round(statistics.median(m["wall_s"] for m in samples), 3)
        result["load_average_1m"] = os.getloadavg()[0]
    print(json.dumps(result))
    return 0


def linux(repeat: int) -> int:
    """Per-event latency of the agent's matching with the Linux Sigma rules next to the default rules."""
    from vigil.engine import Engine
    from vigil.engine.sigma import load_sigma
    from vigil.events.jsonl import read_jsonl

    t0 = time.perf_counter()
    ruleset = load_sigma([LINUX_RULES])
    engine = Engine()
    engine.load_path(DEFAULT_GENE_RULES)
    gene_rules = len(engine.rules)
    for rule in ruleset.rules:
        engine.add_rule(rule.ir)
    engine.compile(lazy=False)  # as the agent does
    load_s = time.perf_counter() - t0
    events = [e for e in read_jsonl(str(DEFAULT_LINUX_EVENTS)) if isinstance(e, dict)]
    rounds = max(1, repeat) * 2000
    latencies: list[float] = []
    clock = time.perf_counter_ns
    c0 = _cpu()
    for _ in range(rounds):
        for event in events:
            start = clock()
            engine.match(event)
            latencies.append((clock() - start) / 1000)
    cpu = _cpu() - c0
    latencies.sort()
    n = len(latencies)
    print(
        json.dumps(
            {
                "name": "sigma_linux_match",
                "sigma_rules": len(ruleset.rules),
                "gene_rules": gene_rules,
                "load_seconds": round(load_s, 3),
                "events": n,
                "events_per_cpu_s": round(n / cpu),
                "latency_us_p50": round(latencies[n // 2], 1),
                "latency_us_p99": round(latencies[int(n * 0.99)], 1),
                "latency_us_max": round(latencies[-1], 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
