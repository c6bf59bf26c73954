"""BinXML, the binary XML of EVTX records: tokens, typed substitution values, template trees.

A record's BinXML is a template instance: a template definition (an element tree with
substitution slots, stored once per chunk) and the record's array of typed values.  ``Chunk``
parses template definitions once (cached by offset) and decodes each record's values.  Values are
decoded to the strings gene v2.3.0 prints for them (see ``vigil.events.evtx`` for the shape).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

FILE_MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
RECORD_MAGIC = b"\x2a\x2a\x00\x00"
CHUNK_SIZE = 0x10000
FILE_HEADER_SIZE = 0x1000
CHUNK_HEADER_SIZE = 0x200
RECORD_HEADER_SIZE = 24

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_TEMPLATE_HEAD = struct.Struct("<BII")  # unknown, template id, definition offset
_DESCRIPTORS: dict[int, struct.Struct] = {}  # substitution descriptors (size, type, pad) by count

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)

# BinXML tokens (the 0x40 bit means "has attributes" or "more follows").
_T_EOF = 0x00
_T_OPEN = 0x01
_T_CLOSE_START = 0x02
_T_CLOSE_EMPTY = 0x03
_T_END = 0x04
_T_VALUE = 0x05
_T_ATTRIBUTE = 0x06
_T_CDATA = 0x07
_T_CHARREF = 0x08
_T_ENTITYREF = 0x09
_T_PI_TARGET = 0x0A
_T_PI_DATA = 0x0B
_T_TEMPLATE = 0x0C
_T_SUBST = 0x0D
_T_OPT_SUBST = 0x0E
_T_FRAGMENT = 0x0F

_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


class CorruptError(Exception):
    """A structure inside a chunk is inconsistent (the reader names the file and record)."""


# --- parsed template tree ----------------------------------------------------------------------


Renderer = Callable[[list[Any]], tuple[str, Any]]
"""Renders an element with a record's substitution values as gene's (key, value)."""


@dataclass(slots=True)
class Subst:
    index: int
    optional: bool


@dataclass(slots=True)
class Element:
    name: str
    attrs: list[tuple[str, list[str | Subst]]]
    content: list[Element | str | Subst]
    render: Renderer | None = None  # compiled by vigil.events.evtx, cached here
    root_render: Renderer | None = None


@dataclass(slots=True)
class Instance:
    """A template instance: a cached template tree plus this record's substitution values."""

    root: Element | None
    values: list[Any]


# --- value rendering ---------------------------------------------------------------------------


def _filetime(ticks: int) -> str:
    """FILETIME at 100 ns precision, trailing zeros (and a bare dot) trimmed, as gene prints."""
    seconds, rest = divmod(ticks, 10_000_000)
    try:
        stamp = _FILETIME_EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return str(ticks)
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    if rest:
        text += "." + f"{rest:07d}".rstrip("0")
    return text + "Z"


def _systemtime(raw: bytes) -> str:
    year, month, _dow, day, hour, minute, second, millis = struct.unpack("<8H", raw[:16])
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    if millis:
        text += "." + f"{millis:03d}".rstrip("0")
    return text + "Z"


def _sid(raw: bytes) -> str:
    revision, count = raw[0], raw[1]
    authority = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack_from(f"<{count}I", raw, 8)
    return "S-" + "-".join([str(revision), str(authority), *map(str, subs)])


def _guid(raw: bytes) -> str:
    d1, d2, d3 = struct.unpack_from("<IHH", raw)
    tail = raw[8:16].hex().upper()
    return f"{d1:08X}-{d2:04X}-{d3:04X}-{tail[:4]}-{tail[4:]}"


def _utf16(raw: bytes) -> str:
    return raw.decode("utf-16-le", "replace").rstrip("\x00")


_FIXED: dict[int, tuple[int, Callable[[bytes], str]]] = {
    0x03: (1, lambda b: str(struct.unpack("<b", b)[0])),
    0x04: (1, lambda b: str(b[0])),
    0x05: (2, lambda b: str(struct.unpack("<h", b)[0])),
    0x06: (2, lambda b: str(_U16.unpack(b)[0])),
    0x07: (4, lambda b: str(struct.unpack("<i", b)[0])),
    0x08: (4, lambda b: str(_U32.unpack(b)[0])),
    0x09: (8, lambda b: str(struct.unpack("<q", b)[0])),
    0x0A: (8, lambda b: str(_U64.unpack(b)[0])),
    0x0B: (4, lambda b: f"{struct.unpack('<f', b)[0]:f}"),
    0x0C: (8, lambda b: f"{struct.unpack('<d', b)[0]:f}"),
    0x0D: (4, lambda b: "true" if _U32.unpack(b)[0] else "false"),
    0x0F: (16, _guid),
    0x11: (8, lambda b: _filetime(_U64.unpack(b)[0])),
    0x12: (16, _systemtime),
    0x14: (4, lambda b: f"0x{_U32.unpack(b)[0]:04x}"),
    0x15: (8, lambda b: f"0x{_U64.unpack(b)[0]:08x}"),
}


