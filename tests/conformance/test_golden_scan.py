"""Scans byte-identical to gene v2.3.0 (``gene -all -a``) and the gene-rules set as gene loads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.cli import main
from vigil.engine import Engine

DATA = Path(__file__).resolve().parents[2] / "../shared/data"
GOLDEN = DATA / "golden"
RULES = DATA / "gene-rules" / "rules"


def _scan(capfdbinary: pytest.CaptureFixture[bytes], inputs: list[str], *extra: str) -> bytes:
    code = main(["scan", "--rules", str(RULES), "--all", "--attack", *extra, *inputs])
    out, _ = capfdbinary.readouterr()
    assert code == 0
    return out


def _diff(got: bytes, want: bytes) -> str:
    g, w = got.splitlines(), want.splitlines()
    bad = [i for i, (a, b) in enumerate(zip(g, w, strict=False)) if a != b]
    return f"{len(g)} vs {len(w)} lines, {len(bad)} differ, first: {bad[:5]}"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_whids_sample_events(capfdbinary: pytest.CaptureFixture[bytes], jobs: str) -> None:
    got = _scan(capfdbinary, [str(DATA / "events/whids-sample-events.jsonl")], "--jobs", jobs)
    want = (GOLDEN / "whids-sample-events.gene-v2.3.0.all-a.jsonl").read_bytes()
    assert got == want, _diff(got, want)


def test_gene_rules_tests(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    order = (GOLDEN / "tests-order.txt").read_text().split()
    got = _scan(capfdbinary, [str(DATA / "gene-rules" / name) for name in order])
    want = (GOLDEN / "gene-rules-tests.gene-v2.3.0.all-a.jsonl").read_bytes()
    assert got == want, _diff(got, want)


def test_gene_rules_load_as_gene_does() -> None:
    engine = Engine()
    engine.load_path(RULES)
    assert len(engine.rules) == 134
    disabled = {r.name: r.disabled for r in engine.rules if r.disabled}
    assert disabled == {
        "BlacklistedHash": 'unknown container "blacklist"',
        "BlacklistedImphash": 'unknown container "blacklist"',
        "BlacklistedDomain": 'unknown container "blacklist"',
        "DomainInMisp": 'unknown container "misp"',
        "SysmonDomainInMisp": 'unknown container "misp"',
        "NotWhitelisted": 'unknown container "whitelist"',
    }
    assert sum(r.filter for r in engine.rules) == 1


def test_load_order_is_gene_signature_order() -> None:
    """gene's stderr lists rules in load order; the first loaded ones come from the root files."""
    engine = Engine()
    engine.load_path(RULES)
    names = [r.name for r in engine.rules]
    log = (GOLDEN / "whids-sample-events.gene-v2.3.0.stderr.txt").read_text()
    logged = [line.split('"')[1] for line in log.splitlines() if "has been disabled at compile time" in line]
    assert [n for n in names if n in logged] == logged


def test_dump_equals_compiled_gen() -> None:
    from vigil.engine.dump import dump_rules

    engine = Engine()
    engine.load_path(RULES)
    got = b"".join(line + b"\n" for line in dump_rules(engine.rules))
    assert got == (DATA / "gene-rules" / "compiled.gen").read_bytes()


def test_compiled_gen_loads_same_rules() -> None:
    engine = Engine()
    engine.load_path(DATA / "gene-rules" / "compiled.gen")
    assert sorted(r.name for r in engine.rules) == sorted(r.name for r in _gene_rules().rules)


def _gene_rules() -> Engine:
    engine = Engine()
    engine.load_path(RULES)
    return engine


@pytest.mark.parametrize("index_min", [0, 10**9])
def test_indexed_and_linear_buckets_agree_with_gene(monkeypatch: pytest.MonkeyPatch, index_min: int) -> None:
    """Every bucket indexed by required regexes (0) or none (10**9): both reproduce gene exactly."""
    from vigil.engine import compiler
    from vigil.events.gojson import dumps
    from vigil.events.jsonl import read_jsonl

    monkeypatch.setattr(compiler, "INDEX_MIN", index_min)
    engine = Engine(show_attack=True)
    engine.load_path(RULES)
    order = (GOLDEN / "tests-order.txt").read_text().split()
    got = []
    for path in [*(DATA / "gene-rules" / n for n in order), DATA / "events/whids-sample-events.jsonl"]:
        for ev in read_jsonl(path):
            engine.scan(ev)
            got.append(dumps(ev))
    want = (GOLDEN / "gene-rules-tests.gene-v2.3.0.all-a.jsonl").read_bytes().splitlines()
    want += (GOLDEN / "whids-sample-events.gene-v2.3.0.all-a.jsonl").read_bytes().splitlines()
    assert got == want
