"""The EVTX reader's fast paths give what its plain walk gives, record for record and error for error.

The fast paths (``docs/performance.md``, EVTX): template trees shared between chunks and files
(reused only when the definition's bytes and names check out), trees written out in a record
rendered while they are parsed, compiled renderers.  The reference is the plain walk: every
template parsed in its own chunk, trees built then interpreted from the shape rules
(``vigil.events.evtx._reference``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.events import _binxml, _container_code, evtx
from vigil.events.evtx import EvtxError, iter_evtx

DATA = Path("../shared/data/evtx")
CORPUS = sorted((DATA / "evtx").rglob("*.evtx"))
SMALL = DATA / "evtx/DeepBlueCLI/disablestop-eventlog.evtx"  # template records
WRITTEN_OUT = (  # records that hold their whole element tree, no template
    DATA / "evtx/EVTX-to-MITRE-Attack/Antivirus/ID1151-Defender health status.evtx"
)


def _items(path: Path) -> list[Any]:
    """Events and error texts, in stream order."""
    return [str(item) if isinstance(item, EvtxError) else item for item in iter_evtx(path)]


def _reference(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    with monkeypatch.context() as patch:
        patch.setattr(evtx, "_reference", True)
        patch.setattr(_binxml, "_share_templates", False)
        patch.setattr(_binxml, "_fast_values", False)
        return _items(path)


@pytest.mark.parametrize("compiled", [True, False], ids=["values-in-C", "values-in-Python"])
def test_corpus_fast_equals_reference(monkeypatch: pytest.MonkeyPatch, compiled: bool) -> None:
    """Every record of the 316 files (16 818), read after one another so templates are shared;
    compared as ``repr`` too, so the key order of every dict is the same."""
    if not compiled:
        monkeypatch.setattr(_binxml, "compiled_values", None)
        monkeypatch.setattr(_binxml, "compiled_tree", None)
    total = 0
    for path in CORPUS:
        fast = _items(path)
        reference = _reference(path, monkeypatch)
        assert fast == reference, path
        assert repr(fast) == repr(reference), path
        total += len(fast)
    assert total == 16818


def test_corpus_generated_value_decoders_equal_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a decoder generated at the first use of a type list, and container code at the first
    use of a plan structure, every record still reads alike (key order included)."""
    monkeypatch.setattr(_binxml, "compiled_values", None)  # the values decoded in Python
    monkeypatch.setattr(_binxml, "_GENERATE_AFTER", 1)
    monkeypatch.setattr(_binxml, "_VALUE_DECODERS", {})
    monkeypatch.setattr(_binxml, "_TYPES_SEEN", {})
    monkeypatch.setattr(_binxml, "_DESCRIPTORS_SEEN", {})
    monkeypatch.setattr(_container_code, "GENERATE_AFTER", 1)
    monkeypatch.setattr(_container_code, "_FACTORIES", {})
    monkeypatch.setattr(_container_code, "_USES", {})
    for path in CORPUS[::7]:
        fast = _items(path)
        reference = _reference(path, monkeypatch)
        assert fast == reference, path
        assert repr(fast) == repr(reference), path
    assert len(_binxml._VALUE_DECODERS) >= 20
    assert len(_container_code._FACTORIES) >= 3


def test_generated_value_decoder_declines_unexpected_sizes() -> None:
    """A decoder checks the sizes its types require and leaves other records to the loop."""
    decoder = _binxml._value_decoder((0x01, 0x08, 0x13))
    text = "ab".encode("utf-16-le")
    sid = bytes([1, 1, 0, 0, 0, 0, 0, 5]) + struct.pack("<I", 18)
    data = text + struct.pack("<I", 7) + sid
    chunk = _binxml.Chunk(data, 0)
    assert decoder.fits((4, 4, 12))
    assert decoder.decode(data, 0, (4, 4, 12), chunk) == ["ab", "7", "S-1-5-18"]
    assert not decoder.fits((4, 2, 12))  # a 2-byte UInt32
    assert not decoder.fits((4, 4, 4))  # a SID under 8 bytes
    assert chunk._plain_values((4, 0x01, 2, 0x08, 4, 0x13), 0) == (["ab", "0700", None], 10)
    one = _binxml._value_decoder((0x00, 0x08))  # one size fixed: picked as a scalar
    assert one.fits((0, 4))
    assert not one.fits((0, 8))


