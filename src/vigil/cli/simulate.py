"""`vigil simulate [--list] [--json] [NAME...]`: run harmless activities that trigger the default rules.

With a vigil agent running on this host, each scenario should produce the detections it lists.
Scenarios act only on files and processes they create and clean up even when they fail.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any

from vigil.cli import COMMANDS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help=COMMANDS["simulate"],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="scenarios to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and the rules they trigger")
    parser.add_argument("--json", action="store_true", help="print results as JSON lines")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vigil.simulate import ScenarioResult, run_scenario, select_scenarios

    try:
        selected = select_scenarios(args.names)
    except KeyError as exc:
        print(f"vigil simulate: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.list:
        for sc in selected:
            if args.json:
                print(json.dumps({"name": sc.name, "summary": sc.summary, "rules": list(sc.rules),
                                  "needs_root": sc.needs_root}))  # fmt: skip
                continue
            root = " (root)" if sc.needs_root else ""
            print(f"{sc.name}{root}")
            print(textwrap.indent(textwrap.fill(sc.summary, 96), "    "))
            print(textwrap.indent(textwrap.fill("rules: " + ", ".join(sc.rules), 96), "    "))
        return 0

    results: list[ScenarioResult] = []
    for sc in selected:
        result = run_scenario(sc)
        results.append(result)
        if args.json:
            print(json.dumps({
                "name": result.name, "status": result.status, "message": result.message,
                "rules": result.exercised_rules, "skipped_rules": result.skipped_rules,
            }), flush=True)  # fmt: skip
            continue
        line = f"{result.status:<8} {result.name}"
        if result.message:
            line += f": {result.message}"
        print(line, flush=True)
        if result.status == "ran":
            print(f"         should trigger: {', '.join(result.exercised_rules)}")
        for rule, reason in result.skipped_rules.items():
            print(f"         not exercised: {rule} ({reason})")
    if not args.json:
        ran = sum(r.status == "ran" for r in results)
        print(f"{ran} of {len(results)} scenario(s) ran; a running vigil agent reports their detections.")
    return 1 if any(r.status == "failed" for r in results) else 0
