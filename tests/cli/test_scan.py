"""`vigil scan` options, errors and summary."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from vigil.cli import main

SYSMON = "Microsoft-Windows-Sysmon/Operational"
RULES = [
    {"Name": "Filter", "Meta": {"Events": {SYSMON: [1]}, "Filter": True, "Schema": "2.0.0"}},
    {
        "Name": "Shell",
        "Meta": {"Events": {SYSMON: [1]}, "Criticality": 8, "Schema": "2.0.0"},
        "Matches": ["$a: Image ~= 'sh$'"],
        "Condition": "$a",
    },
    {
        "Name": "Bad",
        "Meta": {"Events": {SYSMON: [1]}, "Criticality": 2, "Schema": "2.0.0"},
        "Matches": ["$h: extract('MD5=(?P<md5>[A-F0-9]+)', Hashes) in iocs"],
        "Condition": "$h",
    },
]


def ev(image: str, eid: int = 1, hashes: str = "") -> dict[str, Any]:
    return {
        "Event": {
            "EventData": {"Image": image, "Hashes": hashes},
            "System": {"Channel": SYSMON, "EventID": eid},
        }
    }


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules.gen"
    rules.write_text("\n".join(json.dumps(r) for r in RULES))
    events = tmp_path / "events.jsonl"
    lines = [
        json.dumps(ev("/bin/bash")),
        "this is not json",
        json.dumps(ev("/usr/bin/true")),
        json.dumps(ev("/usr/bin/true", eid=2)),
        json.dumps(ev("/usr/bin/x", hashes="MD5=ABCD")),
    ]
    events.write_text("\n".join(lines) + "\n")
    return rules, events


def scan(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]], str]:
    code = main(["scan", *args])
    out, err = capfd.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_default_prints_alerts_and_filtered_events(
    setup: tuple[Path, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    rules, events = setup
    code, out, err = scan(capfd, "--rules", str(rules), str(events))
    assert code == 0
    assert [o["Event"]["EventData"]["Image"] for o in out] == ["/bin/bash", "/usr/bin/true", "/usr/bin/x"]
    assert out[0]["Event"]["GeneInfo"] == {"Signature": ["Shell"], "Criticality": 8}
    assert "GeneInfo" not in out[1]["Event"]  # filter-only: untouched
    assert f"{events}:2: invalid JSON" in err
    assert "events: 4" in err and "positives: 1" in err and "errors: 1" in err


def test_min_criticality_and_no_filter(setup: tuple[Path, Path], capfd: pytest.CaptureFixture[str]) -> None:
    rules, events = setup
    _, out, _ = scan(capfd, "--rules", str(rules), "--min-criticality", "9", str(events))
    assert [o["Event"]["EventData"]["Image"] for o in out] == ["/bin/bash", "/usr/bin/true", "/usr/bin/x"]
    _, out, _ = scan(capfd, "--rules", str(rules), "--min-criticality", "9", "--no-filter", str(events))
    assert out == []
    _, out, _ = scan(capfd, "--rules", str(rules), "--no-filter", str(events))
    assert [o["Event"]["EventData"]["Image"] for o in out] == ["/bin/bash"]


def test_all_prints_every_event(setup: tuple[Path, Path], capfd: pytest.CaptureFixture[str]) -> None:
    rules, events = setup
    _, out, _ = scan(capfd, "--rules", str(rules), "--all", str(events))
    assert len(out) == 4
    assert out[2]["Event"]["GeneInfo"] == {"Signature": [], "Criticality": 0}


def test_container_option(
    setup: tuple[Path, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    rules, events = setup
    iocs = tmp_path / "iocs.txt"
    iocs.write_text("abcd\n")
    _, out, err = scan(capfd, "--rules", str(rules), "--container", f"iocs={iocs}", "--summary", str(events))
    assert out[-1]["Event"]["GeneInfo"] == {"Signature": ["Bad"], "Criticality": 2}
    assert "per rule:" in err and "Bad" in err
    code, _, err = scan(capfd, "--rules", str(rules), "--container", "nonsense", str(events))
    assert code == 2 and "NAME=FILE" in err


def test_output_file_and_jobs_keep_order(
    setup: tuple[Path, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    rules, events = setup
    big = tmp_path / "big.jsonl"
    big.write_text(events.read_text() * 1500)
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert main(["scan", "--rules", str(rules), "--all", "--output", str(one), str(big)]) == 0
    assert main(["scan", "--rules", str(rules), "--all", "--jobs", "2", "--output", str(two), str(big)]) == 0
    _, err = capfd.readouterr()
    assert one.read_bytes() == two.read_bytes()
    assert len(one.read_bytes().splitlines()) == 6000
    assert f"{big}:7: invalid JSON" in err  # line numbers survive chunking


def test_stdin(
    setup: tuple[Path, Path], capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rules, events = setup
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(events.read_bytes())))
    _, out, err = scan(capfd, "--rules", str(rules), "-")
    assert len(out) == 3 and "<stdin>:2: invalid JSON" in err


def test_bad_rules_exit_2_with_every_error(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "r.gen"
    rules.write_text('{"Name":"A","Meta":{"Schema":"2.0.0"},"Matches":["junk"]}\n{"Name":"B","Meta":{}}\n')
    code, out, err = scan(capfd, "--rules", str(rules), str(tmp_path / "none.jsonl"))
    assert code == 2 and out == []
    assert f"{rules}:1: rule 'A': statement 'junk': Unknown match statement" in err
    assert f"{rules}:2: rule 'B'" in err


def test_missing_input_file(
    setup: tuple[Path, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    rules, _ = setup
    code, _, err = scan(capfd, "--rules", str(rules), str(tmp_path / "missing.jsonl"))
    assert code == 2 and "missing.jsonl" in err


def test_evtx_without_reader_is_a_clear_error(
    setup: tuple[Path, Path],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rules, _ = setup
    import vigil.events

    monkeypatch.setitem(sys.modules, "vigil.events.evtx", None)  # as if the EVTX reader were absent
    monkeypatch.delattr(vigil.events, "evtx", raising=False)
    f = tmp_path / "x.evtx"
    f.write_bytes(b"ElfFile\x00")
    code, _, err = scan(capfd, "--rules", str(rules), str(f))
    assert code == 2 and "EVTX support" in err and "x.evtx" in err


def test_evtx_inputs_go_to_the_evtx_reader(
    setup: tuple[Path, Path],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import types

    rules, _ = setup
    import vigil.events

    fake = types.ModuleType("vigil.events.evtx")
    fake.iter_evtx = lambda path: iter([ev("/bin/sh"), ValueError(f"{path}: corrupt record at 0x1000")])  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vigil.events.evtx", fake)
    monkeypatch.setattr(vigil.events, "evtx", fake, raising=False)
    code, out, err = scan(capfd, "--rules", str(rules), str(tmp_path / "y.EVTX"))
    assert code == 0 and out[0]["Event"]["GeneInfo"]["Signature"] == ["Shell"]
    assert "corrupt record at 0x1000" in err and "errors: 1" in err


def test_parallel_blocks_cut_between_objects_and_keep_line_numbers() -> None:
    from vigil.cli.scan_jobs import _chunks

    data = b'{"a":1}\n{\n "b": 2\n}\n{"c":3}\n\n{"d":4}\n'
    blocks = list(_chunks(io.BytesIO(data), size=5))
    assert b"".join(b for _, b in blocks) == data
    for first, block in blocks:
        assert block.startswith(b"{")
        assert data.split(b"\n")[first - 1] == block.split(b"\n")[0]
    assert [b for _, b in blocks if b.startswith(b"{\n")] == [b'{\n "b": 2\n}\n']


def test_fast_reader_hands_over_mid_file(
    setup: tuple[Path, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    rules, _ = setup
    f = tmp_path / "mixed.jsonl"
    good = json.dumps(ev("/bin/sh"))
    pretty = json.dumps(ev("/bin/zsh"), indent=2)
    f.write_text("\n".join([good] * 3000 + [pretty, "{oops", good]) + "\n")
    code, out, err = scan(capfd, "--rules", str(rules), str(f))
    assert code == 0
    assert len(out) == 3002
    assert out[3000]["Event"]["EventData"]["Image"] == "/bin/zsh"
    pretty_lines = pretty.count("\n") + 1
    assert f"{f}:{3000 + pretty_lines + 1}: invalid JSON" in err
    assert "events: 3002" in err and "errors: 1" in err


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_reader_that_goes_away_ends_the_scan_quietly(tmp_path: Path, jobs: str) -> None:
    """`vigil scan ... | head -1`: once the reader closes the pipe, the scan stops with exit code 0,
    no error message, and no worker left running."""
    import subprocess

    events = tmp_path / "events.jsonl"
    line = json.dumps({"Event": {"System": {"EventID": 1, "Channel": "x"}, "EventData": {"A": "b" * 100}}})
    events.write_text((line + "\n") * 20000)  # 3 MB printed with --all: far more than a pipe holds
    rules = Path("../shared/data/gene-rules/rules")
    with subprocess.Popen(
        [sys.executable, "-m", "vigil", "scan", "--jobs", jobs, "--all", "--rules", str(rules), str(events)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith(b'{"Event"')
        proc.stdout.close()
        code = proc.wait(timeout=60)
        err = proc.stderr.read().decode()
    assert code == 0, err
    assert "Broken pipe" not in err and "Traceback" not in err
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    assert not children.exists() or not children.read_text().split()
