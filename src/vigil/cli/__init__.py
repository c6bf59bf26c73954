"""The `vigil` command.

Each sub-command lives in its own module of this package and exposes ``register(subparsers)``,
which adds its parser (with its one-line help from ``COMMANDS``) and sets ``handler`` (a callable
taking the parsed namespace and returning an exit code). Only the module of the command being run is
imported; the others get a bare parser carrying their help, enough for `vigil --help` and for
argparse's errors. Modules import their heavy dependencies inside the handler, so ``vigil scan``
never pays for the manager's web stack.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["COMMANDS", "build_parser", "entry", "main"]

#: Sub-command modules and their one-line help, in the order `vigil --help` lists them.
COMMANDS = {
    "scan": "match events (JSON lines, EVTX) against Gene/Sigma rules",
    "rules": "check, list or dump a rule set",
    "manager": "run and administer the fleet manager",
    "agent": "the endpoint agent (run, doctor, config)",
    "up": "run a manager and a local agent on this host (first run sets them up)",
    "simulate": "run harmless activities that trigger the default rules",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every sub-command, or only of ``command`` (the others get a bare parser with
    their help: importing their modules costs every short `vigil scan` about 10 ms)."""
    parser = argparse.ArgumentParser(
        prog="vigil", description="vigil: Linux EDR, rule engine and fleet manager"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        if command is None or name == command:
            importlib.import_module(f"vigil.cli.{name}").register(subparsers)
        else:
            subparsers.add_parser(name, help=help_text)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (the first argument that is not an option), if any."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def _parse(argv: Sequence[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command(argv))
    return parser, parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return _run(*_parse(argv))


def entry() -> int:
    """`vigil` as a process (the console script, ``python -m vigil``).

    A command that sets ``exit_without_teardown`` (`vigil scan`: it closes what it writes) then
    ends the process once its standard streams and log handlers are flushed, without the
    interpreter's teardown: the last garbage collection over every object left (the compiled
    rules, the caches: up to 50 ms) and the finalization of every module (3-5 ms), work the
    operating system does in a few when the process ends.
    """
    parser, args = _parse(None)
    code = _run(parser, args)
    if getattr(args, "exit_without_teardown", False):
        gc.freeze()  # nothing collects from here on, whatever runs before the process ends
        _exit_now(code)
    return code


def _exit_now(code: int) -> NoReturn:
    """End the process with ``code`` after flushing what Python's own exit would flush."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`vigil scan | head`), a closed stream
            pass
    os._exit(code)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
