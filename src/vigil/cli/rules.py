"""`vigil rules check|list|dump`: validate, list and dump rule sets.

``check`` reports every error of a rule set (file, line, rule, statement) and exits 1 if any;
``list`` prints the loaded rules in evaluation order (or their tags with ``--tags``); ``dump`` prints
gene rules as gene ``-dump`` does (compact JSON lines after template expansion, sorted by name).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vigil.cli import COMMANDS


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("rules", help=COMMANDS["rules"])
    sub = p.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="report every error of a rule set (exit 1 if any)")
    check.add_argument("path", metavar="PATH")
    check.add_argument(
        "--no-rule-cache", action="store_true", help="compile every Sigma rule, without the on-disk cache"
    )
    check.set_defaults(handler=run_check)
    lst = sub.add_parser("list", help="list loaded rules in evaluation order")
    lst.add_argument("path", metavar="PATH")
    lst.add_argument("--tags", action="store_true", help="list the tags in use instead")
    lst.set_defaults(handler=run_list)
    dump = sub.add_parser("dump", help="print gene rules like gene -dump (sorted by name)")
    dump.add_argument("path", metavar="PATH")
    dump.add_argument("patterns", nargs="*", metavar="REGEX", help="rule name regexes (default: all)")
    dump.set_defaults(handler=run_dump)


def _load(path: str) -> Any:
    from vigil.engine import Engine, RuleLoadError

    engine = Engine()
    try:
        engine.load_path(path)
    except RuleLoadError as err:
        for e in err.errors:
            print(f"vigil rules: {e}", file=sys.stderr)
        return None
    return engine


def run_check(args: argparse.Namespace) -> int:
    from vigil.engine import check_path
    from vigil.engine.rule_cache import configure_rule_cache

    configure_rule_cache(enabled=False if args.no_rule_cache else None)
    errors = check_path(args.path)
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} error(s)", file=sys.stderr)
        return 1
    engine = _load(args.path)
    if engine is None:
        return 1
    disabled = [r for r in engine.rules if r.disabled]
    print(f"{len(engine.rules)} rules loaded, {len(disabled)} disabled")
    for r in disabled:
        print(f"disabled: {r.name}: {r.disabled}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    engine = _load(args.path)
    if engine is None:
        return 1
    if args.tags:
        for tag in sorted({t for r in engine.rules for t in r.tags}):
            print(tag)
        return 0
    for r in engine.rules:
        state = f"disabled ({r.disabled})" if r.disabled else ("filter" if r.filter else "alert")
        src = f"{r.source.file}:{r.source.line}" if r.source else "-"
        print(f"{r.name}\t{r.criticality}\t{state}\t{','.join(r.tags)}\t{src}")
    return 0


def run_dump(args: argparse.Namespace) -> int:
    import re2

    from vigil.engine.dump import dump_rules

    engine = _load(args.path)
    if engine is None:
        return 1
    try:
        lines = dump_rules(engine.rules, args.patterns or [".*"])
    except re2.error as err:
        print(f"vigil rules dump: bad regex: {err}", file=sys.stderr)
        return 2
    out = sys.stdout.buffer
    for line in lines:
        out.write(line + b"\n")
    out.flush()
    return 0
