"""ReplaySource: JSON-lines events replayed as a source; bad lines skipped, counted and located."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.agent.fakes import proc_event
from vigil.agent.replay import ReplaySource


def test_replay_source_skips_bad_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        json.dumps(proc_event(1, "/a")) + "\n{not json\n[1, 2]\n\n" + json.dumps(proc_event(2, "/b")) + "\n"
    )
    got: list[dict[str, Any]] = []
    src = ReplaySource(str(path))
    assert src.requirements() == []
    src.start(got.append)
    assert src.wait(5)
    src.stop()
    assert [e["Event"]["EventData"]["Image"] for e in got] == ["/a", "/b"]
    assert src.stats() == {"received": 4, "emitted": 2, "dropped": 2}
    assert f"{path}:2: skipped" in caplog.text
    assert f"{path}:3: skipped: not a JSON object" in caplog.text
    assert ReplaySource(str(tmp_path / "nope")).requirements() == [
        f"replay file {tmp_path / 'nope'} does not exist"
    ]
