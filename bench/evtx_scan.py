"""Benchmark: vigil over the EVTX corpus, parsing and scanning.

    .venv/bin/python bench/evtx_scan.py                   # scan with the gene-rules (parse + match)
    .venv/bin/python bench/evtx_scan.py --parse-only      # the EVTX reader alone
    .venv/bin/python bench/evtx_scan.py --parser rust-xml # a candidate parser, for comparison
    .venv/bin/python bench/evtx_scan.py --cli             # the real `vigil scan --all --attack`
    .venv/bin/python bench/evtx_scan.py --cli --jobs 1 2 --runs 3  # and its scaling with --jobs

Prints one JSON object: name, events, seconds, events_per_s, cpu_seconds, events_per_cpu_s
(steadier on a loaded machine), peak_rss_mb, files, errors (and, for a scan, positives).
``--repeat N`` runs the corpus N times to steady the figure. With ``--cli --jobs N...`` each run
also reports the CPU of the parent and of the workers apart, the start-up alone, and the scaling
against one job (see bench/cli_run.py).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.cli_run import scan_scaling

DEFAULT_CORPUS = Path("../shared/data/evtx/evtx")
DEFAULT_RULES = Path("../shared/data/gene-rules/rules")


def _vigil(path: Path, errors: list[Any]) -> Iterator[Any]:
    from vigil.events.evtx import read_evtx

    return read_evtx(path, on_error=errors.append)


def _rust_json(path: Path, errors: list[Any]) -> Iterator[Any]:
    """The evtx (Rust) binding's JSON, decoded: not gene's shape (see docs/scan.md)."""
    import evtx
    import orjson

    for record in evtx.PyEvtxParser(str(path)).records_json():
        yield orjson.loads(record["data"])


def _rust_xml(path: Path, errors: list[Any]) -> Iterator[Any]:
    """The evtx (Rust) binding's XML, parsed by ElementTree: not gene's shape either."""
    from xml.etree import ElementTree

    import evtx

    for record in evtx.PyEvtxParser(str(path)).records():
        yield ElementTree.fromstring(record["data"].encode())


PARSERS: dict[str, Callable[[Path, list[Any]], Iterator[Any]]] = {
    "vigil": _vigil,
    "rust-json": _rust_json,
    "rust-xml": _rust_xml,
}


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _cli(files: list[Path], rules: Path, jobs: list[int] | None, runs: int) -> int:
    """The real ``vigil scan --all --attack`` over every file (output discarded)."""
    import os
    import subprocess

    from vigil.events.evtx import read_evtx

    events = sum(1 for path in files for _ in read_evtx(path, on_error=lambda error: None))
    command = [sys.executable, "-m", "vigil", "scan", "--rules", str(rules), "--all", "--attack"]
    if jobs:
        scan = [*command, "--output", os.devnull]
        result: dict[str, Any] = {"name": "evtx-scan-cli", "events": events, "files": len(files)}
        result.update(scan_scaling(scan, [str(f) for f in files], jobs, runs, events))
        result["rules"] = str(rules)
        result["cpu_count"] = os.cpu_count()
        print(json.dumps(result))
        return 0
    start = time.perf_counter()
    subprocess.run(
        [*command, *map(str, files)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    seconds = time.perf_counter() - start
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "name": "evtx-scan-cli",
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds),
        "cpu_seconds": round(child.ru_utime + child.ru_stime, 3),
        "peak_rss_mb": round(child.ru_maxrss / 1024, 1),
        "files": len(files),
    }
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    parser.add_argument("--parse-only", action="store_true")
    parser.add_argument("--parser", choices=sorted(PARSERS), default="vigil")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--cli", action="store_true", help="time `vigil scan` in a subprocess")
    parser.add_argument("--jobs", type=int, nargs="+", help="with --cli: `vigil scan --jobs N` for each N")
    parser.add_argument("--runs", type=int, default=5, help="with --cli --jobs: interleaved rounds")
    args = parser.parse_args(argv)

    files = sorted(args.corpus.rglob("*.evtx"))
    if args.cli:
        return _cli(files, args.rules, args.jobs, args.runs)
    read = PARSERS[args.parser]
    scan_only = args.parse_only or args.parser != "vigil"
    engine: Any = None
    dumps: Callable[[Any], Any] | None = None
    if not scan_only:
        from vigil.engine import Engine
        from vigil.events.gojson import dumps as gojson_dumps

        engine = Engine(show_attack=True)
        engine.load_path(str(args.rules))
        dumps = gojson_dumps

    events = positives = 0
    errors: list[Any] = []
    start = time.perf_counter()
    cpu_start = time.process_time()
    for _ in range(args.repeat):
        for path in files:
            for event in read(path, errors):
                events += 1
                if engine is not None and dumps is not None:
                    if engine.scan(event).signature:
                        positives += 1
                    dumps(event)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start

    name = f"evtx-parse-{args.parser}" if scan_only else "evtx-scan"
    result: dict[str, Any] = {
        "name": name,
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds) if seconds else None,
        "cpu_seconds": round(cpu_seconds, 3),
        "events_per_cpu_s": round(events / cpu_seconds) if cpu_seconds else None,
        "peak_rss_mb": _peak_rss_mb(),
        "files": len(files) * args.repeat,
        "errors": len(errors),
    }
    if not scan_only:
        result["positives"] = positives
        result["rules"] = str(args.rules)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
