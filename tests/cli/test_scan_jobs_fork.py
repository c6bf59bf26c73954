"""`vigil scan --jobs N`: the rules are compiled once, in the parent, before the workers fork.

Code generated after the fork would be generated again in every worker (the same buckets meet
events in each), CPU that --jobs N pays N times and that the summary would count as scanning.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from vigil.cli import main
from vigil.engine import compiler

GENE_RULES = Path("../shared/data/gene-rules/rules")
EVTX = Path("../shared/data/evtx/evtx")


def test_no_rule_code_is_generated_in_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "generated-by"
    finish_source = compiler._finish_source

    def recording(*args: Any, **kwargs: Any) -> str:
        with open(log, "a") as handle:  # the forked workers inherit this wrapper
            handle.write(f"{os.getpid()}\n")
        return finish_source(*args, **kwargs)

    monkeypatch.setattr(compiler, "_finish_source", recording)
    files = sorted(EVTX.glob("EVTX-ATTACK-SAMPLES/*/*.evtx"))[:12]
    assert (
        main(
            [
                "scan",
                "--jobs",
                "2",
                "--rules",
                str(GENE_RULES),
                "--output",
                str(tmp_path / "out"),
                *map(str, files),
            ]
        )
        == 0
    )
    err = capfd.readouterr().err
    assert "events: 0" not in err
    pids = log.read_text().split()
    assert pids  # rule code was generated...
    assert set(pids) == {str(os.getpid())}  # ...by the parent only
