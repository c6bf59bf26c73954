"""Benchmark: engine throughput as the rule set grows to 1x, 10x and 100x the gene-rules.

    .venv/bin/python bench/rules_scale.py                       # scales 1, 10, 100
    .venv/bin/python bench/rules_scale.py --scales 1 10 --min-seconds 5

Scale 1 is ``gene-rules/rules`` as published.  Scale N adds N-1 variants of every rule (from
``compiled.gen``, the template-expanded rules): each renamed (``Name_v<k>``) and with its literals
changed so that no predicate is shared with the original or another variant: a regex ``R`` becomes
``R|v<k>q<k>z`` (gene compiles ``(R|v<k>q<k>z)``: same matches, different pattern), an ``=``
literal gets a ``~<k>`` suffix, a
number is shifted by ``k``.  Container and indirect (``@Field``) statements are kept as they are.

Each scale runs in its own process (so ``peak_rss_mb`` is that scale's), matching the events of
``--events`` (JSON lines, decoded once) again and again for at least ``--min-seconds``.  Prints one
JSON object: totals (name, events, seconds, events_per_s, peak_rss_mb) and a ``scales`` list with,
per scale: rules, load_seconds, events, seconds, events_per_s, events_per_cpu_s (steadier on a
loaded machine), positives_per_pass (events with a signature), signatures_per_pass (rule hits:
the variants of a matching regex rule fire too), peak_rss_mb.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

GENE_RULES = Path("../shared/data/gene-rules")
DEFAULT_EVENTS = Path("../shared/data/events/whids-sample-events.jsonl")

_STATEMENT = re.compile(r"^(\s*\$\w+\s*:\s*[\w.\-/]+\s*)(~=|&=|<=|>=|=|<|>)(\s*)'(.*)'(\s*)$", re.S)


def _shift_number(text: str, k: int) -> str:
    try:
        value = int(text, 0)
    except ValueError:
        return f"{text}~{k}"
    return hex(value + k) if text.lower().startswith("0x") else str(value + k)


def variant_statement(statement: str, k: int) -> str:
    """The k-th variant of one match statement (unchanged if it is a container or indirect match)."""
    if "extract(" in statement:
        return statement
    match = _STATEMENT.match(statement)
    if match is None:
        return statement
    head, op, space, value, tail = match.groups()
    if value.startswith("@"):
        return statement
    if op == "~=":
        value = f"{value}|v{k}q{k}z"  # gene wraps the value as "(" + value + ")"
    elif op == "=":
        value = f"{value}~{k}"
    else:
        value = _shift_number(value, k)
    return f"{head}{op}{space}'{value}'{tail}"


def variant_rules(compiled: Path, k: int) -> str:
    """The k-th variant of every rule of ``compiled.gen``, as a stream of JSON objects."""
    out: list[bytes] = []
    for line in compiled.read_bytes().splitlines():
        if not line.strip():
            continue
        rule: dict[str, Any] = orjson.loads(line)
        rule["Name"] = f"{rule['Name']}_v{k}"
        rule["Matches"] = [variant_statement(s, k) for s in rule.get("Matches") or []]
        out.append(orjson.dumps(rule))
    return b"\n".join(out).decode()


def _load_events(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def run_scale(scale: int, rules: Path, events_path: Path, min_seconds: float) -> dict[str, Any]:
    from vigil.engine import Engine

    events = _load_events(events_path)
    start = time.perf_counter()
    engine = Engine(show_attack=True)
    engine.load_path(rules / "rules")
    for k in range(1, scale):
        engine.load_text(variant_rules(rules / "compiled.gen", k), source=f"variant-{k}.gen")
    engine.compile(lazy=False)  # every bucket now: the timed matching generates no code
    load_seconds = time.perf_counter() - start

    match = engine.match
    results = [match(event) for event in events]
    positives = sum(1 for r in results if r.signature)
    signatures = sum(len(r.signature) for r in results)
    done = 0
    start = time.perf_counter()
    cpu_start = time.process_time()
    while True:
        for event in events:
            match(event)
        done += len(events)
        seconds = time.perf_counter() - start
        if seconds >= min_seconds:
            break
    cpu_seconds = time.process_time() - cpu_start
    return {
        "scale": scale,
        "rules": len(engine.rules),
        "load_seconds": round(load_seconds, 3),
        "events": done,
        "seconds": round(seconds, 3),
        "events_per_s": round(done / seconds),
        "events_per_cpu_s": round(done / cpu_seconds) if cpu_seconds else None,
        "positives_per_pass": positives,
        "signatures_per_pass": signatures,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--rules", type=Path, default=GENE_RULES, help="the gene-rules checkout")
    parser.add_argument("--events", type=Path, default=DEFAULT_EVENTS, help="JSON-lines events")
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        print(json.dumps(run_scale(args.child, args.rules, args.events, args.min_seconds)))
        return 0

    results = []
    for scale in args.scales:
        command = [sys.executable, __file__, "--child", str(scale), "--rules", str(args.rules)]
        command += ["--events", str(args.events), "--min-seconds", str(args.min_seconds)]
        run = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(run.stdout))
    events = sum(r["events"] for r in results)
    seconds = sum(r["seconds"] for r in results)
    print(
        json.dumps(
            {
                "name": "rules-scale",
                "events": events,
                "seconds": round(seconds, 3),
                "events_per_s": round(events / seconds) if seconds else None,
                "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
                "events_file": str(args.events),
                "scales": results,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
