"""`vigil scan --jobs N` prints exactly what one job prints, errors included, for JSON lines and EVTX."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.cli import main, scan_jobs
from vigil.events.evtx import read_evtx

GENE_RULES = Path("../shared/data/gene-rules/rules")
EVTX = Path("../shared/data/evtx/evtx")
MULTI_CHUNK = EVTX / "DeepBlueCLI/Powershell-Invoke-Obfuscation-many.evtx"  # 49 chunks
SMALL = EVTX / "DeepBlueCLI/disablestop-eventlog.evtx"  # 1 chunk, 13 records
MANY = EVTX / "DeepBlueCLI/smb-password-guessing-security.evtx"  # 49 chunks, 3 561 records
SYSMON = "Microsoft-Windows-Sysmon/Operational"
RULE = {
    "Name": "Shell",
    "Meta": {"Events": {SYSMON: [1]}, "Criticality": 8, "Schema": "2.0.0"},
    "Matches": ["$a: Image ~= 'sh$'"],
    "Condition": "$a",
}


def _event(image: str) -> dict[str, object]:
    return {"Event": {"EventData": {"Image": image}, "System": {"Channel": SYSMON, "EventID": 1}}}


# Summary lines that hold times (and so differ from run to run).
_TIMING = ("seconds:", "events/s:", "load seconds:", "scanning seconds:", "scanning events/s:")


def _scan(capfdbinary: pytest.CaptureFixture[bytes], *args: str) -> tuple[int, bytes, list[str]]:
    """Exit code, stdout, and stderr without the timing lines of the summary."""
    code = main(["scan", *args])
    out, err = capfdbinary.readouterr()
    lines = [line for line in err.decode().splitlines() if not line.startswith(_TIMING)]
    return code, out, lines


def _both(capfdbinary: pytest.CaptureFixture[bytes], *args: str) -> tuple[int, bytes, list[str]]:
    """Scan with one job and with two; assert that both print the same, return it."""
    one = _scan(capfdbinary, "--jobs", "1", *args)
    two = _scan(capfdbinary, "--jobs", "2", *args)
    assert two == one
    return one


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 300 bytes (70 in the last 1 000) and 2 EVTX chunks, so that small inputs are cut
    into many blocks."""
    monkeypatch.setattr(scan_jobs, "BLOCK_BYTES", 300)
    monkeypatch.setattr(scan_jobs, "TAIL_BYTES", 1000)
    monkeypatch.setattr(scan_jobs, "TAIL_BLOCK_BYTES", 70)
    monkeypatch.setattr(scan_jobs, "EVTX_BLOCK_CHUNKS", 2)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.gen"
    path.write_text(json.dumps(RULE))
    return path


