"""The EVTX reader renders every corpus record exactly as gene v2.3.0's EVTX reader does.

Golden renderings: ``../shared/data/evtx/golden-evtx-render/<path>.jsonl.gz``, what the real gene
printed for each of the 316 files of ``manifest.tsv``.
"""

from __future__ import annotations

import csv
import gzip
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import evtx as rust_evtx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.events.evtx import EvtxError, chunk_count, iter_evtx, read_evtx

DATA = Path("../shared/data/evtx")
MANIFEST = DATA / "manifest.tsv"

# gene v2.3.0 could not read this file at all (0 events); vigil reads its 3 records (docs/scan.md).
UNREAD_BY_GENE = (
    "EVTX-to-MITRE-Attack/TA0006-Credential Access/T1552.004-Unsecured Credentials-Private Keys/"
    "ID70-CAPI-Private key accessed Mimikatz.evtx"
)
SMALL = DATA / "evtx/DeepBlueCLI/disablestop-eventlog.evtx"  # 1 chunk, 13 records
MULTI_CHUNK = DATA / "evtx/DeepBlueCLI/Powershell-Invoke-Obfuscation-many.evtx"


def _manifest() -> list[dict[str, str]]:
    with MANIFEST.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _golden(path: str) -> list[dict[str, Any]]:
    with gzip.open(DATA / "golden-evtx-render" / f"{path}.jsonl.gz") as handle:
        return [orjson.loads(line) for line in handle]


FILES = [row["evtx_path"] for row in _manifest()]


def test_manifest_lists_every_corpus_file() -> None:
    on_disk = sorted(str(p.relative_to(DATA / "evtx")) for p in (DATA / "evtx").rglob("*.evtx"))
    assert sorted(FILES) == on_disk
    assert len(FILES) == 316


@pytest.mark.parametrize("path", [p for p in FILES if p != UNREAD_BY_GENE])
def test_renders_like_gene(path: str) -> None:
    golden = _golden(path)
    mine = list(read_evtx(DATA / "evtx" / path))
    assert len(mine) == len(golden)
    for index, (event, expected) in enumerate(zip(mine, golden, strict=True)):
        assert event == expected, f"{path}: event {index} differs"


def test_corpus_event_count_matches_manifest() -> None:
    total = sum(int(row["events"]) for row in _manifest())
    assert total == 16815
    assert sum(len(_golden(p)) for p in FILES) == total


def test_reads_the_file_gene_could_not() -> None:
    """gene rendered nothing for this file; vigil's records agree with the Rust evtx parser."""
    assert _golden(UNREAD_BY_GENE) == []
    mine = list(read_evtx(DATA / "evtx" / UNREAD_BY_GENE))
    parser = rust_evtx.PyEvtxParser(str(DATA / "evtx" / UNREAD_BY_GENE))
    reference = [orjson.loads(r["data"])["Event"]["System"] for r in parser.records_json()]
    assert len(mine) == len(reference) == 3
    for event, system in zip(mine, reference, strict=True):
        assert event["Event"]["System"]["EventRecordID"] == str(system["EventRecordID"])
        assert event["Event"]["System"]["EventID"] == "70"
        assert event["Event"]["System"]["Channel"] == "Microsoft-Windows-CAPI2/Operational"
        data = event["Event"]["UserData"]["CryptAcquireCertificatePrivateKey"]
        assert data["EventAuxInfo"] == {"ProcessName": "mimikatz.exe"}


def test_shape_of_one_event() -> None:
    """The traits of gene's shape, spelled out on a known record."""
    event = list(read_evtx(SMALL))[1]["Event"]
    system = event["System"]
    assert system["EventID"] == {"Qualifiers": "16384", "Value": "7040"}
    assert system["Keywords"] == "0x8080000000000000"
    assert system["TimeCreated"] == {"SystemTime": "2019-04-27T21:04:32.3739941Z"}
    assert system["Correlation"] == {}
    assert system["Provider"] == {
        "EventSourceName": "Service Control Manager",
        "Guid": "{555908d1-a6d7-4695-8e1e-26931d2012f4}",
        "Name": "Service Control Manager",
    }
    assert event["EventData"] == {
        "param1": "Windows Event Log",
        "param2": "auto start",
        "param3": "disabled",
        "param4": "EventLog",
    }
    assert "xmlns" not in event


# --- bad input ---------------------------------------------------------------------------------


