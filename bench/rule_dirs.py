"""Extra rule directories for the agent benchmarks: ``--default-rules`` and ``--rules DIR``.

Copies vigil's default rules and any other rule directory (Gene ``.gen`` and Sigma ``.yml`` files,
e.g. SigmaHQ ``rules/linux``) into the agent's rules directory, and says what the agent will load
from it, so a latency figure names the rules it was measured with.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--default-rules", action="store_true", help="load vigil's default rules too")
    parser.add_argument(
        "--rules", action="append", default=[], type=Path, metavar="DIR", help="another rule directory"
    )


def install(args: argparse.Namespace, rules_dir: Path) -> dict[str, Any]:
    """Copy the requested directories under ``rules_dir``; the JSON fields describing them."""
    extra = list(args.rules)
    if args.default_rules:
        from vigil.rules import default_rules_path

        extra.insert(0, default_rules_path())
    for i, directory in enumerate(extra):
        shutil.copytree(directory, rules_dir / f"extra{i}-{Path(directory).name}")
    return {"rule_dirs": [str(d) for d in extra], "rules_loaded": count_rules(rules_dir)}


def count_rules(rules_dir: Path) -> dict[str, int]:
    """Rules the agent will load from ``rules_dir`` (the engine's view, plus Sigma correlations)."""
    from vigil.engine import Engine

    engine = Engine()
    engine.load_path(rules_dir)
    try:
        from vigil.engine.sigma import correlation_engine_for
    except ImportError:
        correlation = None
    else:
        correlation = correlation_engine_for([rules_dir])
    sigma = sum(1 for r in engine.rules if r.ir.sigma_id is not None)
    return {
        "gene": len(engine.rules) - sigma,
        "sigma": sigma,
        "sigma_correlation": len(correlation.rules) if correlation is not None else 0,
    }
