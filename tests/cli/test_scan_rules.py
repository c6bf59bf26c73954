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


SIGMA_RULE = """title: Encoded PowerShell
id: 5f0c3cb8-7c3c-4a53-9c1f-000000000070
logsource:
    product: windows
    category: process_creation
detection:
    sel:
        CommandLine|contains: '-enc'
    condition: sel
"""
SKIPPED_RULE = SIGMA_RULE.replace("process_creation", "file_rename").replace("0070", "0071")


@pytest.mark.parametrize("command", ["check", "scan"])
def test_no_rule_cache_flag(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    command: str,
) -> None:
    """``--no-rule-cache`` neither reads nor writes the cache; without it the second run is served
    by the cache and prints the same, skipped-rule warnings included."""
    from vigil.engine.sigma import frontend

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yml").write_text(SIGMA_RULE)
    (rules / "b.yml").write_text(SKIPPED_RULE)
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"Event":{"System":{"Channel":"Microsoft-Windows-Sysmon/Operational","EventID":1},'
        '"EventData":{"CommandLine":"powershell -enc AAA"}}}\n'
    )
    cache = tmp_path / "cache"
    monkeypatch.setenv("VIGIL_RULE_CACHE_DIR", str(cache))
    args = (
        ["rules", "check", str(rules)] if command == "check" else ["scan", "--rules", str(rules), str(events)]
    )
    outputs = []
    for flags in (["--no-rule-cache"], [], []):
        frontend._CACHE.clear()  # as a new process would
        caplog.clear()
        at = 2 if command == "check" else 1
        argv = args[:at] + flags + args[at:]
        assert main(argv) == 0
        out, _ = capfd.readouterr()
        outputs.append((out, [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]))
        if flags:
            assert not cache.exists()
    assert cache.is_dir() and any(cache.iterdir())
    assert outputs[0] == outputs[1] == outputs[2]
    (warning,) = outputs[0][1]
    assert "sigma rule skipped" in warning and "b.yml" in warning
    if command == "check":
        assert "1 rules loaded" in outputs[0][0]
    else:
        assert "Encoded PowerShell" in outputs[0][0]
