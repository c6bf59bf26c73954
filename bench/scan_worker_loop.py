"""Benchmark: a `vigil scan --jobs 2` worker's loop in one process, reading and matching apart.

    .venv/bin/python bench/scan_worker_loop.py            # SigmaHQ Windows rules, EVTX corpus
    .venv/bin/python bench/scan_worker_loop.py --rules ../shared/data/gene-rules/rules

The `Scanner` is built as a `--jobs 2` run builds it (the SigmaHQ set compiled before the fork,
the cyclic GC off); then every file of the corpus is read (the EVTX reader) and its events go
through `Scanner.process` (matching and output rendering), each timed in CPU seconds. The first
pass is what a worker does (a fresh fork sees each event once); the second shows what the
first-use work (template parsing, renderer and bucket compiles, RE2 DFA states) costs.

Prints one JSON object: ``first`` and ``second`` passes with ``read_cpu_s``, ``process_cpu_s``
and ``lines`` (printed), plus the rule and event counts.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _pass(scanner: Any, files: list[Path]) -> dict[str, Any]:
    from vigil.cli.scan import Stats
    from vigil.events.evtx import read_evtx

    stats = Stats()
    out: list[bytes] = []
    errors: list[Any] = []
    read = process = 0.0
    for path in files:
        start = time.process_time()
        events = list(read_evtx(path, on_error=errors.append))
        middle = time.process_time()
        scanner.process(events, out, stats, errors)
        read += middle - start
        process += time.process_time() - middle
    return {
        "read_cpu_s": round(read, 3),
        "process_cpu_s": round(process, 3),
        "events": stats.events,
        "lines": len(out),
        "errors": len(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", default="../shared/data/sigma/rules/windows")
    parser.add_argument("--corpus", default="../shared/data/evtx/evtx")
    opts = parser.parse_args()
    logging.disable(logging.WARNING)  # rules skipped for their log source are listed on stderr
    from vigil.cli.scan import Scanner

    args = argparse.Namespace(
        container=[],
        rules=[opts.rules],
        attack=False,
        all=False,
        min_criticality=0,
        no_filter=False,
        jobs=2,
        no_rule_cache=False,
    )
    scanner = Scanner(args)
    gc.disable()
    files = sorted(Path(opts.corpus).rglob("*.evtx"))
    first = _pass(scanner, files)
    second = _pass(scanner, files)
    print(
        json.dumps(
            {
                "name": "scan_worker_loop",
                "rules": len(scanner.engine.rules),
                "files": len(files),
                "first": first,
                "second": second,
            }
        )
    )


if __name__ == "__main__":
    main()