def _mixed_lines() -> str:
    """Good lines, bad lines, blank lines, a value spread over lines and two values on one line."""
    lines: list[str] = []
    for i in range(400):
        lines.append(json.dumps(_event(f"/bin/{i}/true" if i % 4 == 0 else f"/bin/{i}/bash")))
        if i % 37 == 5:
            lines.append("this is not json")
        if i % 53 == 7:
            lines.append("")
        if i % 61 == 9:
            lines.append(json.dumps(_event(f"/usr/bin/pretty{i}sh"), indent=2))
        if i % 71 == 11:
            lines.append(json.dumps(_event("/bin/one")) + " " + json.dumps(_event("/bin/twosh")))
        if i % 89 == 13:
            lines.append("[1, 2]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("batch_lines", [128, 3], ids=["one-batch-a-block", "batches-in-a-block"])
def test_jsonl_blocks_print_what_one_job_prints(
    rules: Path,
    tmp_path: Path,
    small_blocks: None,
    capfdbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
    batch_lines: int,
) -> None:
    """With blocks of a few lines, and with batches of 3 lines inside bigger blocks (a bad line
    then comes after the first batch of its block)."""
    monkeypatch.setattr(scan_jobs, "BATCH_LINES", batch_lines)
    if batch_lines < 10:
        monkeypatch.setattr(scan_jobs, "BLOCK_BYTES", 3000)
        monkeypatch.setattr(scan_jobs, "TAIL_BLOCK_BYTES", 1500)
    events = tmp_path / "mixed.jsonl"
    events.write_text(_mixed_lines())
    code, out, err = _both(capfdbinary, "--rules", str(rules), "--all", str(events))
    assert code == 0
    assert out.count(b"\n") == 400 + 7 + 2 * 6  # every event, the pretty ones and the pairs
    bad = [line for line in err if "invalid JSON" in line or "not a JSON object" in line]
    assert len(bad) == 11 + 5
    first_bad = _mixed_lines().splitlines().index("this is not json") + 1
    assert bad[0].startswith(f"vigil scan: {events}:{first_bad}: invalid JSON")
    assert "errors: 16" in err


def test_jsonl_without_final_newline_and_empty_file(
    rules: Path, tmp_path: Path, small_blocks: None, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    events = tmp_path / "cut.jsonl"
    events.write_text(_mixed_lines().rstrip("\n") + "\n{broken")
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    code, _, err = _both(capfdbinary, "--rules", str(rules), str(events), str(empty), str(events))
    assert code == 0
    assert sum("unexpected end of data" in line or "invalid JSON" in line for line in err) >= 2


def test_stdin_is_read_by_the_parent(
    rules: Path,
    small_blocks: None,
    capfdbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _mixed_lines().encode()
    results = []
    for jobs in ("1", "2"):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        results.append(_scan(capfdbinary, "--jobs", jobs, "--rules", str(rules), "-"))
    assert results[0] == results[1]
    assert any(line.startswith("vigil scan: <stdin>:") for line in results[1][2])


def test_missing_input_after_a_good_one(
    rules: Path, tmp_path: Path, small_blocks: None, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    events = tmp_path / "good.jsonl"
    events.write_text(_mixed_lines())
    code, out, err = _both(capfdbinary, "--rules", str(rules), str(events), str(tmp_path / "nothere.jsonl"))
    assert code == 2
    assert out.count(b"\n") > 100  # the first file was scanned and written before the error
    assert any("nothere.jsonl" in line and "No such file" in line for line in err)


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(st.sampled_from(["{}", '{"a": 1}', "{", "  }", "x", "", '{"b":', "2}"]), max_size=40),
    size=st.integers(1, 40),
)
def test_blocks_tile_the_file(lines: list[str], size: int) -> None:
    """Block bounds cover the file exactly once, and every block but the first starts at a line
    that starts with ``{``."""
    data = "\n".join(lines).encode()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.jsonl"
        path.write_bytes(data)
        fd = os.open(path, os.O_RDONLY)
        try:
            starts = range(0, len(data), size)
            bounds = [scan_jobs.block_bounds(fd, i, i + size, len(data)) for i in starts]
        finally:
            os.close(fd)
    pos = 0
    for start, end in bounds:
        assert start == pos and end >= start
        if start > 0 and end > start:
            assert data[start - 1 : start + 1] == b"\n{"
        pos = end
    assert pos == len(data)


@pytest.mark.parametrize("size", [0, 1, 699, 700, 701, 1000, 1001, 1299, 1300, 5000])
def test_the_plan_of_a_file_covers_it_with_smaller_blocks_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    monkeypatch.setattr(scan_jobs, "BLOCK_BYTES", 300)
    monkeypatch.setattr(scan_jobs, "TAIL_BYTES", 1000)
    monkeypatch.setattr(scan_jobs, "TAIL_BLOCK_BYTES", 70)
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"x" * size)
    blocks = list(scan_jobs._line_blocks(str(path)))
    assert [b.index for b in blocks] == list(range(len(blocks)))
    pos = 0
    for block in blocks:  # adjacent ranges from 0 to the end
        assert block.start == pos < block.stop and block.file_size == size
        pos = block.stop
    assert pos == size
    tail = [b.stop - b.start for b in blocks if b.start >= size - 1000]
    assert all(b.stop - b.start <= 300 for b in blocks) and all(n <= 70 for n in tail)
    assert sum(tail) == min(size, 1000)


def test_evtx_corpus_files_print_what_one_job_prints(
    small_blocks: None, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    files = [MULTI_CHUNK, SMALL, MANY, *sorted(EVTX.glob("EVTX-ATTACK-SAMPLES/*/*.evtx"))[:8]]
    code, out, err = _both(capfdbinary, "--rules", str(GENE_RULES), "--all", "--attack", *map(str, files))
    assert code == 0
    assert out.count(b"\n") == sum(1 for f in files for _ in read_evtx(f))  # --all prints every event
    assert "errors: 0" in err


def test_bad_evtx_files_give_the_errors_of_one_job(
    tmp_path: Path, small_blocks: None, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    not_evtx = tmp_path / "text.evtx"
    not_evtx.write_text("hello")
    bad_chunk = tmp_path / "bad-chunk.evtx"
    data = bytearray(MULTI_CHUNK.read_bytes())
    data[0x1000 + 3 * 0x10000 : 0x1000 + 3 * 0x10000 + 8] = b"NotChunk"
    bad_chunk.write_bytes(bytes(data))
    cut = tmp_path / "cut.evtx"
    cut.write_bytes(MULTI_CHUNK.read_bytes()[: 0x1000 + 5 * 0x10000 + 0x5000])
    bad_header = tmp_path / "bad-header.evtx"  # 49 chunks: the header error must come once
    bad_header.write_bytes(b"NotAFile" + MULTI_CHUNK.read_bytes()[8:])
    copy = tmp_path / "copy.evtx"
    shutil.copyfile(SMALL, copy)
    inputs = [not_evtx, bad_chunk, tmp_path / "nothere.evtx", cut, bad_header, copy]
    code, out, err = _both(capfdbinary, "--rules", str(GENE_RULES), "--all", *map(str, inputs))
    assert code == 0
    errors = [line for line in err if line.startswith("vigil scan: ")]
    assert errors == [
        f"vigil scan: {not_evtx} (offset 0x0): not an EVTX file (no ElfFile signature)",
        f"vigil scan: {bad_chunk} (offset 0x31000): bad chunk signature",
        f"vigil scan: {tmp_path / 'nothere.evtx'}: cannot read: No such file or directory",
        f"vigil scan: {cut} (offset 0x51000): truncated chunk: 20480 of 65536 bytes",
        f"vigil scan: {bad_header} (offset 0x0): not an EVTX file (no ElfFile signature)",
    ]
    assert "errors: 5" in err
    assert out.endswith(_scan(capfdbinary, "--rules", str(GENE_RULES), "--all", str(copy))[1])


def test_a_dying_worker_is_a_clear_error(
    rules: Path,
    tmp_path: Path,
    small_blocks: None,
    capfdbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(_mixed_lines())
    monkeypatch.setattr(scan_jobs, "_scan_lines", lambda *a, **k: os._exit(9))  # as if OOM-killed
    code, _, err = _scan(capfdbinary, "--jobs", "2", "--rules", str(rules), str(events))
    assert code == 2
    assert "vigil scan: a --jobs worker process died (killed, or out of memory?)" in err


def test_gene_rules_scan_does_not_import_pysigma(tmp_path: Path) -> None:
    """Only a rule path with YAML files loads the Sigma front end (a third of the start-up)."""
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    code = (
        "import sys\nfrom vigil.cli import main\n"
        f"main(['scan', '--rules', {str(GENE_RULES)!r}, {str(empty)!r}])\n"
        "assert 'vigil.engine.sigma' not in sys.modules and 'sigma' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