def test_value_decoder_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Descriptor arrays and type lists seen, decoders generated: all stay under the limit."""
    monkeypatch.setattr(_binxml, "compiled_values", None)  # the Python decoders and their caches
    monkeypatch.setattr(_binxml, "_VALUE_DECODERS_LIMIT", 3)
    monkeypatch.setattr(_binxml, "_GENERATE_AFTER", 2)
    monkeypatch.setattr(_binxml, "_VALUE_DECODERS", {})
    monkeypatch.setattr(_binxml, "_TYPES_SEEN", {})
    monkeypatch.setattr(_binxml, "_DESCRIPTORS_SEEN", {})
    for count in range(2, 12):
        for _ in range(2):
            data = struct.pack("<I", count) + struct.pack("<HBx", 0, 0) * count
            assert _binxml.Chunk(data, 0)._values(0) == ([None] * count, len(data))
        assert len(_binxml._VALUE_DECODERS) <= 3
        assert len(_binxml._TYPES_SEEN) <= 3
        assert len(_binxml._DESCRIPTORS_SEEN) <= 3
    assert _binxml._VALUE_DECODERS


def test_the_corpus_has_both_record_forms() -> None:
    """The comparison above covers template records and records written out in full."""
    forms = {"template": 0, "written out": 0}
    for path in (SMALL, WRITTEN_OUT):
        data = path.read_bytes()
        chunk = _binxml.Chunk(data[0x1000:0x11000], 0x1000)
        pos = 0x200
        while data[0x1000 + pos : 0x1000 + pos + 4] == b"\x2a\x2a\x00\x00":
            size = struct.unpack_from("<I", data, 0x1000 + pos + 4)[0]
            instance = chunk.instance(pos + 24, pos + size - 4, record=True)
            forms["written out" if instance.once else "template"] += 1
            pos += size
    assert forms["template"] >= 13
    assert forms["written out"] >= 10


def _template_names(path: Path) -> Iterator[tuple[int, str]]:
    """(file offset, name) of the names stored inline in the first chunk's first template."""
    data = path.read_bytes()
    chunk = _binxml.Chunk(data[0x1000:0x11000], 0x1000)
    start = _first_template_offset(chunk) + 24
    size = struct.unpack_from("<I", chunk.data, start - 4)[0]
    chunk._fragment(start, start + size)  # a plain parse records the name fields it read
    for field, name, inline in chunk._read_names:
        if inline:
            yield 0x1000 + field + 4 + 8, name


def _first_template_offset(chunk: _binxml.Chunk) -> int:
    pos = 0x200 + 24  # first record's BinXML: fragment header, then the template instance token
    assert chunk.data[pos] == 0x0F and chunk.data[pos + 4] == 0x0C
    return struct.unpack_from("<I", chunk.data, pos + 4 + 6)[0]


def test_a_shared_template_is_not_reused_when_a_name_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same GUID, same size, one element name changed: the tree is parsed again, not reused."""
    original = _items(SMALL)  # its templates are now shared
    data = bytearray(SMALL.read_bytes())
    offset, name = next((o, n) for o, n in _template_names(SMALL) if n == "Provider")
    data[offset : offset + 2 * len(name)] = "Pr0vider".encode("utf-16-le")
    path = tmp_path / "renamed.evtx"
    path.write_bytes(bytes(data))
    changed = _items(path)
    assert changed == _reference(path, monkeypatch)
    assert any("Pr0vider" in event["Event"]["System"] for event in changed)
    assert all("Provider" in event["Event"]["System"] for event in original)


def test_a_shared_template_is_not_reused_when_a_byte_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same GUID, same size, the text of a constant value changed: parsed again."""
    _items(SMALL)
    data = bytearray(SMALL.read_bytes())
    chunk = _binxml.Chunk(bytes(data[0x1000:0x11000]), 0x1000)
    start = _first_template_offset(chunk) + 24
    size = struct.unpack_from("<I", chunk.data, start - 4)[0]
    value = b"\x05\x01\x06\x00" + "System".encode("utf-16-le")  # <Channel>System</Channel>
    where = chunk.data.find(value, start, start + size)
    assert where > 0
    data[0x1000 + where + 4 : 0x1000 + where + 16] = "Systen".encode("utf-16-le")
    path = tmp_path / "retexted.evtx"
    path.write_bytes(bytes(data))
    changed = _items(path)
    assert changed == _reference(path, monkeypatch)
    assert "Systen" in {event["Event"]["System"]["Channel"] for event in changed}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    source=st.sampled_from([SMALL, WRITTEN_OUT]),
    compiled=st.booleans(),
    edits=st.lists(
        st.tuples(st.integers(min_value=0x1000, max_value=0x10FFF), st.integers(0, 255)),
        min_size=1,
        max_size=12,
    ),
)
def test_damaged_files_read_alike(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: Path,
    compiled: bool,
    edits: list[tuple[int, int]],
) -> None:
    """Whatever bytes are damaged, the fast paths (values decoded in C or in Python) yield the
    same events and the same errors."""
    data = bytearray(source.read_bytes())
    for offset, value in edits:
        data[offset] = value
    path = tmp_path / "damaged.evtx"
    path.write_bytes(bytes(data))
    if not compiled:
        monkeypatch.setattr(_binxml, "compiled_values", None)
        monkeypatch.setattr(_binxml, "compiled_tree", None)
    monkeypatch.setattr(_binxml, "_GENERATE_AFTER", 1)  # damaged values reach the generated decoders
    assert _items(path) == _reference(path, monkeypatch)


