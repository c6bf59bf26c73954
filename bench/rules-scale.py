"""Throughput with 1x, 10x and 100x the gene-rules: renamed copies whose literals and regexes differ.

Usage: .venv/bin/python bench/rules-scale.py [--factors 1 10 100]
Copy k >= 1 of every rule gets the name suffix ``.k``; its ``=`` values get ``-k`` appended and each
``~=`` regex ``R`` becomes ``zq<k>x(R)``: other literals, so no two copies share a compiled pattern
and the copies detect other things than the originals (as the rules of a real, larger set would):
the cost measured is finding the rules that can match, not reporting 100x more detections.
Prints one JSON object: load+compile time and in-memory events/s over the WHIDS sample events for
each factor.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vigil.engine import Engine  # noqa: E402
from vigil.events.jsonl import read_jsonl  # noqa: E402

DATA = ROOT / "../shared/data"
_REGEX = re.compile(r"^(\$\w+:\s*\S+\s*~=\s+')(.*)'$")
_EQ = re.compile(r"^(\$\w+:\s*\S+\s*=\s+')(.*)'$")


def _variant(statement: str, k: int) -> str:
    m = _REGEX.match(statement)
    if m:
        return f"{m.group(1)}zq{k}x({m.group(2)})'"
    m = _EQ.match(statement)
    if m:
        return f"{m.group(1)}{m.group(2)}-{k}'"
    return statement


def _rules(factor: int) -> str:
    base = Engine()
    base.load_path(DATA / "gene-rules/rules")
    out = []
    for k in range(factor):
        for info in base.rules:
            raw: dict[str, Any] = json.loads(json.dumps(info.raw))
            if k:
                raw["Name"] = f"{raw['Name']}.{k}"
                raw["Matches"] = [_variant(s, k) for s in raw["Matches"] or []]
            out.append(json.dumps(raw))
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--factors", type=int, nargs="*", default=[1, 10, 100])
    ap.add_argument("--loops", type=int, default=20)
    args = ap.parse_args()
    events = [e for e in read_jsonl(DATA / "events/whids-sample-events.jsonl") if isinstance(e, dict)]
    result: dict[str, Any] = {"bench": "rules-scale"}
    for factor in args.factors:
        text = _rules(factor)
        engine = Engine()
        t0 = time.perf_counter()
        engine.load_text(text, f"x{factor}")
        engine.compile(lazy=False)  # every bucket now: the timed matching generates no code
        load_s = time.perf_counter() - t0
        match = engine.match
        positives = 0
        cpu = time.process_time()
        for _ in range(args.loops):
            for ev in events:
                if match(ev).signature:
                    positives += 1
        cpu = time.process_time() - cpu
        n = len(events) * args.loops
        result[f"x{factor}"] = {
            "rules": len(engine.rules),
            "load_compile_s": round(load_s, 2),
            "events": n,
            "positives": positives,
            "events_per_s_cpu": round(n / cpu),
            "us_per_event": round(cpu / n * 1e6, 2),
        }
    base = result.get("x1")
    top = result.get(f"x{max(args.factors)}")
    if base and top:
        result["time_ratio_max_vs_1x"] = round(top["us_per_event"] / base["us_per_event"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
