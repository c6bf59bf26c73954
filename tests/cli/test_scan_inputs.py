"""`vigil scan DIRECTORY`: the log files under it, recursively, in sorted order; and the summary's
load and scan lines."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from vigil.cli import main
from vigil.cli.scan_inputs import log_files
from vigil.events.evtx import read_evtx

EVTX = Path("../shared/data/evtx/evtx")
SMALL = EVTX / "DeepBlueCLI/disablestop-eventlog.evtx"  # 1 chunk, 13 records
MULTI_CHUNK = EVTX / "DeepBlueCLI/Powershell-Invoke-Obfuscation-many.evtx"  # 49 chunks
SYSMON = "Microsoft-Windows-Sysmon/Operational"
RULE = {
    "Name": "Shell",
    "Meta": {"Events": {SYSMON: [1]}, "Criticality": 8, "Schema": "2.0.0"},
    "Matches": ["$a: Image ~= 'sh$'"],
    "Condition": "$a",
}
_TIMING = ("seconds:", "events/s:", "load seconds:", "scanning seconds:", "scanning events/s:")


def _line(image: str) -> str:
    return json.dumps({"Event": {"EventData": {"Image": image}, "System": {"Channel": SYSMON, "EventID": 1}}})


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.gen"
    path.write_text(json.dumps(RULE))
    return path


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """A tree of log files, other files, a symlink back to the root and a symlinked file."""
    root = tmp_path / "logs"
    (root / "a").mkdir(parents=True)
    (root / "a b" / "deep").mkdir(parents=True)
    (root / "b.jsonl").write_text(_line("/bin/b-sh") + "\n")
    (root / "A.JSON").write_text(_line("/bin/A-sh") + "\n")
    shutil.copy(SMALL, root / "a" / "x.evtx")
    (root / "a b" / "y.ndjson").write_text(_line("/bin/y-sh") + "\n" + _line("/bin/y-true") + "\n")
    shutil.copy(MULTI_CHUNK, root / "a b" / "deep" / "z.EVTX")
    (root / "a" / "notes.txt").write_text("not a log\n")
    (root / "a" / "rules.yml").write_text("title: not a log\n")
    os.symlink("..", root / "a" / "loop")  # a directory link: not entered
    os.symlink(root / "b.jsonl", root / "a b" / "linked.jsonl")  # a file link: read
    return root


def _scan(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, list[str]]:
    code = main(["scan", *args])
    out, err = capfd.readouterr()
    return code, out, [line for line in err.splitlines() if not line.startswith(_TIMING)]


def test_log_files_are_found_recursively_in_path_order(logs: Path) -> None:
    expected = ["A.JSON", "a/x.evtx", "a b/deep/z.EVTX", "a b/linked.jsonl", "a b/y.ndjson", "b.jsonl"]
    assert log_files(str(logs)) == [str(logs / name) for name in expected]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_directory_scans_like_its_files_listed(
    jobs: str, rules: Path, logs: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    listed = [str(logs / name) for name in ("A.JSON", "a/x.evtx", "a b/deep/z.EVTX", "a b/linked.jsonl")]
    listed += [str(logs / "a b/y.ndjson"), str(logs / "b.jsonl")]
    one = _scan(capfd, "--rules", str(rules), "--all", "--jobs", "1", *listed)
    from_dir = _scan(capfd, "--rules", str(rules), "--all", "--jobs", jobs, str(logs))
    assert from_dir == one
    code, out, err = from_dir
    assert code == 0
    images = [json.loads(line)["Event"].get("EventData", {}).get("Image") for line in out.splitlines()]
    jsonl_images = [image for image in images if image and image.startswith("/bin/")]
    assert jsonl_images == ["/bin/A-sh", "/bin/b-sh", "/bin/y-sh", "/bin/y-true", "/bin/b-sh"]
    records = sum(1 for f in (SMALL, MULTI_CHUNK) for _ in read_evtx(f))
    assert f"events: {5 + records}" in err  # the EVTX files were read too
    assert len(images) == 5 + records  # --all
    assert "errors: 0" in err


def test_a_directory_next_to_files_keeps_the_argument_order(
    rules: Path, logs: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "first.log"  # a named file is read whatever its extension
    first.write_text(_line("/bin/first-sh") + "\n")
    code, out, _ = _scan(capfd, "--rules", str(rules), "--jobs", "2", str(first), str(logs / "a b"))
    assert code == 0
    images = [json.loads(line)["Event"]["EventData"]["Image"] for line in out.splitlines()]
    assert images == ["/bin/first-sh", "/bin/b-sh", "/bin/y-sh"]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_directory_without_log_files_is_an_error_naming_it(
    jobs: str, rules: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    other = tmp_path / "other"
    (other / "sub").mkdir(parents=True)
    (other / "sub" / "readme.txt").write_text("x\n")
    for directory in (empty, other):
        code, out, err = _scan(capfd, "--rules", str(rules), "--jobs", jobs, str(directory))
        assert code == 2
        assert out == ""
        assert err == [
            f"vigil scan: {directory}: no log file in this directory (looked for .evtx, .jsonl, .ndjson, .json)"
        ]


def test_summary_reports_the_load_apart(
    rules: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "many.jsonl"
    events.write_text("".join(_line(f"/bin/{i}") + "\n" for i in range(20_000)))
    assert main(["scan", "--rules", str(rules), str(events)]) == 0
    summary = dict(line.split(": ", 1) for line in capfd.readouterr().err.splitlines())
    assert summary["events"] == "20000"
    assert summary["rules"] == "1"
    load, scan, total = (float(summary[k]) for k in ("load seconds", "scanning seconds", "seconds"))
    assert load > 0 and scan > 0
    assert abs(load + scan - total) < 0.002  # each is rounded to the millisecond
    rate = float(summary["scanning events/s"].replace(",", ""))
    assert rate * scan == pytest.approx(20_000, rel=0.0006 / scan + 0.001)  # events/s without the load


def test_an_unreadable_subdirectory_is_an_error_naming_it(
    rules: Path, logs: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """(Permissions do not stop root, so the directory read fails by a stand-in.)"""
    scandir = os.scandir
    locked = str(logs / "a b")

    def failing(path: str) -> Any:
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", failing)
    code, out, err = _scan(capfd, "--rules", str(rules), str(logs))
    assert code == 2
    assert out == ""
    assert err == [f"vigil scan: [Errno 13] Permission denied: '{locked}'"]
