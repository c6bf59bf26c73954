"""`vigil scan --jobs N`: where the rules' code is generated, before or after the fork.

A large rule set (SHARED_COMPILE_MIN_RULES and more: the SigmaHQ rules) is compiled once, in the
parent, before the workers fork: code generated after the fork would be generated again in every
worker, CPU that --jobs N pays N times and that the summary would count as scanning. A small one
(the gene rules) is not compiled before the fork: each worker generates the buckets its events
reach, in parallel, instead of both waiting for every bucket to be generated in the parent.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from vigil.cli import main
from vigil.cli import scan as scan_cli
from vigil.engine import compiler

GENE_RULES = Path("../shared/data/gene-rules/rules")
EVTX = Path("../shared/data/evtx/evtx")


def _generating_pids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> set[str]:
    """The processes that generated rule code during a `--jobs 2` scan of a few EVTX files."""
    log = tmp_path / "generated-by"
    finish_source = compiler._finish_source

    def recording(*args: Any, **kwargs: Any) -> str:
        with open(log, "a") as handle:  # the forked workers inherit this wrapper
            handle.write(f"{os.getpid()}\n")
        return finish_source(*args, **kwargs)

    monkeypatch.setattr(compiler, "_finish_source", recording)
    files = sorted(EVTX.glob("EVTX-ATTACK-SAMPLES/*/*.evtx"))[:12]
    out = tmp_path / "out"
    argv = ["scan", "--jobs", "2", "--rules", str(GENE_RULES), "--output", str(out), *map(str, files)]
    assert main(argv) == 0
    err = capfd.readouterr().err
    assert "events: 0" not in err
    return set(log.read_text().split()) if log.exists() else set()


def test_a_large_rule_set_is_compiled_in_the_parent_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(scan_cli, "SHARED_COMPILE_MIN_RULES", 1)  # the gene rules count as large
    assert _generating_pids(tmp_path, monkeypatch, capfd) == {str(os.getpid())}


def test_a_small_rule_set_is_compiled_in_the_workers_as_their_events_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    pids = _generating_pids(tmp_path, monkeypatch, capfd)
    assert pids  # rule code was generated...
    assert str(os.getpid()) not in pids  # ...in the workers, none before the fork


def test_the_gene_rules_are_a_small_rule_set() -> None:
    from vigil.engine import Engine

    engine = Engine()
    engine.load_path(GENE_RULES)
    assert 0 < len(engine.rules) < scan_cli.SHARED_COMPILE_MIN_RULES
