"""The standalone JSON-lines output: alerts and events files, rotation by size and age, retention."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

from tests.agent.fakes import proc_event
from vigil.agent.outputs import JsonlOutput, Output


def test_jsonl_output_implements_the_output_protocol(tmp_path: Path) -> None:
    assert isinstance(JsonlOutput(str(tmp_path)), Output)


def test_jsonl_output_writes_alerts_and_events(tmp_path: Path) -> None:
    out = JsonlOutput(str(tmp_path))
    alert, plain = proc_event(1, "/a"), proc_event(2, "/b")
    out.write(alert, alert=True)
    out.write(plain, alert=False)
    out.close()
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert alerts == [alert]
    assert events == [alert, plain]
    assert oct((tmp_path / "alerts.jsonl").stat().st_mode & 0o777) == "0o640"


def test_jsonl_output_rotates_by_size_and_keeps_the_newest(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    out = JsonlOutput(str(tmp_path), rotate_mb=1, keep=2, compress=True, clock=lambda: now[0])
    big = proc_event(1, "/x", Pad="x" * 400_000)
    for _ in range(12):  # ~4.8 MB: rotations at every third write
        out.write(big, alert=True)
        now[0] += 1
    out.close()
    rotated = out.alerts.rotated_files()
    assert len(rotated) == 2
    assert all(p.endswith(".jsonl.gz") for p in rotated)
    with gzip.open(rotated[-1], "rt") as f:
        lines = f.read().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0]) == big
    assert out.stats()["rotations"] >= 6


def test_jsonl_output_rotates_by_age_on_flush(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    out = JsonlOutput(str(tmp_path), rotate_interval=60, compress=False, clock=lambda: now[0])
    out.write(proc_event(1, "/a"), alert=True)
    out.flush()
    assert out.alerts.rotated_files() == []
    now[0] += 61
    out.flush()
    [rotated] = out.alerts.rotated_files()
    assert os.path.basename(rotated) == "alerts-20231114T221421.000000Z.jsonl"
    assert not (tmp_path / "alerts.jsonl").exists()
    out.close()
