"""`vigil rules check|list|dump`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vigil.cli import main

GENE_RULES = Path(__file__).resolve().parents[2] / "../shared/data/gene-rules"


def test_check_clean_rule_set(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(GENE_RULES / "rules")]) == 0
    out, _ = capfd.readouterr()
    assert "134 rules loaded, 6 disabled" in out
    assert 'disabled: BlacklistedHash: unknown container "blacklist"' in out


def test_check_reports_every_error(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.gen").write_text(
        '{"Name":"A","Meta":{"Schema":"2.0.0"},"Matches":["$a: X = \'1\'"],"Condition":"$a or $b"}\n'
        '{"Name":"B","Meta":{"Schema":"2.0.0"},"Matches":["$a: X ~= \'(\'"],"Condition":"$a"}\n'
    )
    assert main(["rules", "check", str(tmp_path)]) == 1
    out, err = capfd.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(
        "a.gen:1: rule 'A': statement '$a or $b': Unknown operand $b in condition '$a or $b'"
    )
    assert "a.gen:2: rule 'B': statement \"$a: X ~= '('\": invalid regular expression" in lines[1]
    assert "2 error(s)" in err


def test_list_and_tags(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list", str(GENE_RULES / "rules")]) == 0
    out, _ = capfd.readouterr()
    rows = [line.split("\t") for line in out.splitlines()]
    assert len(rows) == 134
    assert any(r[0] == "ProcessCreate" and r[2] == "filter" for r in rows)
    assert main(["rules", "list", "--tags", str(GENE_RULES / "rules")]) == 0
    out, _ = capfd.readouterr()
    tags = out.splitlines()
    assert tags == sorted(set(tags)) and "Heuristics" in tags


def test_dump_like_gene(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["rules", "dump", str(GENE_RULES / "rules")]) == 0
    out, _ = capfdbinary.readouterr()
    assert out == (GENE_RULES / "compiled.gen").read_bytes()
    assert main(["rules", "dump", str(GENE_RULES / "rules"), "^AddUser$", "Certutil"]) == 0
    out, _ = capfdbinary.readouterr()
    names = [json.loads(line)["Name"] for line in out.splitlines()]
    assert names == ["AddUser", "CertutilDownloader", "CertutilSuspDecode"]