def test_not_an_evtx_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"Event": {}}\n')
    with pytest.raises(EvtxError, match=r"events\.jsonl \(offset 0x0\): not an EVTX file") as info:
        list(read_evtx(path))
    assert info.value.path == str(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.evtx"
    path.write_bytes(b"")
    with pytest.raises(EvtxError, match=r"empty\.evtx \(offset 0x0\): not an EVTX file"):
        list(read_evtx(path))


def test_truncated_file_header(tmp_path: Path) -> None:
    path = tmp_path / "short.evtx"
    path.write_bytes(SMALL.read_bytes()[:100])
    with pytest.raises(EvtxError, match=r"short\.evtx \(offset 0x0\): truncated file header"):
        list(read_evtx(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EvtxError, match=r"nothere\.evtx: cannot read"):
        list(read_evtx(tmp_path / "nothere.evtx"))


def test_directory_is_not_read(tmp_path: Path) -> None:
    directory = tmp_path / "logs.evtx"
    directory.mkdir()
    with pytest.raises(EvtxError, match=r"logs\.evtx: cannot read: Is a directory"):
        list(read_evtx(directory))


def test_truncated_chunk_keeps_the_chunks_before(tmp_path: Path) -> None:
    path = tmp_path / "cut.evtx"
    data = MULTI_CHUNK.read_bytes()
    cut = 0x1000 + 2 * 0x10000 + 0x5000  # in the middle of the third chunk
    path.write_bytes(data[:cut])
    with pytest.raises(EvtxError, match=r"cut\.evtx \(offset 0x21000\): truncated chunk") as info:
        list(read_evtx(path))
    assert info.value.offset == 0x1000 + 2 * 0x10000

    errors: list[EvtxError] = []
    events = list(read_evtx(path, on_error=errors.append))
    assert [e.offset for e in errors] == [0x1000 + 2 * 0x10000]
    full = list(read_evtx(MULTI_CHUNK))
    assert 0 < len(events) < len(full)
    assert events == full[: len(events)]


def _record_offsets(data: bytes, chunk: int = 0x1000) -> list[int]:
    offsets = []
    pos = chunk + 0x200
    while data[pos : pos + 4] == b"\x2a\x2a\x00\x00":
        offsets.append(pos)
        pos += struct.unpack_from("<I", data, pos + 4)[0]
    return offsets


def test_corrupt_record_names_file_and_record(tmp_path: Path) -> None:
    data = bytearray(SMALL.read_bytes())
    offsets = _record_offsets(bytes(data))
    assert len(offsets) == 13
    target = offsets[4]
    record_id = struct.unpack_from("<Q", data, target + 8)[0]
    data[target + 24] = 0x7F  # not a BinXML token
    path = tmp_path / "bad-record.evtx"
    path.write_bytes(bytes(data))

    with pytest.raises(EvtxError, match=rf"bad-record\.evtx: record {record_id} .*corrupt record") as info:
        list(read_evtx(path))
    assert info.value.record == record_id
    assert info.value.offset == target

    errors: list[EvtxError] = []
    events = list(read_evtx(path, on_error=errors.append))
    assert [e.record for e in errors] == [record_id]
    full = list(read_evtx(SMALL))
    assert events == full[:4] + full[5:]


def test_bad_record_size_resynchronises(tmp_path: Path) -> None:
    data = bytearray(SMALL.read_bytes())
    offsets = _record_offsets(bytes(data))
    struct.pack_into("<I", data, offsets[2] + 4, 0xFFFFFF)
    path = tmp_path / "bad-size.evtx"
    path.write_bytes(bytes(data))
    errors: list[EvtxError] = []
    events = list(read_evtx(path, on_error=errors.append))
    assert len(errors) == 1
    assert "bad record size" in str(errors[0])
    full = list(read_evtx(SMALL))
    assert events == full[:2] + full[3:]


def test_bad_free_space_offset(tmp_path: Path) -> None:
    data = bytearray(SMALL.read_bytes())
    struct.pack_into("<I", data, 0x1000 + 48, 0)
    path = tmp_path / "bad-free.evtx"
    path.write_bytes(bytes(data))
    with pytest.raises(EvtxError, match=r"bad-free\.evtx \(offset 0x1000\): bad free space offset 0x0"):
        list(read_evtx(path))
    errors: list[EvtxError] = []
    assert list(read_evtx(path, on_error=errors.append)) == list(read_evtx(SMALL))
    assert len(errors) == 1


def test_bad_chunk_signature(tmp_path: Path) -> None:
    data = bytearray(SMALL.read_bytes())
    data[0x1000:0x1008] = b"NotChunk"
    path = tmp_path / "bad-chunk.evtx"
    path.write_bytes(bytes(data))
    with pytest.raises(EvtxError, match=r"bad-chunk\.evtx \(offset 0x1000\): bad chunk signature"):
        list(read_evtx(path))


def test_bad_chunk_in_the_middle_keeps_the_chunks_after(tmp_path: Path) -> None:
    data = bytearray(MULTI_CHUNK.read_bytes())
    bad = 0x1000 + 3 * 0x10000
    data[bad : bad + 8] = b"NotChunk"
    path = tmp_path / "bad-chunk.evtx"
    path.write_bytes(bytes(data))
    errors: list[EvtxError] = []
    events = list(read_evtx(path, on_error=errors.append))
    assert [(e.offset, e.reason) for e in errors] == [(bad, "bad chunk signature")]
    by_chunk = [list(read_evtx(MULTI_CHUNK, chunks=range(i, i + 1))) for i in range(49)]
    assert events == [event for i, chunk in enumerate(by_chunk) if i != 3 for event in chunk]


def test_chunk_ranges_tile_the_file() -> None:
    assert [chunk_count(n) for n in (0, 0x1000, 0x1001, 0x11000, 0x11001)] == [0, 0, 1, 1, 2]
    count = chunk_count(MULTI_CHUNK.stat().st_size)
    assert count == 49
    pieces = [list(read_evtx(MULTI_CHUNK, chunks=range(i, i + 5))) for i in range(0, count, 5)]
    assert [event for piece in pieces for event in piece] == list(read_evtx(MULTI_CHUNK))
    assert list(read_evtx(MULTI_CHUNK, chunks=range(count, count + 3))) == []


def test_file_errors_come_with_the_first_range_only(tmp_path: Path) -> None:
    path = tmp_path / "bad-header.evtx"
    path.write_bytes(b"NotAFile" + MULTI_CHUNK.read_bytes()[8:])
    first = list(iter_evtx(path, chunks=range(0, 2)))
    assert len(first) == 1 and "not an EVTX file" in str(first[0])
    assert list(iter_evtx(path, chunks=range(2, 4))) == []
    assert [str(e) for e in iter_evtx(tmp_path / "nothere.evtx", chunks=range(1, 2))] == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=0x1000, max_value=0x10FFF), st.integers(0, 255)),
        min_size=1,
        max_size=12,
    )
)
def test_random_corruption_never_crashes(tmp_path: Path, edits: list[tuple[int, int]]) -> None:
    """Whatever bytes of a chunk are damaged, errors are EvtxError and reading goes on."""
    data = bytearray(SMALL.read_bytes())
    for offset, value in edits:
        data[offset] = value
    path = tmp_path / "fuzz.evtx"
    path.write_bytes(bytes(data))
    errors: list[EvtxError] = []
    events = list(read_evtx(path, on_error=errors.append))
    assert all(isinstance(e, EvtxError) and str(path) in str(e) for e in errors)
    assert len(events) <= 13 + len(edits)


