"""In-memory matching speed: pre-decoded events through Engine.match, events/s on one core.

Usage: .venv/bin/python bench/match.py [--loops N] [--rules PATH] [--events FILE]
Prints one JSON object. Besides the repeated-sample figure (what gene's 85k ev/s was measured on), it
reports a "distinct" figure where every event is a unique copy (all field values altered), so value
caches cannot help.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vigil.engine import Engine  # noqa: E402
from vigil.events.jsonl import read_jsonl  # noqa: E402

DATA = ROOT / "../shared/data"


def _distinct(events: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``n`` events, each a copy with a unique suffix on every EventData string (no repeated values)."""
    out = []
    for i in range(n):
        ev = copy.deepcopy(events[i % len(events)])
        data = ev.get("Event", {}).get("EventData")
        if isinstance(data, dict):
            for k, v in data.items():
                if isinstance(v, str):
                    data[k] = f"{v} {i}"
        out.append(ev)
    return out


def _rate(engine: Engine, events: list[dict[str, Any]], loops: int) -> tuple[float, int]:
    match = engine.match
    positives = 0
    start = time.process_time()
    for _ in range(loops):
        for ev in events:
            if match(ev).signature:
                positives += 1
    cpu = time.process_time() - start
    return len(events) * loops / cpu, positives


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loops", type=int, default=300)
    ap.add_argument("--rules", default=str(DATA / "gene-rules/rules"))
    ap.add_argument("--events", default=str(DATA / "events/whids-sample-events.jsonl"))
    args = ap.parse_args()
    engine = Engine()
    t0 = time.perf_counter()
    engine.load_path(args.rules)
    engine.compile(lazy=False)  # every bucket now: the timed matching generates no code
    load_s = time.perf_counter() - t0
    events = [e for e in read_jsonl(args.events) if isinstance(e, dict)]
    rate, positives = _rate(engine, events, args.loops)
    distinct = _distinct(events, len(events) * 20)
    d_rate, _ = _rate(engine, distinct, 1)
    print(
        json.dumps(
            {
                "bench": "match",
                "rules": len(engine.rules),
                "events": len(events) * args.loops,
                "positives": positives,
                "load_compile_s": round(load_s, 3),
                "events_per_s_cpu": round(rate),
                "distinct_events": len(distinct),
                "distinct_events_per_s_cpu": round(d_rate),
                "cpu": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
