"""`vigil scan`: match JSON-lines or EVTX events against rules, print what gene v2.3.0 prints.

Output (``--format gene``) is byte for byte gene's: each printed event as Go ``json.Marshal`` with its
``GeneInfo``. gene prints an event when it matched an alert rule or a filter rule, and its
criticality is at least ``--min-criticality`` (filtered events always pass); ``--all`` prints every
event; ``--no-filter`` drops events that only a filter rule matched. Bad JSON lines are reported on
stderr with file:line and skipped (gene stops reading the file there).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from vigil.cli import COMMANDS

logger = logging.getLogger(__name__)

BATCH = 256

#: From this many rules on, `--jobs N` generates every bucket's code once in the parent before the
#: workers fork (the SigmaHQ set: 0.66 s that N workers would each repeat while scanning). Below it
#: each worker generates only the buckets its events reach, in parallel: for the gene rules 4 of 30
#: buckets (10 ms in each worker) instead of all 30 (21 ms before the fork, which both wait for).
SHARED_COMPILE_MIN_RULES = 500


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "scan",
        help=COMMANDS["scan"],
        description="Match events against rules and print the matching events as gene v2.3.0 does.",
    )
    p.add_argument("--rules", required=True, action="append", metavar="PATH", help="rule file or directory")
    p.add_argument("--all", action="store_true", help="print every event (gene -all)")
    p.add_argument("--attack", action="store_true", help="include ATT&CK in GeneInfo (gene -a)")
    p.add_argument("--min-criticality", type=int, default=0, metavar="N", help="gene -c")
    p.add_argument(
        "--no-filter", action="store_true", help="do not print filter-only events (gene -no-filter)"
    )
    p.add_argument("--format", choices=("gene",), default="gene", help="output format (default: gene)")
    p.add_argument(
        "--container",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="load an IoC container (one a line)",
    )
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (output order kept)")
    p.add_argument("--output", metavar="FILE", help="write events here instead of stdout")
    p.add_argument("--summary", action="store_true", help="print per-rule counts at the end (stderr)")
    p.add_argument(
        "--no-rule-cache", action="store_true", help="compile every Sigma rule, without the on-disk cache"
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help=".evtx file, JSON-lines file, directory (its log files, recursively), or - for stdin",
    )
    p.set_defaults(handler=run, exit_without_teardown=True)


@dataclass
class Stats:
    events: int = 0
    positives: int = 0
    printed: int = 0
    errors: int = 0
    rules: Counter[str] = field(default_factory=Counter)

    def add(self, other: Stats) -> None:
        self.events += other.events
        self.positives += other.positives
        self.printed += other.printed
        self.errors += other.errors
        self.rules.update(other.rules)


class Scanner:
    """The matching and printing half of a scan, shared by the main process and the workers."""

    def __init__(self, args: argparse.Namespace) -> None:
        from vigil.engine import Engine
        from vigil.engine.rule_cache import configure_rule_cache
        from vigil.events.gojson import dumps

        configure_rule_cache(enabled=False if getattr(args, "no_rule_cache", False) else None)
        self.engine = Engine(show_attack=args.attack)
        for spec in args.container:
            name, sep, path = spec.partition("=")
            if not sep or not name:
                raise ValueError(f"--container {spec!r}: expected NAME=FILE")
            self.engine.load_container_file(name, path)
        for path in args.rules:
            self.engine.load_path(path)
        jobs = getattr(args, "jobs", 1)
        self.engine.compile(lazy=jobs <= 1 or len(self.engine.rules) < SHARED_COMPILE_MIN_RULES)
        self.correlation = _correlation_engine(args.rules)
        self.dumps = dumps
        self.all = args.all
        self.min_crit = args.min_criticality
        self.no_filter = args.no_filter

    def process(self, items: list[Any], out: list[bytes], stats: Stats, errors: list[Any]) -> None:
        """Match a batch of events and render the printed ones; the read errors among the items
        (LineError, EvtxError) are counted and put in ``errors``."""
        match = self.engine.match
        nomatch = self.engine.no_match
        dumps = self.dumps
        fragment = orjson.Fragment
        show_attack = self.engine.show_attack
        everything, min_crit, no_filter = self.all, self.min_crit, self.no_filter
        bad = positives = printed = 0
        by_result: dict[Any, int] = {}  # events per (shared) result: rule counts added once per batch
        for ev in items:
            if ev.__class__ is not dict:
                bad += 1
                errors.append(ev)
                continue
            res = match(ev)
            if res is nomatch and not everything:
                continue
            if self.correlation is not None and res.sigma_ids:
                self._correlate(ev, res.sigma_ids, out, stats)
            sig = res.signature
            if sig:
                positives += 1
                by_result[res] = by_result.get(res, 0) + 1
            elif not res.filtered and not everything:
                continue
            if not everything:
                filtered = res.filtered and not no_filter  # --no-filter: filter matches do not count
                if not ((sig or filtered) and (res.criticality >= min_crit or filtered)):
                    continue
            if sig or not res.filtered:
                e = ev.get("Event")
                if e.__class__ is dict:
                    e["GeneInfo"] = fragment(res.gene_info_json(show_attack, False))
            out.append(dumps(ev))
            printed += 1
        rules = stats.rules
        for res, count in by_result.items():
            for name in res.signature:
                rules[name] += count
        stats.events += len(items) - bad
        stats.errors += bad
        stats.positives += positives
        stats.printed += printed

    def _correlate(self, ev: Any, sigma_ids: list[str], out: list[bytes], stats: Stats) -> None:
        """Feed Sigma correlation rules; each hit is printed as one ``{"Detection": ...}`` line."""
        from vigil.engine.sigma import event_timestamp, hit_record

        assert self.correlation is not None
        ts = event_timestamp(ev)
        if ts is None:  # no Event.System.TimeCreated.SystemTime: the event cannot be placed in time
            return
        for hit in self.correlation.feed(ev, sigma_ids, ts):
            stats.rules[hit.rule.name] += 1
            out.append(self.dumps({"Detection": hit_record(hit)}))
            stats.printed += 1


# vigil.engine.sigma.loader.SIGMA_SUFFIXES, here so that gene-only scans never import pySigma.
_SIGMA_SUFFIXES = (".yml", ".yaml")


def _holds_sigma_files(paths: list[str]) -> bool:
    for path in paths:
        if path.endswith(_SIGMA_SUFFIXES):
            return True
        for _, _, names in os.walk(path):
            if any(name.endswith(_SIGMA_SUFFIXES) for name in names):
                return True
    return False


def _correlation_engine(paths: list[str]) -> Any:
    """Sigma correlation rules under the rule paths (None without any, or without the sigma extra).

    The Sigma front end is imported only when a rule path holds YAML files: importing pySigma is
    about a third of a gene-rules scan's start-up, which every --jobs N waits for.
    """
    if not _holds_sigma_files(paths):
        return None
    try:
        from vigil.engine.sigma import correlation_engine_for
    except ImportError:
        return None
    return correlation_engine_for(paths)


def _events(path: str, stack: contextlib.ExitStack) -> Iterator[Any]:
    """Events (and LineErrors) of one input; files are closed by ``stack``."""
    if path.lower().endswith(".evtx"):
        try:
            from vigil.events.evtx import iter_evtx
        except ImportError:
            raise OSError(
                f"{path}: EVTX support (vigil.events.evtx) is not available in this build"
            ) from None
        return iter_evtx(path)  # bad chunks and records come as errors in the stream
    from vigil.events.jsonl import iter_stream

    if path == "-":
        return iter_stream(sys.stdin.buffer, "<stdin>")
    return iter_stream(stack.enter_context(open(path, "rb", buffering=1 << 20)), path)


class Progress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.monotonic()
        self.last = self.start

    def update(self, stats: Stats) -> None:
        now = time.monotonic()
        if self.enabled and now - self.last >= 0.5:
            self.last = now
            rate = stats.events / max(now - self.start, 1e-9)
            print(
                f"\r{stats.events} events, {stats.positives} positives, {rate:,.0f} ev/s",
                end="",
                file=sys.stderr,
            )

    def done(self) -> None:
        if self.enabled:
            print(file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from vigil.engine import RuleLoadError

    started = time.monotonic()
    try:
        if any(path != "-" and os.path.isdir(path) for path in args.inputs):
            from vigil.cli.scan_inputs import expand_inputs  # imported only for directories

            args.inputs = expand_inputs(args.inputs)  # first: a bad directory is reported before the load
        listed = time.monotonic()
        scanner = Scanner(args)
    except RuleLoadError as err:
        for e in err.errors:
            print(f"vigil scan: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as err:
        print(f"vigil scan: {err}", file=sys.stderr)
        return 2
    loaded = time.monotonic()
    out_stream: IO[bytes] = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    stats = Stats()
    progress = Progress(sys.stderr.isatty())
    if args.jobs > 1 and scanner.correlation is not None:
        logger.warning("Sigma correlation rules need one ordered stream: scanning with --jobs 1")
        args.jobs = 1
    # Decoded events are acyclic and short-lived: the cyclic GC only costs time here (about 20 %).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        if args.jobs > 1:
            from vigil.cli.scan_jobs import run_parallel

            run_parallel(scanner, args, out_stream, stats, progress)
        else:
            for path in args.inputs:
                _run_one(scanner, path, out_stream, stats, progress)
    except BrokenPipeError:
        raise  # whoever read the output went away (`vigil scan | head`): a quiet end (vigil.cli)
    except (OSError, ValueError) as err:
        print(f"vigil scan: {err}", file=sys.stderr)
        return 2
    finally:
        if gc_was_enabled:
            gc.enable()
        progress.done()
        if args.output:
            out_stream.close()
        else:
            out_stream.flush()
    done = time.monotonic()
    timing = Timing(len(scanner.engine.rules), loaded - listed, done - loaded + listed - started)
    _summary(stats, timing, args.summary)
    return 0


def _run_one(scanner: Scanner, path: str, out_stream: IO[bytes], stats: Stats, progress: Progress) -> None:
    with contextlib.ExitStack() as stack:
        if path.lower().endswith(".evtx"):
            _run_events(scanner, _events(path, stack), out_stream, stats, progress)
            return
        if path == "-":
            stream, name = sys.stdin.buffer, "<stdin>"
        else:
            stream, name = stack.enter_context(open(path, "rb", buffering=1 << 20)), path
        _run_jsonl(scanner, stream, name=name, out_stream=out_stream, stats=stats, progress=progress)


def _emit(
    scanner: Scanner, batch: list[Any], out_stream: IO[bytes], stats: Stats, progress: Progress
) -> None:
    out: list[bytes] = []
    errors: list[Any] = []
    scanner.process(batch, out, stats, errors)
    for e in errors:
        print(f"vigil scan: {e}", file=sys.stderr)
    if out:
        out.append(b"")
        out_stream.write(b"\n".join(out))
    progress.update(stats)


def _run_events(
    scanner: Scanner, events: Iterator[Any], out_stream: IO[bytes], stats: Stats, progress: Progress
) -> None:
    while True:
        batch = list(itertools.islice(events, BATCH))
        if not batch:
            return
        _emit(scanner, batch, out_stream, stats, progress)


def _run_jsonl(
    scanner: Scanner, stream: IO[bytes], *, name: str, out_stream: IO[bytes], stats: Stats, progress: Progress
) -> None:
    """One JSON object a line, decoded inline; from the first other line on, the full reader takes over."""
    from vigil.events.jsonl import iter_stream

    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    first = 1
    while True:
        lines = stream.readlines(1 << 18)
        if not lines:
            return
        batch: list[Any] = []
        append = batch.append
        for i, line in enumerate(lines):
            try:
                obj = loads(line)
            except decode_error:
                if not line.strip(b" \t\r\n"):
                    continue
                obj = None
            if obj.__class__ is dict:
                append(obj)
                continue
            _emit(scanner, batch, out_stream, stats, progress)
            rest = iter_stream(itertools.chain(lines[i:], stream), name, first + i)  # type: ignore[arg-type]
            _run_events(scanner, rest, out_stream, stats, progress)
            return
        first += len(lines)
        _emit(scanner, batch, out_stream, stats, progress)


@dataclass(frozen=True)
class Timing:
    """Rules loaded; seconds spent loading and compiling them, and the rest: listing the inputs,
    reading, matching and writing, with the start and end of the --jobs workers."""

    rules: int
    load_seconds: float
    scan_seconds: float


def _summary(stats: Stats, timing: Timing, per_rule: bool) -> None:
    """``seconds`` and ``events/s`` cover the whole run, load included (as before); the ``scan``
    figures leave the load out."""
    seconds = timing.load_seconds + timing.scan_seconds
    rate = stats.events / seconds if seconds > 0 else 0.0
    scan_rate = stats.events / timing.scan_seconds if timing.scan_seconds > 0 else 0.0
    lines = [
        f"events: {stats.events}",
        f"positives: {stats.positives}",
        f"printed: {stats.printed}",
        f"errors: {stats.errors}",
        f"rules: {timing.rules}",
        f"seconds: {seconds:.3f}",
        f"events/s: {rate:,.0f}",
        f"load seconds: {timing.load_seconds:.3f}",
        f"scanning seconds: {timing.scan_seconds:.3f}",
        f"scanning events/s: {scan_rate:,.0f}",
    ]
    if per_rule:
        lines.append("per rule:")
        width = max((len(n) for n in stats.rules), default=0)
        lines.extend(
            f"  {name:<{width}}  {count}"
            for name, count in sorted(stats.rules.items(), key=lambda x: (-x[1], x[0]))
        )
    print("\n".join(lines), file=sys.stderr)