# Decoders for the commonest (type, size) pairs, keyed ``type << 16 | size``: read straight from
# the chunk without the slicing and checks of ``Chunk._value`` (which gives the same strings).
_FAST: dict[int, Callable[[bytes, int], str]] = {
    0x04 << 16 | 1: lambda d, p: str(d[p]),
    0x06 << 16 | 2: lambda d, p: str(d[p] | d[p + 1] << 8),
    0x08 << 16 | 4: lambda d, p: str(_U32.unpack_from(d, p)[0]),
    0x0A << 16 | 8: lambda d, p: str(_U64.unpack_from(d, p)[0]),
    0x14 << 16 | 4: lambda d, p: f"0x{_U32.unpack_from(d, p)[0]:04x}",
    0x15 << 16 | 8: lambda d, p: f"0x{_U64.unpack_from(d, p)[0]:08x}",
    0x11 << 16 | 8: lambda d, p: _filetime(_U64.unpack_from(d, p)[0]),
    0x0F << 16 | 16: lambda d, p: _guid(d[p : p + 16]),
}


class Chunk:
    """One 64 KiB chunk: resolves names and templates (cached) and decodes records."""

    def __init__(self, data: bytes, base: int, ansi: str = "cp1252"):
        self.data = data
        self.base = base
        self.ansi = ansi
        self.names: dict[int, str] = {}
        self.templates: dict[int, Element | None] = {}

    # - low level -

    def _name(self, offset: int) -> str:
        name = self.names.get(offset)
        if name is None:
            if offset + 8 > len(self.data):
                raise CorruptError(f"name offset {offset:#x} outside the chunk")
            (count,) = _U16.unpack_from(self.data, offset + 6)
            name = self.data[offset + 8 : offset + 8 + 2 * count].decode("utf-16-le", "replace")
            self.names[offset] = name
        return name

    def _name_at(self, pos: int) -> tuple[str, int]:
        """Read a name offset at ``pos``; skip the name if it is stored inline right after."""
        (offset,) = _U32.unpack_from(self.data, pos)
        pos += 4
        name = self._name(offset)
        if offset == pos:
            pos += 10 + 2 * len(name)
        return name, pos

    # - template definitions -

    def template(self, offset: int) -> Element | None:
        if offset in self.templates:
            return self.templates[offset]
        (size,) = _U32.unpack_from(self.data, offset + 20)
        root, _ = self._fragment(offset + 24, offset + 24 + size)
        self.templates[offset] = root
        return root

    def _fragment(self, pos: int, end: int) -> tuple[Element | None, int]:
        """A fragment header followed by one element, up to EOF."""
        data = self.data
        root: Element | None = None
        while pos < end:
            token = data[pos]
            kind = token & 0x0F if token not in (0x41,) else _T_OPEN
            if token == _T_EOF:
                return root, pos + 1
            if token == _T_FRAGMENT:
                pos += 4
            elif kind == _T_OPEN:
                root, pos = self._element(pos)
            else:
                raise CorruptError(f"unexpected token {token:#04x} at {pos:#x} in a template definition")
        return root, pos

    def _element(self, pos: int) -> tuple[Element, int]:
        data = self.data
        token = data[pos]
        name, pos = self._name_at(self._element_name_pos(pos))
        attrs: list[tuple[str, list[str | Subst]]] = []
        if token & 0x40:
            pos += 4  # attribute list size
            while data[pos] & 0x0F == _T_ATTRIBUTE:
                attr_name, pos = self._name_at(pos + 1)
                parts, pos = self._content(pos, attribute=True)
                attrs.append((attr_name, parts))
        token = data[pos]
        if token == _T_CLOSE_EMPTY:
            return Element(name, attrs, []), pos + 1
        if token != _T_CLOSE_START:
            raise CorruptError(f"element {name!r}: expected a close tag, got token {token:#04x} at {pos:#x}")
        content, pos = self._content(pos + 1, attribute=False)
        if data[pos] != _T_END:
            raise CorruptError(
                f"element {name!r}: expected an end tag, got token {data[pos]:#04x} at {pos:#x}"
            )
        return Element(name, attrs, content), pos + 1

    def _element_name_pos(self, pos: int) -> int:
        """Where the name offset of the element at ``pos`` is.

        Elements normally carry a 2-byte dependency id before their size; some writers omit it.
        The name offset is either inline (equal to the position right after it) or points back
        to a name defined earlier in the chunk: we take the layout where that holds.
        """
        (offset,) = _U32.unpack_from(self.data, pos + 7)
        if offset == pos + 11 or CHUNK_HEADER_SIZE // 2 <= offset < pos:
            return pos + 7
        (offset,) = _U32.unpack_from(self.data, pos + 5)
        if offset == pos + 9 or CHUNK_HEADER_SIZE // 2 <= offset < pos:
            return pos + 5
        raise CorruptError(f"element at {pos:#x}: name offset {offset:#x} is not in the chunk")

    def _content(self, pos: int, *, attribute: bool) -> tuple[list[Any], int]:
        """Values, substitutions, references (and, for element content, child elements)."""
        data = self.data
        parts: list[Any] = []
        while True:
            token = data[pos]
            kind = token & 0x0F
            if kind == _T_VALUE and token in (0x05, 0x45):
                (count,) = _U16.unpack_from(data, pos + 2)
                parts.append(data[pos + 4 : pos + 4 + 2 * count].decode("utf-16-le", "replace"))
                pos += 4 + 2 * count
            elif token in (_T_SUBST, _T_OPT_SUBST):
                (index,) = _U16.unpack_from(data, pos + 1)
                parts.append(Subst(index, token == _T_OPT_SUBST))
                pos += 4
            elif kind == _T_CHARREF and token in (0x08, 0x48):
                parts.append(chr(_U16.unpack_from(data, pos + 1)[0]))
                pos += 3
            elif kind == _T_ENTITYREF and token in (0x09, 0x49):
                entity, pos = self._name_at(pos + 1)
                parts.append(_ENTITIES.get(entity, f"&{entity};"))
            elif kind == _T_CDATA and token in (0x07, 0x47):
                (count,) = _U16.unpack_from(data, pos + 1)
                parts.append(data[pos + 3 : pos + 3 + 2 * count].decode("utf-16-le", "replace"))
                pos += 3 + 2 * count
            elif not attribute and token in (0x01, 0x41):
                child, pos = self._element(pos)
                parts.append(child)
            elif not attribute and token == _T_PI_TARGET:
                _, pos = self._name_at(pos + 1)
            elif not attribute and token == _T_PI_DATA:
                (count,) = _U16.unpack_from(data, pos + 1)
                pos += 3 + 2 * count
            else:
                return parts, pos

    # - records -

    def instance(self, pos: int, end: int) -> Instance:
        """Decode the BinXML of a record (or of a BinXml value): fragment + template instance."""
        data = self.data
        root: Element | None = None
        values: list[Any] = []
        while pos < end:
            token = data[pos]
            if token == _T_FRAGMENT:
                pos += 4
            elif token == _T_TEMPLATE:
                _unknown, _tid, offset = _TEMPLATE_HEAD.unpack_from(data, pos + 1)
                pos += 10
                if offset >= len(data):
                    raise CorruptError(f"template offset {offset:#x} outside the chunk")
                root = self.template(offset)
                if offset == pos:
                    (size,) = _U32.unpack_from(data, pos + 20)
                    pos += 24 + size
                values, pos = self._values(pos)
                return Instance(root, values)
            elif token in (0x01, 0x41):
                element, pos = self._element(pos)
                return Instance(element, [])
            elif token == _T_EOF:
                break
            else:
                raise CorruptError(f"unexpected token {token:#04x} at {pos:#x} in a record")
        return Instance(root, values)

    def _values(self, pos: int) -> tuple[list[Any], int]:
        data = self.data
        (count,) = _U32.unpack_from(data, pos)
        pos += 4
        if count > 4096:
            raise CorruptError(f"{count} substitution values")
        layout = _DESCRIPTORS.get(count)
        if layout is None:
            layout = _DESCRIPTORS[count] = struct.Struct("<" + "HBx" * count)
        fields = layout.unpack_from(data, pos)
        pos += 4 * count
        if pos + sum(fields[0::2]) > len(data):
            raise CorruptError("substitution values run past the chunk")
        values: list[Any] = []
        append = values.append
        fast_get = _FAST.get
        pairs = iter(fields)
        for size, vtype in zip(pairs, pairs, strict=True):
            end = pos + size
            if vtype == 0x01:
                append(data[pos:end].decode("utf-16-le", "replace").rstrip("\x00"))
            elif vtype == 0x00:
                append(None)
            else:
                fast = fast_get(vtype << 16 | size)
                append(fast(data, pos) if fast is not None else self._value(vtype, pos, size))
            pos = end
        return values, pos

    def _value(self, vtype: int, pos: int, size: int) -> Any:
        raw = self.data[pos : pos + size]
        if vtype == 0x01:
            return _utf16(raw)
        if vtype == 0x00:
            return None
        fixed = _FIXED.get(vtype)
        if fixed is not None:
            width, render = fixed
            if size < width:
                return None if size == 0 else raw.hex().upper()
            return render(raw[:width])
        if vtype == 0x02:
            # gene keeps ANSI strings as bytes, which Go's JSON encoder writes in base64.
            return base64.b64encode(raw).decode("ascii")
        if vtype == 0x0E:
            return raw.hex().upper()
        if vtype == 0x10:
            return (
                f"0x{int.from_bytes(raw, 'little'):016x}"
                if size == 8
                else f"0x{int.from_bytes(raw, 'little'):08x}"
            )
        if vtype == 0x13:
            return _sid(raw) if size >= 8 else None
        if vtype == 0x21:
            return self.instance(pos, pos + size)
        if vtype == 0x81:
            # gene drops the empty strings of a string array, and an array left empty is null.
            return [item for item in raw.decode("utf-16-le", "replace").split("\x00") if item] or None
        if vtype & 0x80 and (vtype & 0x7F) in _FIXED:
            width, render = _FIXED[vtype & 0x7F]
            return [render(raw[i : i + width]) for i in range(0, size - width + 1, width)]
        return raw.hex().upper()
