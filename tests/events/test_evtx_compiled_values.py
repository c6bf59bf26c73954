"""The C decoder of BinXML substitution values gives what the Python decoder gives.

``vigil.events._binxml_values.decode_values`` is an optional speed-up (built by setup.py when a C
compiler is present, as on every machine vigil's CI runs on).  Its reference is
``Chunk._plain_values``: each value through ``Chunk._value``, the decoder the rest of the reader's
tests are written against.  Corpus-wide equality is in test_evtx_fast.py.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.events import _binxml
from vigil.events._binxml_values import decode_values, render_tree

WRITTEN_OUT = Path(
    "../shared/data/evtx/evtx/EVTX-to-MITRE-Attack/Antivirus/ID1151-Defender health status.evtx"
)


def test_the_extension_is_built_in_this_install() -> None:
    """CI installs with a compiler: the reader must not silently fall back to pure Python there."""
    assert _binxml.compiled_values is decode_values


def _pack(values: list[tuple[int, bytes]]) -> tuple[bytes, tuple[int, ...]]:
    head = struct.pack("<I", len(values)) + b"".join(struct.pack("<HBx", len(raw), t) for t, raw in values)
    fields = tuple(x for t, raw in values for x in (len(raw), t))
    return head + b"".join(raw for _t, raw in values), fields


def _outcome(call: Any) -> Any:
    try:
        return ("value", call())
    except Exception as exc:  # both decoders must fail alike
        return ("error", type(exc), str(exc))


def _both(values: list[tuple[int, bytes]], prefix: bytes = b"") -> tuple[Any, Any]:
    body, fields = _pack(values)
    data = prefix + body
    chunk = _binxml.Chunk(data, 0)
    start = len(prefix) + 4 + 4 * len(values)
    return (
        _outcome(lambda: decode_values(data, len(prefix), chunk)),
        _outcome(lambda: chunk._plain_values(fields, start)),
    )


# Types decoded in C, the others handed back to Python, and a few no decoder knows.
_TYPES = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E]
_TYPES += [0x0F, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x81, 0x84, 0x88, 0x8F, 0x91, 0x30, 0xFF]
_SIZES = {0x04: 1, 0x06: 2, 0x08: 4, 0x0A: 8, 0x0F: 16, 0x11: 8, 0x14: 4, 0x15: 8}


@st.composite
def _value(draw: st.DrawFn) -> tuple[int, bytes]:
    vtype = draw(st.sampled_from(_TYPES))
    exact = _SIZES.get(vtype)
    if exact is not None and draw(st.integers(0, 4)):  # mostly the size the type fixes
        return vtype, draw(st.binary(min_size=exact, max_size=exact))
    if vtype == 0x13 and draw(st.booleans()):  # a SID, whole or with too few sub-authorities
        count = draw(st.integers(0, 15))
        subs = draw(st.binary(min_size=0, max_size=4 * count + 3))
        return vtype, bytes([draw(st.integers(0, 255)), count]) + draw(
            st.binary(min_size=6, max_size=6)
        ) + subs
    if vtype == 0x01 and draw(st.booleans()):  # text, possibly with NULs, surrogates, a BOM
        text = draw(st.text(alphabet=st.sampled_from("aZ\x00\ufeff\u00e9\u4e2d\U0001f600"), max_size=12))
        raw = text.encode("utf-16-le", "surrogatepass") + draw(st.sampled_from([b"", b"\x00", b"\x00\xd8"]))
        return vtype, raw
    return vtype, draw(st.binary(max_size=24))


@settings(max_examples=600, deadline=None)
@given(st.lists(_value(), max_size=12), st.binary(max_size=3))
def test_random_values_decode_alike(values: list[tuple[int, bytes]], prefix: bytes) -> None:
    ours, reference = _both(values, prefix)
    assert ours == reference
    if ours[0] == "value":
        assert repr(ours[1][0]) == repr(reference[1][0])
        # strings built directly in C must be canonical: ASCII ones flagged as ASCII
        assert [_ascii_flags(v) for v in ours[1][0]] == [_ascii_flags(v) for v in reference[1][0]]


def _ascii_flags(value: Any) -> Any:
    return value.isascii() if isinstance(value, str) else None


@pytest.mark.parametrize(
    "raw",
    [
        "Hello".encode("utf-16-le") + b"\x00\x00",
        "Hello".encode("utf-16-le") + b"\x00\x00\x00",  # odd: the last byte is a replacement
        b"\x00\x00\x00\x00",
        b"",
        b"\x00",
        "\ufeffBOM".encode("utf-16-le"),
        b"\x00\xd8\x00\x00",  # a lone high surrogate before the NUL
        b"\x00\xdc" + "x".encode("utf-16-le"),  # a lone low surrogate
        "\U0001f600".encode("utf-16-le") + b"\x00\x00\x00\x00",
    ],
)
def test_text_edge_cases(raw: bytes) -> None:
    ours, reference = _both([(0x01, raw)])
    assert ours == reference
    assert _ascii_flags(ours[1][0][0]) == _ascii_flags(reference[1][0][0])


@pytest.mark.parametrize("text", ["plain", "caf\u00e9", "\u00ff\u0080", "\u4e2d", "", "a\x00b"])
def test_one_byte_text_is_canonical(text: str) -> None:
    """Text below U+0100 is built directly as a one-byte str: ASCII-flagged exactly when ASCII."""
    (value,), _end = decode_values(*_packed_one(text))
    assert value == text
    assert value.isascii() == text.isascii()
    assert hash(value) == hash(text) and {value: 1}[text] == 1


def _packed_one(text: str) -> tuple[bytes, int, Any]:
    body, _fields = _pack([(0x01, text.encode("utf-16-le"))])
    return body, 0, _binxml.Chunk(body, 0)


@pytest.mark.parametrize(
    "ticks",
    [
        0,
        1,
        600_000_000 - 1,
        131_000_000_000_000_000,
        2_650_467_743_999_999_999,  # 9999-12-31T23:59:59.9999999
        2_650_467_744_000_000_000,  # year 10000: the tick count
        2**64 - 1,
    ],
)
def test_filetime_edge_cases(ticks: int) -> None:
    ours, reference = _both([(0x11, struct.pack("<Q", ticks))])
    assert ours == reference


def test_numbers_at_their_limits() -> None:
    for vtype, fmt in ((0x04, "<B"), (0x06, "<H"), (0x08, "<I"), (0x0A, "<Q"), (0x14, "<I"), (0x15, "<Q")):
        for number in (0, 1, 255, 65535, 2**32 - 1, 2**64 - 1):
            if number < 2 ** (8 * struct.calcsize(fmt)):
                ours, reference = _both([(vtype, struct.pack(fmt, number))])
                assert ours == reference, (vtype, number)


def test_a_nested_instance_is_read_by_the_chunk() -> None:
    calls: list[tuple[int, int]] = []

    class Chunk(_binxml.Chunk):
        def instance(self, pos: int, end: int, *, record: bool = False) -> Any:
            calls.append((pos, end))
            return "nested"

    body, _fields = _pack([(0x01, "a".encode("utf-16-le")), (0x21, b"xyz"), (0x08, b"\x07\x00\x00\x00")])
    assert decode_values(body, 0, Chunk(body, 0)) == (["a", "nested", "7"], len(body))
    assert calls == [(4 + 12 + 2, 4 + 12 + 5)]


@pytest.mark.parametrize(
    "data, pos",
    [
        (struct.pack("<I", 4097) + b"\x00" * 4 * 4097, 0),  # too many values
        (struct.pack("<I", 2) + struct.pack("<HBx", 0, 0), 0),  # descriptors past the end
        (struct.pack("<I", 1) + struct.pack("<HBx", 9, 1) + b"ab", 0),  # a value past the end
        (b"\x00\x00", 0),  # no count
        (struct.pack("<I", 0), 5),  # past the data
        (struct.pack("<I", 0), -1),
    ],
)
def test_what_it_does_not_trust_is_left_to_python(data: bytes, pos: int) -> None:
    assert decode_values(data, pos, _binxml.Chunk(data, 0)) is None


def test_bad_arguments_are_type_errors() -> None:
    with pytest.raises(TypeError, match="data must be bytes"):
        decode_values(bytearray(8), 0, None)
    with pytest.raises(TypeError, match="decode_values"):
        decode_values(b"")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        decode_values(b"", "0", None)  # type: ignore[arg-type]


# --- trees written out in a record ---------------------------------------------------------------

_NAMES = ["Event", "System", "Data", "Name", "Value", "EventData", "x", "Data1", "\u00e9t\u00e9"]


@st.composite
def _element(draw: st.DrawFn, depth: int = 0) -> Any:
    attrs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(_NAMES),
                st.lists(
                    st.one_of(
                        st.text(alphabet="ab\u00e9\x00 ", max_size=4).map(lambda t: ("text", t)),
                        st.sampled_from([("subst", 0x0D), ("subst", 0x0E)]),
                    ),
                    max_size=3,
                ),
            ),
            max_size=3,
        )
    )
    parts: list[Any] = []
    if depth < 3:
        parts = draw(
            st.lists(
                st.one_of(
                    st.text(alphabet="xy\u4e2d", max_size=4).map(lambda t: ("text", t)),
                    st.sampled_from([("subst", 0x0D), ("subst", 0x0E), ("charref", 0x41), ("pi", "zz")]),
                    st.text(alphabet="c", max_size=3).map(lambda t: ("cdata", t)),
                    _element(depth + 1).map(lambda e: ("element", e)),
                ),
                max_size=4,
            )
        )
    empty = not parts and draw(st.booleans())
    return (draw(st.sampled_from(_NAMES)), draw(st.booleans()), attrs, parts, empty)


class _Writer:
    """BinXML for a tree written out in a record: names inline the first time, then referenced."""

    def __init__(self) -> None:
        self.out = bytearray(b"\x00" * 0x200)  # names are only referenced above the chunk header
        self.names: dict[str, int] = {}

    def _name_field(self, name: str) -> None:
        field = len(self.out)
        known = self.names.get(name)
        if known is not None:
            self.out += struct.pack("<I", known)
            return
        self.names[name] = field + 4
        encoded = name.encode("utf-16-le")
        self.out += struct.pack("<IIHH", field + 4, 0, 0, len(name)) + encoded + b"\x00\x00"

    def _text(self, token: int, text: str) -> None:
        encoded = text.encode("utf-16-le")
        if token == 0x05:
            self.out += bytes([0x05, 0x01]) + struct.pack("<H", len(encoded) // 2) + encoded
        else:
            self.out += bytes([token]) + struct.pack("<H", len(encoded) // 2) + encoded

    def element(self, tree: Any) -> None:
        name, dependency, attrs, parts, empty = tree
        self.out += bytes([0x41 if attrs else 0x01])
        if dependency:
            self.out += b"\xff\xff"
        self.out += struct.pack("<I", 0)  # data size: not read
        self._name_field(name)
        if attrs:
            self.out += struct.pack("<I", 0)  # attribute list size: not read
            for i, (attr, value) in enumerate(attrs):
                self.out += bytes([0x46 if i + 1 < len(attrs) else 0x06])
                self._name_field(attr)
                for kind, arg in value:
                    if kind == "text":
                        self._text(0x05, arg)
                    else:
                        self.out += bytes([arg]) + struct.pack("<H", 0) + b"\x01"
        if empty:
            self.out += b"\x03"
            return
        self.out += b"\x02"
        for kind, arg in parts:
            if kind == "text":
                self._text(0x05, arg)
            elif kind == "cdata":
                self._text(0x07, arg)
            elif kind == "pi":
                self._text(0x0B, arg)
            elif kind == "charref":
                self.out += bytes([0x08]) + struct.pack("<H", arg)
            elif kind == "subst":
                self.out += bytes([arg]) + struct.pack("<H", 0) + b"\x01"
            else:
                self.element(arg)
        self.out += b"\x04"


def _render_both(data: bytes, pos: int, root: bool) -> tuple[Any, Any]:
    from vigil.events import evtx

    chunk = _binxml.Chunk(data, 0, shape=evtx._shape)
    ours = _outcome(lambda: render_tree(data, pos, root, chunk, _binxml._MAX_TREE_DEPTH))
    reference = _outcome(lambda: _binxml.Chunk(data, 0, shape=evtx._shape)._render_tree(pos, root, 0))
    return ours, reference


@settings(max_examples=400, deadline=None)
@given(_element(), st.booleans(), st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=3))
def test_random_written_out_trees_render_alike(tree: Any, root: bool, edits: list[tuple[int, int]]) -> None:
    """Whole trees render exactly alike (key order included); damaged ones render alike, or the C
    walk declines (None) and leaves the record to the Python walk."""
    writer = _Writer()
    writer.element(tree)
    data = bytearray(writer.out)
    damaged = False
    for offset, value in edits:
        if 0x200 <= offset < len(data):
            damaged = damaged or data[offset] != value
            data[offset] = value
    ours, reference = _render_both(bytes(data), 0x200, root)
    if not damaged:
        assert ours[0] == "value" and ours[1] is not None, ours
    if ours == ("value", None):  # declined
        return
    assert ours == reference
    if ours[0] == "value":
        assert repr(ours[1]) == repr(reference[1])


def test_the_corpus_written_out_records_are_rendered_in_c(monkeypatch: pytest.MonkeyPatch) -> None:
    """No record of the corpus' written-out files is left to the Python walk."""
    from vigil.events import evtx

    declined: list[int] = []

    def counting(data: bytes, pos: int, root: bool, chunk: Any, depth: int) -> Any:
        done = render_tree(data, pos, root, chunk, depth)
        if done is None:
            declined.append(pos)
        return done

    monkeypatch.setattr(_binxml, "compiled_tree", counting)
    events = list(evtx.read_evtx(WRITTEN_OUT))
    assert len(events) == 455
    assert declined == []


def test_without_the_extension_the_reader_warns_and_reads_in_python() -> None:
    """An install without a compiler: one clear warning, then the same events from pure Python."""
    import subprocess
    import sys

    script = f"""
import importlib.abc, json, logging, sys
class NoExtension(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "vigil.events._binxml_values":
            raise ImportError("not built")
        return None
sys.meta_path.insert(0, NoExtension())
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
from vigil.events import _binxml, evtx
assert _binxml.compiled_values is None and _binxml.compiled_tree is None
events = list(evtx.read_evtx({str(WRITTEN_OUT)!r}))
print(json.dumps([len(events), events[0]]))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "EVTX: the C decoder (vigil.events._binxml_values) is not built" in done.stderr
    assert done.stderr.count("WARNING") == 1
    import json

    from vigil.events import evtx

    count, first = json.loads(done.stdout)
    assert count == 455
    assert first == next(iter(evtx.read_evtx(WRITTEN_OUT)))