def test_reads_a_copy_outside_the_corpus(tmp_path: Path) -> None:
    """The reader takes str and PathLike paths."""
    copy = tmp_path / "copy.evtx"
    shutil.copyfile(SMALL, copy)
    assert list(read_evtx(str(copy))) == list(read_evtx(copy))


def test_iter_evtx_yields_errors_in_the_stream(tmp_path: Path) -> None:
    data = bytearray(SMALL.read_bytes())
    offsets = _record_offsets(bytes(data))
    data[offsets[4] + 24] = 0x7F
    path = tmp_path / "bad-record.evtx"
    path.write_bytes(bytes(data))
    items = list(iter_evtx(path))
    full = list(read_evtx(SMALL))
    assert items[:4] == full[:4]
    assert isinstance(items[4], EvtxError) and "bad-record.evtx: record" in str(items[4])
    assert items[5:] == full[5:]

    garbage = tmp_path / "garbage.evtx"
    garbage.write_bytes(b"not a log")
    (error,) = list(iter_evtx(garbage))
    assert isinstance(error, EvtxError) and "not an EVTX file" in str(error)


def test_cli_scan_reports_bad_evtx_and_goes_on(tmp_path: Path) -> None:
    """`vigil scan` names the bad file and record on stderr and still scans everything else."""
    garbage = tmp_path / "garbage.evtx"
    garbage.write_bytes(b"not a log")
    data = bytearray(SMALL.read_bytes())
    offsets = _record_offsets(bytes(data))
    record_id = struct.unpack_from("<Q", data, offsets[4] + 8)[0]
    data[offsets[4] + 24] = 0x7F
    damaged = tmp_path / "damaged.evtx"
    damaged.write_bytes(bytes(data))
    rules = tmp_path / "all.gen"
    rules.write_text(
        '{"Name": "Everything", "Meta": {"Events": {"System": []}, "Criticality": 1, "Schema": "2.0.0"},'
        ' "Matches": [], "Condition": ""}\n'
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "vigil",
            "scan",
            "--rules",
            str(rules),
            str(garbage),
            str(damaged),
            str(SMALL),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    stderr = run.stderr.decode()
    assert "Traceback" not in stderr
    assert f"{garbage} (offset 0x0): not an EVTX file" in stderr
    assert f"{damaged}: record {record_id} (offset {offsets[4]:#x}): corrupt record" in stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 12 + 13  # damaged.evtx minus its bad record, then the intact file
    assert all(b'"Everything"' in line for line in lines)