def test_deep_written_out_tree_goes_through_the_plain_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the depth limit the fast walks (C, then Python) give up and the plain walk renders the
    record."""
    monkeypatch.setattr(_binxml, "_MAX_TREE_DEPTH", 1)
    assert _items(WRITTEN_OUT) == _reference(WRITTEN_OUT, monkeypatch)


def test_value_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GUID, SID and FILETIME-day caches empty themselves when full and still render right."""
    monkeypatch.setattr(_binxml, "_CACHE_LIMIT", 2)
    guids = [bytes([i]) * 16 for i in range(5)]
    assert [_binxml._guid(raw) for raw in guids] == [
        f"{i * 0x01010101:08X}-{i * 0x0101:04X}-{i * 0x0101:04X}-{i * 0x0101:04X}-{i * 0x010101010101:012X}"
        for i in range(5)
    ]
    assert len(_binxml._GUIDS) <= 2
    day = 86_400 * 10_000_000
    stamps = [_binxml._filetime(n * day + 1) for n in (0, 1, 2, 3)]
    assert stamps == [
        "1601-01-01T00:00:00.0000001Z",
        "1601-01-02T00:00:00.0000001Z",
        "1601-01-03T00:00:00.0000001Z",
        "1601-01-04T00:00:00.0000001Z",
    ]
    assert len(_binxml._DAYS) <= 2
    sid = bytes([1, 2, 0, 0, 0, 0, 0, 5]) + struct.pack("<II", 21, 500)
    assert [_binxml._cached_sid(sid) for _ in range(3)] == ["S-1-5-21-500"] * 3
    assert _binxml._filetime(0xFFFFFFFFFFFFFFFF) == str(0xFFFFFFFFFFFFFFFF)  # past year 9999


def test_a_template_at_the_same_place_checks_the_names_it_references(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same bytes at the same chunk offset are reused only if the names referenced by offset agree."""
    monkeypatch.setattr(_binxml, "_DEFINITIONS", {})
    data = SMALL.read_bytes()[0x1000:0x11000]
    chunk = _binxml.Chunk(data, 0x1000)
    pos = 0x200
    while data[pos : pos + 4] == b"\x2a\x2a\x00\x00":
        size = struct.unpack_from("<I", data, pos + 4)[0]
        chunk.instance(pos + 24, pos + size - 4, record=True)
        pos += size
    definition = next(d for ds in _binxml._DEFINITIONS.values() for d in ds if d.references)
    assert _binxml.Chunk(data, 0x1000)._same_place(definition, definition.start)
    assert not _binxml.Chunk(data, 0x1000)._same_place(definition, definition.start + 2)
    offset, name = definition.references[0]
    renamed = bytearray(data)
    renamed[offset + 8 : offset + 8 + 2] = "Q".encode("utf-16-le")
    assert name[0] != "Q"
    assert not _binxml.Chunk(bytes(renamed), 0x1000)._same_place(definition, definition.start)
    assert not _binxml.Chunk(bytes(renamed), 0x1000)._same_definition(definition, definition.start)


@settings(max_examples=300, deadline=None)
@given(
    ticks=st.one_of(st.integers(0, 2**64 - 1), st.integers(125_000_000_000_000_000, 135_000_000_000_000_000))
)
def test_filetime_text(ticks: int) -> None:
    """The minute-prefix cache gives the text computed from the date and the 100 ns remainder."""
    seconds, rest = divmod(ticks, 10_000_000)
    try:
        moment = datetime(1601, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    except OverflowError:
        assert _binxml._filetime(ticks) == str(ticks)
        return
    expected = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if rest:
        expected += ("." + f"{rest:07d}").rstrip("0")
    assert _binxml._filetime(ticks) == expected + "Z"
    assert _binxml._filetime(ticks) == expected + "Z"  # from the cache


def test_minute_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_binxml, "_CACHE_LIMIT", 2)
    monkeypatch.setattr(_binxml, "_MINUTES", {7: "stale"})
    minute = 600_000_000
    assert [_binxml._filetime(n * minute) for n in range(4)] == [
        "1601-01-01T00:00:00Z",
        "1601-01-01T00:01:00Z",
        "1601-01-01T00:02:00Z",
        "1601-01-01T00:03:00Z",
    ]
    assert len(_binxml._MINUTES) <= 2


def test_a_shared_definition_keeps_what_its_parse_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The names a template parse read stay the definition's own: later name reads of the chunk
    (records written out in full, other templates) do not add to them before the lazy layout."""
    monkeypatch.setattr(_binxml, "_DEFINITIONS", {})
    data = SMALL.read_bytes()[0x1000:0x11000]
    chunk = _binxml.Chunk(data, 0x1000)
    offset = _first_template_offset(chunk)
    chunk.template(offset)
    (definition,) = (d for ds in _binxml._DEFINITIONS.values() for d in ds)
    read = list(definition.read_names)
    chunk._name_at(read[0][0])  # a later name read
    assert definition.read_names == read
    assert definition.layout is None  # built only when a check at another place needs it
    assert _binxml.Chunk(data, 0x1000)._same_definition(definition, definition.start)
    assert definition.layout is not None
