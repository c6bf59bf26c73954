"""Scanning each corpus ``.evtx`` with the gene-rules gives gene's detections, event for event.

Golden: ``../shared/data/evtx/golden-detections/<path>.jsonl.gz``, what gene v2.3.0 printed for the
events of each file (``gene -j -all -a``, since gene's own EVTX mode matches nothing).  vigil's
output is compared byte for byte, line by line: ``vigil scan --rules gene-rules/rules --all
--attack FILE.evtx``, through the engine's Python API for speed and once through the real CLI.
"""

from __future__ import annotations

import csv
import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.engine import Engine
from vigil.events.evtx import read_evtx
from vigil.events.gojson import dumps

DATA = Path("../shared/data/evtx")
RULES = Path("../shared/data/gene-rules/rules")

# gene v2.3.0 read no record of this file; vigil reads 3 (docs/scan.md, EVTX section).
UNREAD_BY_GENE = (
    "EVTX-to-MITRE-Attack/TA0006-Credential Access/T1552.004-Unsecured Credentials-Private Keys/"
    "ID70-CAPI-Private key accessed Mimikatz.evtx"
)


def _manifest() -> list[dict[str, str]]:
    with (DATA / "manifest.tsv").open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


MANIFEST = {row["evtx_path"]: row for row in _manifest()}


def _golden(path: str) -> list[bytes]:
    with gzip.open(DATA / "golden-detections" / f"{path}.jsonl.gz") as handle:
        return [line.rstrip(b"\n") for line in handle]


@pytest.fixture(scope="module")
def engine() -> Engine:
    engine = Engine(show_attack=True)
    engine.load_path(RULES)
    engine.compile()
    return engine


def _scan(engine: Engine, path: str) -> tuple[list[bytes], int]:
    lines: list[bytes] = []
    positives = 0
    for event in read_evtx(DATA / "evtx" / path):
        if engine.scan(event).signature:
            positives += 1
        lines.append(dumps(event))
    return lines, positives


@pytest.mark.parametrize("path", [p for p in MANIFEST if p != UNREAD_BY_GENE])
def test_detections_like_gene(engine: Engine, path: str) -> None:
    golden = _golden(path)
    lines, positives = _scan(engine, path)
    assert len(lines) == len(golden) == int(MANIFEST[path]["events"])
    for index, (line, expected) in enumerate(zip(lines, golden, strict=True)):
        assert line == expected, f"{path}: event {index} differs"
    assert positives == int(MANIFEST[path]["positives"])


def test_corpus_has_detections() -> None:
    """The comparison is not vacuous: gene detected something in a good share of the files."""
    positives = [int(row["positives"]) for row in MANIFEST.values()]
    assert sum(positives) > 100
    assert sum(1 for p in positives if p) > 20


def test_records_gene_could_not_read_match_nothing(engine: Engine) -> None:
    """The documented reading difference changes no detection."""
    assert _golden(UNREAD_BY_GENE) == []
    events = list(read_evtx(DATA / "evtx" / UNREAD_BY_GENE))
    assert len(events) == 3
    for event in events:
        result = engine.scan(event)
        assert result.signature == []
        assert event["Event"]["GeneInfo"] == {"Signature": [], "Criticality": 0}


def test_event_id_with_qualifiers_parses_as_zero(engine: Engine) -> None:
    """gene's quirk carried over: an EventID object (with Qualifiers) is EventID 0 for the meta filter.

    A rule for Service Control Manager 7045 does not fire on a 7045 rendered with Qualifiers, but
    a rule for EventID 0 does.
    """
    path = "DeepBlueCLI/disablestop-eventlog.evtx"
    event = list(read_evtx(DATA / "evtx" / path))[1]
    assert event["Event"]["System"]["EventID"] == {"Qualifiers": "16384", "Value": "7040"}
    probe = Engine()
    probe.load_text(
        '{"Name": "By7040", "Meta": {"Events": {"System": [7040]}, "Criticality": 5, "Schema": "2.0.0"},'
        ' "Matches": [], "Condition": ""}\n'
        '{"Name": "ByZero", "Meta": {"Events": {"System": [0]}, "Criticality": 5, "Schema": "2.0.0"},'
        ' "Matches": [], "Condition": ""}\n',
        source="probe.gen",
    )
    assert probe.match(event).signature == ["ByZero"]


def test_cli_scan_of_evtx_files() -> None:
    """One real ``vigil scan`` run over several files, output byte-identical to gene's."""
    paths = sorted(p for p, row in MANIFEST.items() if int(row["positives"]) > 0)[:4]
    paths.append("DeepBlueCLI/disablestop-eventlog.evtx")  # EventIDs with Qualifiers, no positive
    expected = b"".join(b"".join(line + b"\n" for line in _golden(p)) for p in paths)
    run = subprocess.run(
        [sys.executable, "-m", "vigil", "scan", "--rules", str(RULES), "--all", "--attack"]
        + [str(DATA / "evtx" / p) for p in paths],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout == expected
