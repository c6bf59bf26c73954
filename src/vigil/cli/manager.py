"""`vigil manager`: placeholder until its issue lands (see the issue tracker)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("manager", help="(not built yet)")
    parser.set_defaults(handler=_not_built)


def _not_built(args: argparse.Namespace) -> int:
    print("vigil manager: not built yet in this version", file=sys.stderr)
    return 2
