"""BinXML, the binary XML of EVTX records: tokens, typed substitution values, template trees.

A record's BinXML is a template instance: a template definition (an element tree with
substitution slots, stored once per chunk) and the record's array of typed values.  ``Chunk``
parses template definitions once (cached by offset, and shared with later chunks holding the same
definition) and decodes each record's values.  Values are decoded to the strings gene v2.3.0
prints for them (see ``vigil.events.evtx`` for the shape).
"""

from __future__ import annotations

import base64
import codecs
import logging
import operator
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
_NAMES_START = CHUNK_HEADER_SIZE // 2  # a name offset below this is not taken for one

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_TEMPLATE_HEAD = struct.Struct("<BII")  # unknown, template id, definition offset
_DESCRIPTORS: dict[int, struct.Struct] = {}  # substitution descriptors (size, type, pad) by count

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)

# bytes.decode("utf-16-le") goes through the codec registry and a Python-level wrapper; the codec
# function itself gives the same string about three times faster.
_decode_utf16 = codecs.utf_16_le_decode

# Bounded caches of rendered values that repeat across records (GUIDs, SIDs, FILETIME days): each
# is emptied when full, so memory stays bounded whatever the input.
_CACHE_LIMIT = 4096
_GUIDS: dict[bytes, str] = {}
_SIDS: dict[bytes, str] = {}
_DAYS: dict[int, str] = {}
_MINUTES: dict[int, str] = {}
_U8_TEXT = tuple(str(i) for i in range(256))
_TWO_DIGITS = tuple(f"{i:02d}" for i in range(60))
_CLOCK = tuple(f"{hour:02d}:{minute:02d}:" for hour in range(24) for minute in range(60))

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

# Tokens that can follow an attribute's value when it is its only part: the next attribute, the
# close tags.  Anything else (another value part, a reference) goes through ``Chunk._content``.
_ATTRIBUTE_ENDS = frozenset({0x06, 0x46, _T_CLOSE_START, _T_CLOSE_EMPTY})

_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


_UNSEEN: Any = object()

TreeRenderer = Callable[[bytes, int, bool, Any, int], tuple[tuple[str, Any], int] | None]
"""Renders a tree written out in a record as ``Chunk._render_tree`` with gene's shape; None to decline."""

# The optional C decoder (setup.py builds it when a compiler exists). Tests switch either part off
# (None) to compare it with the Python code it stands for.
compiled_values: Callable[[bytes, int, Any], tuple[list[Any], int] | None] | None
"""A record's values decoded in C, or None (then, or when it declines, ``Chunk._values`` does)."""
compiled_tree: TreeRenderer | None
"""Trees written out in records rendered in C with gene's shape (``vigil.events.evtx`` passes it
to the chunks it reads), or None."""
try:
    from vigil.events._binxml_values import decode_values as compiled_values
    from vigil.events._binxml_values import render_tree as compiled_tree
except ImportError:  # pragma: no cover - depends on the install
    compiled_values = compiled_tree = None
    logging.getLogger(__name__).warning(
        "EVTX: the C decoder (vigil.events._binxml_values) is not built, so EVTX files are read in "
        "pure Python, taking about 1.7 times as long; reinstall vigil with a C compiler present"
    )


class CorruptError(Exception):
    """A structure inside a chunk is inconsistent (the reader names the file and record)."""


# --- parsed template tree ----------------------------------------------------------------------


Renderer = Callable[[list[Any]], tuple[str, Any]]
"""Renders an element with a record's substitution values as gene's (key, value)."""

Shaper = Callable[..., tuple[str, Any]]
"""gene's (key, value) for an element: ``shape(name, attrs, children, texts=, array=, null=)``."""

_MAX_TREE_DEPTH = 64  # deeper trees written out in a record go through the plain parse


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
    """A template instance: a cached template tree plus this record's substitution values.

    ``once`` marks a tree written out in the record itself (no template): it is rendered once, so
    it is interpreted rather than compiled.  A chunk given a ``shape`` renders such a tree while
    parsing it: ``root`` is then ``RENDERED`` and ``rendered`` holds gene's (key, value).
    """

    root: Element | None
    values: list[Any]
    once: bool = False
    rendered: tuple[str, Any] | None = None
    handed_out: bool = False  # ``rendered`` was used once: later uses get a copy


RENDERED = Element("", [], [])
"""The root of an instance rendered while parsing (see ``Instance``)."""


# --- value rendering ---------------------------------------------------------------------------


def _filetime(ticks: int) -> str:
    """FILETIME at 100 ns precision, trailing zeros (and a bare dot) trimmed, as gene prints."""
    minute, rest = divmod(ticks, 600_000_000)
    prefix = _MINUTES.get(minute)  # "YYYY-MM-DDTHH:MM:", shared by the records of that minute
    if prefix is None:
        days, minutes = divmod(minute, 1440)
        date = _DAYS.get(days)
        if date is None:
            try:
                date = (_FILETIME_EPOCH + timedelta(days=days)).strftime("%Y-%m-%dT")
            except OverflowError:
                return str(ticks)
            if len(_DAYS) >= _CACHE_LIMIT:
                _DAYS.clear()
            _DAYS[days] = date
        prefix = date + _CLOCK[minutes]
        if len(_MINUTES) >= _CACHE_LIMIT:
            _MINUTES.clear()
        _MINUTES[minute] = prefix
    seconds, rest = divmod(rest, 10_000_000)
    if rest:
        return ("%s%s.%07d" % (prefix, _TWO_DIGITS[seconds], rest)).rstrip("0") + "Z"  # noqa: UP031 (faster)
    return prefix + _TWO_DIGITS[seconds] + "Z"


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
    text = _GUIDS.get(raw)
    if text is None:
        d1, d2, d3 = struct.unpack_from("<IHH", raw)
        tail = raw[8:16].hex().upper()
        text = f"{d1:08X}-{d2:04X}-{d3:04X}-{tail[:4]}-{tail[4:]}"
        if len(_GUIDS) >= _CACHE_LIMIT:
            _GUIDS.clear()
        _GUIDS[raw] = text
    return text


def _cached_sid(raw: bytes) -> str:
    text = _SIDS.get(raw)
    if text is None:
        text = _sid(raw)
        if len(_SIDS) >= _CACHE_LIMIT:
            _SIDS.clear()
        _SIDS[raw] = text
    return text


def _utf16(raw: bytes) -> str:
    return _decode_utf16(raw, "replace", True)[0].rstrip("\x00")


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


# Decoders for the less common (type, size) pairs, keyed ``type << 16 | size``: read straight from
# the chunk without the slicing and checks of ``Chunk._value`` (which gives the same strings).  The
# commonest pairs are decoded inline in ``Chunk._values``.
_FAST: dict[int, Callable[[bytes, int], str]] = {
    0x0A << 16 | 8: lambda d, p: str(_U64.unpack_from(d, p)[0]),
    0x14 << 16 | 4: lambda d, p: f"0x{_U32.unpack_from(d, p)[0]:04x}",
    0x11 << 16 | 8: lambda d, p: _filetime(_U64.unpack_from(d, p)[0]),
}


# --- template definitions shared between chunks -------------------------------------------------
#
# A template definition is stored once per chunk, so a log whose records use a few templates holds
# the same definition in every chunk, at another offset.  Its parsed tree depends only on its bytes
# and on the names they point to: names are chunk offsets (``offset == position`` when the name is
# stored inline, else an earlier copy), the only bytes that move with the chunk.  ``_Definition`` keeps
# what a parse read: the name fields and the element layouts chosen, and every other byte.  A later
# definition with the same GUID and size reuses the tree (and the renderers compiled on it) when
# those bytes are equal, each name field resolves to the same name, stored inline or not alike, and
# each element picks the same layout: then parsing it again would give the same tree.


@dataclass(slots=True)
class _Definition:
    root: Element | None
    # A long log often stores a definition at the same chunk offset in every chunk: then equal
    # bytes give equal positions, so only the names referenced by offset need looking up.
    start: int
    stop: int  # where the bytes the parse may have read end
    raw: bytes
    read_names: list[tuple[int, str, bool]]  # (field position, name, inline) as the parse read them
    read_elements: list[tuple[int, int]]  # (element position, name field position)
    # What ``_same_definition`` compares, built the first time a check needs it (most definitions
    # are only ever met at the same place, or never again): see ``_layout_of``.
    layout: _Layout | None = None
    _references: tuple[tuple[int, str], ...] | None = None

    @property
    def references(self) -> tuple[tuple[int, str], ...]:
        """(chunk offset, name) of the names not stored inline."""
        if self._references is None:
            start, raw = self.start, self.raw
            self._references = tuple(
                (_U32.unpack_from(raw, field - start)[0], name)
                for field, name, inline in self.read_names
                if not inline
            )
        return self._references


@dataclass(slots=True)
class _Layout:
    # (field position, name, inline, position of the element it names or -1), from the data start
    names: tuple[tuple[int, str, bool, int], ...]
    kept: tuple[tuple[int, int], ...]  # byte ranges compared as they are
    kept_bytes: bytes


_DEFINITIONS: dict[tuple[bytes, int], list[_Definition]] = {}
_DEFINITIONS_LIMIT = 2048  # GUID + size keys; emptied when full
_DEFINITIONS_PER_KEY = 4

_share_templates = True
"""Reuse template trees between chunks (tests switch it off to compare with plain parsing)."""


def _layout_of(definition: _Definition) -> _Layout:
    start, raw = definition.start, definition.raw
    masked: list[tuple[int, int]] = []
    for field, _name, inline in definition.read_names:
        # The name offset moves with the chunk, and so does the link to the next name of an inline
        # name; its hash, length and text are kept, so an inline name needs no decoding to compare.
        masked.append((field, field + (8 if inline else 4)))
    masked.sort()
    named = {field: element for element, field in definition.read_elements}
    kept: list[tuple[int, int]] = []
    pos = start
    for begin, end in masked:
        if begin > pos:
            kept.append((pos - start, begin - start))
        pos = max(pos, end)
    stop = definition.stop
    if stop > pos:
        kept.append((pos - start, stop - start))
    return _Layout(
        tuple(
            (field - start, name, inline, named[field] - start if field in named else -1)
            for field, name, inline in definition.read_names
        ),
        tuple(kept),
        b"".join([raw[a:b] for a, b in kept]),  # as the chunk's bytes (cut at its end) were
    )


class Chunk:
    """One 64 KiB chunk: resolves names and templates (cached) and decodes records."""

    def __init__(
        self,
        data: bytes,
        base: int,
        ansi: str = "cp1252",
        *,
        shape: Shaper | None = None,
        tree: TreeRenderer | None = None,
    ):
        self.data = data
        self.base = base
        self.ansi = ansi
        self.shape = shape  # renders trees written out in records while parsing them
        self.tree = tree  # the same in C (``compiled_tree``), when ``shape`` is gene's
        self.names: dict[int, str] = {}
        self.templates: dict[int, Element | None] = {}
        # What the template being parsed read: name fields and element layouts (see ``_Definition``).
        self._read_names: list[tuple[int, str, bool]] = []
        self._read_elements: list[tuple[int, int]] = []

    # - low level -

    def _name(self, offset: int) -> str:
        name = self.names.get(offset)
        if name is None:
            if offset + 8 > len(self.data):
                raise CorruptError(f"name offset {offset:#x} outside the chunk")
            (count,) = _U16.unpack_from(self.data, offset + 6)
            name = _decode_utf16(self.data[offset + 8 : offset + 8 + 2 * count], "replace", True)[0]
            self.names[offset] = name
        return name

    def _name_at(self, pos: int) -> tuple[str, int]:
        """Read a name offset at ``pos``; skip the name if it is stored inline right after."""
        (offset,) = _U32.unpack_from(self.data, pos)
        name = self._name(offset)
        inline = offset == pos + 4
        self._read_names.append((pos, name, inline))
        if inline:
            return name, pos + 14 + 2 * len(name)
        return name, pos + 4

    # - template definitions -

    def template(self, offset: int) -> Element | None:
        try:
            return self.templates[offset]
        except KeyError:
            pass
        data = self.data
        (size,) = _U32.unpack_from(data, offset + 20)
        start = offset + 24
        key = (data[offset + 4 : offset + 20], size)  # template GUID and data size
        known = _DEFINITIONS.get(key) if _share_templates else None
        if known:
            for definition in known:
                if self._same_place(definition, start) or self._same_definition(definition, start):
                    self.templates[offset] = definition.root
                    return definition.root
        self._read_names = []
        self._read_elements = []
        root, stop = self._fragment(start, start + size)
        self.templates[offset] = root
        if _share_templates:
            # The parse may look a few bytes past its last token (element layouts): keep those too.
            definition = _Definition(
                root, start, stop + 4, data[start : stop + 4], self._read_names, self._read_elements
            )
            self._read_names = []  # the definition keeps what this parse read
            self._read_elements = []
            if known is None:
                if len(_DEFINITIONS) >= _DEFINITIONS_LIMIT:
                    _DEFINITIONS.clear()
                known = _DEFINITIONS[key] = []
            if len(known) >= _DEFINITIONS_PER_KEY:
                del known[0]
            known.append(definition)
        return root

    def _same_place(self, known: _Definition, start: int) -> bool:
        """Whether the definition at ``start`` is ``known``'s bytes at ``known``'s offset, with the
        names it references by offset unchanged: then every check of ``_same_definition`` holds."""
        if start != known.start or self.data[start : start + len(known.raw)] != known.raw:
            return False
        try:
            return all(self._name(offset) == name for offset, name in known.references)
        except CorruptError:
            return False

    def _same_definition(self, known: _Definition, start: int) -> bool:
        """Whether parsing the definition at ``start`` would give ``known.root`` (see ``_Definition``)."""
        data = self.data
        unpack = _U32.unpack_from
        layout = known.layout
        if layout is None:
            layout = known.layout = _layout_of(known)
        try:
            for field, name, inline, element in layout.names:
                pos = start + field
                (offset,) = unpack(data, pos)
                if (offset == pos + 4) is not inline:
                    return False
                if element >= 0:  # an element's name: the layout ``_element_name_pos`` picks
                    at = start + element
                    if pos - at == 5:  # the layout tried first must fail
                        (first,) = unpack(data, at + 7)
                        if first == at + 11 or _NAMES_START <= first < at:
                            return False
                    if not inline and not _NAMES_START <= offset < at:
                        return False
                if not inline and self._name(offset) != name:
                    return False
        except (CorruptError, struct.error):
            return False
        return b"".join([data[start + a : start + b] for a, b in layout.kept]) == layout.kept_bytes

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
        field = self._element_name_pos(pos)
        self._read_elements.append((pos, field))
        name, pos = self._name_at(field)
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
        if offset == pos + 11 or _NAMES_START <= offset < pos:
            return pos + 7
        (offset,) = _U32.unpack_from(self.data, pos + 5)
        if offset == pos + 9 or _NAMES_START <= offset < pos:
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
                parts.append(_decode_utf16(data[pos + 4 : pos + 4 + 2 * count], "replace", True)[0])
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
                parts.append(_decode_utf16(data[pos + 3 : pos + 3 + 2 * count], "replace", True)[0])
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

    def instance(self, pos: int, end: int, *, record: bool = False) -> Instance:
        """Decode the BinXML of a record (or of a BinXml value): fragment + template instance.

        ``record`` says the instance is a record's (its element's attributes are not rendered).
        """
        data = self.data
        if pos + 4 < end and data[pos] == _T_FRAGMENT and data[pos + 4] == _T_TEMPLATE:
            return Instance(*self.template_instance(pos + 4))  # the usual layout, without the loop
        root: Element | None = None
        values: list[Any] = []
        while pos < end:
            token = data[pos]
            if token == _T_FRAGMENT:
                pos += 4
            elif token == _T_TEMPLATE:
                return Instance(*self.template_instance(pos))
            elif token in (0x01, 0x41):
                if self.shape is not None:
                    done = self.tree(data, pos, record, self, _MAX_TREE_DEPTH) if self.tree else None
                    rendered, pos = done if done is not None else self._render_tree(pos, record, 0)
                    return Instance(RENDERED, [], once=True, rendered=rendered)
                element, pos = self._element(pos)
                return Instance(element, [], once=True)
            elif token == _T_EOF:
                break
            else:
                raise CorruptError(f"unexpected token {token:#04x} at {pos:#x} in a record")
        return Instance(root, values)

    def template_instance(self, pos: int) -> tuple[Element | None, list[Any]]:
        """The template tree and the decoded values of the template instance token at ``pos``."""
        data = self.data
        _unknown, _tid, offset = _TEMPLATE_HEAD.unpack_from(data, pos + 1)
        pos += 10
        if offset >= len(data):
            raise CorruptError(f"template offset {offset:#x} outside the chunk")
        root = self.templates.get(offset, _UNSEEN)
        if root is _UNSEEN:
            root = self.template(offset)
        if offset == pos:
            (size,) = _U32.unpack_from(data, pos + 20)
            pos += 24 + size
        return root, self._values(pos)[0]

    def _render_tree(self, pos: int, root: bool, depth: int) -> tuple[tuple[str, Any], int]:
        """gene's (key, value) for an element written out in a record, parsed and rendered at once.

        The same walk and checks as ``_element`` and ``_content`` (inlined: such records are long
        and hold nothing but elements, attributes and text) without building the tree: no template
        means no substitution values, so a substitution is a null and an optional one drops its
        attribute.
        """
        if depth > _MAX_TREE_DEPTH:
            raise CorruptError(f"elements nested deeper than {_MAX_TREE_DEPTH}")
        data = self.data
        names = self.names
        unpack_u16 = _U16.unpack_from
        token = data[pos]
        # ``_element_name_pos``, inlined: records written out in full often omit the dependency id.
        (offset,) = _U32.unpack_from(data, pos + 7)
        if offset == pos + 11 or _NAMES_START <= offset < pos:
            field = pos + 7
        else:
            (offset,) = _U32.unpack_from(data, pos + 5)
            if offset == pos + 9 or _NAMES_START <= offset < pos:
                field = pos + 5
            else:
                field = self._element_name_pos(pos)  # raises: neither layout holds
        name = names.get(offset)
        if name is None:
            name = self._name(offset)
        pos = field + 14 + 2 * len(name) if offset == field + 4 else field + 4
        attrs: dict[str, str] = {}
        if token & 0x40:
            pos += 4  # attribute list size
            while data[pos] & 0x0F == _T_ATTRIBUTE:
                (offset,) = _U32.unpack_from(data, pos + 1)
                attr_name = names.get(offset)
                if attr_name is None:
                    attr_name = self._name(offset)
                pos = pos + 15 + 2 * len(attr_name) if offset == pos + 5 else pos + 5
                if data[pos] in {0x05, 0x45}:
                    end = pos + 4 + 2 * unpack_u16(data, pos + 2)[0]
                    if data[end] in _ATTRIBUTE_ENDS:
                        # the usual attribute: one text, then the next attribute or the close tag
                        if not root:
                            attrs[attr_name] = _decode_utf16(data[pos + 4 : end], "replace", True)[0]
                        pos = end
                        continue
                parts, pos = self._content(pos, attribute=True)
                if root:
                    continue
                texts: list[str] = []
                for part in parts:
                    if part.__class__ is str:
                        texts.append(part)
                    elif part.optional:
                        break
                else:
                    attrs[attr_name] = "".join(texts)
        token = data[pos]
        # The two commonest forms are shaped here, as ``shape`` would: an empty element and an
        # element holding one text, either without attributes or with ``Name`` alone.
        if token == _T_CLOSE_EMPTY:
            if not attrs:
                return (name, attrs), pos + 1
            if len(attrs) == 1 and "Name" in attrs:
                return (attrs["Name"], ""), pos + 1
            return self.shape(name, attrs, [], texts=[], array=None, null=False), pos + 1  # type: ignore[misc]
        if token != _T_CLOSE_START:
            raise CorruptError(f"element {name!r}: expected a close tag, got token {token:#04x} at {pos:#x}")
        pos += 1
        if data[pos] in {0x05, 0x45}:
            end = pos + 4 + 2 * unpack_u16(data, pos + 2)[0]
            if data[end] == _T_END:  # the commonest content: one text (``<Data Name="x">text``)
                text = _decode_utf16(data[pos + 4 : end], "replace", True)[0]
                if not attrs:
                    return (name, text), end + 1
                if len(attrs) == 1 and "Name" in attrs:
                    return (attrs["Name"], text), end + 1
                return self.shape(name, attrs, [], texts=[text], array=None, null=False), end + 1  # type: ignore[misc]
        children: list[tuple[str, Any]] = []
        texts = []
        null = False
        while True:
            token = data[pos]
            if token in {0x05, 0x45}:
                (count,) = unpack_u16(data, pos + 2)
                texts.append(_decode_utf16(data[pos + 4 : pos + 4 + 2 * count], "replace", True)[0])
                pos += 4 + 2 * count
            elif token in {0x01, 0x41}:
                child, pos = self._render_tree(pos, False, depth + 1)
                children.append(child)
            elif token in {_T_SUBST, _T_OPT_SUBST}:
                null = True
                pos += 4
            elif token in {0x08, 0x48}:
                texts.append(chr(unpack_u16(data, pos + 1)[0]))
                pos += 3
            elif token in {0x09, 0x49}:
                entity, pos = self._name_at(pos + 1)
                texts.append(_ENTITIES.get(entity, f"&{entity};"))
            elif token in {0x07, 0x47}:
                (count,) = unpack_u16(data, pos + 1)
                texts.append(_decode_utf16(data[pos + 3 : pos + 3 + 2 * count], "replace", True)[0])
                pos += 3 + 2 * count
            elif token == _T_PI_TARGET:
                _, pos = self._name_at(pos + 1)
            elif token == _T_PI_DATA:
                (count,) = unpack_u16(data, pos + 1)
                pos += 3 + 2 * count
            else:
                break
        if data[pos] != _T_END:
            raise CorruptError(
                f"element {name!r}: expected an end tag, got token {data[pos]:#04x} at {pos:#x}"
            )
        return self.shape(name, attrs, children, texts=texts, array=None, null=null), pos + 1  # type: ignore[misc]

    def _values(self, pos: int) -> tuple[list[Any], int]:
        """A record's substitution values, decoded.

        The descriptor array (size, type pairs) repeats from record to record, so it is looked up
        by its bytes (``_Descriptor``: the sizes and types unpacked once, the decoder of its types).
        A type list seen often enough gets a straight-line decoder (``_value_decoder``); until then,
        or when the decoder declines the sizes, the loop below decodes the commonest types inline.
        """
        data = self.data
        if compiled_values is not None and _fast_values:
            decoded = compiled_values(data, pos, self)
            if decoded is not None:
                return decoded
        (count,) = _U32.unpack_from(data, pos)
        if count > 4096:
            raise CorruptError(f"{count} substitution values")
        start = pos + 4 + 4 * count
        descriptor = _DESCRIPTORS_SEEN.get(data[pos:start]) if _fast_values else None
        if descriptor is None:
            layout = _DESCRIPTORS.get(count)
            if layout is None:
                layout = _DESCRIPTORS[count] = struct.Struct("<" + "HBx" * count)
            fields = layout.unpack_from(data, pos + 4)
            if start + sum(fields[0::2]) > len(data):
                raise CorruptError("substitution values run past the chunk")
            if not _fast_values:
                return self._plain_values(fields, start)
            sizes = fields[0::2]
            descriptor = _Descriptor(fields, sizes, sum(sizes), fields[1::2])
            _remember(_DESCRIPTORS_SEEN, data[pos:start], descriptor)
        elif start + descriptor.size > len(data):
            raise CorruptError("substitution values run past the chunk")
        fields = descriptor.fields
        pos = start
        decoder = descriptor.decoder
        if decoder is not None:
            return decoder(data, pos, descriptor.sizes, self), pos + descriptor.size
        if count >= _GENERATE_FROM_COUNT and not descriptor.declined:
            types = descriptor.types
            generated = _VALUE_DECODERS.get(types)
            if generated is None:
                seen = _TYPES_SEEN.get(types, 0) + 1
                if seen >= _GENERATE_AFTER:
                    generated = _value_decoder(types)
                    _remember(_VALUE_DECODERS, types, generated)
                    _TYPES_SEEN.pop(types, None)
                else:
                    _remember(_TYPES_SEEN, types, seen)
            if generated is not None:
                if generated.fits(descriptor.sizes):
                    descriptor.decoder = decoder = generated.decode
                    return decoder(data, pos, descriptor.sizes, self), pos + descriptor.size
                descriptor.declined = True  # the sizes do not fit its types: the loop, from now on
        values: list[Any] = []
        append = values.append
        decode = _decode_utf16
        u8_text = _U8_TEXT
        u32 = _U32.unpack_from
        guids = _GUIDS
        fast_get = _FAST.get
        pairs = iter(fields)
        for size, vtype in zip(pairs, pairs, strict=True):
            end = pos + size
            if vtype == 0x01:
                append(decode(data[pos:end], "replace", True)[0].rstrip("\x00"))
            elif vtype == 0x00:
                append(None)
            elif vtype == 0x04 and size == 1:
                append(u8_text[data[pos]])
            elif vtype == 0x08 and size == 4:
                append(str(u32(data, pos)[0]))
            elif vtype == 0x15 and size == 8:
                append("0x%08x" % _U64.unpack_from(data, pos)[0])  # noqa: UP031 (faster than f"{:08x}")
            elif vtype == 0x06 and size == 2:
                append(str(data[pos] | data[pos + 1] << 8))
            elif vtype == 0x0F and size == 16:
                raw = data[pos:end]
                text = guids.get(raw)
                append(text if text is not None else _guid(raw))
            elif vtype == 0x13 and size >= 8:
                append(_cached_sid(data[pos:end]))
            elif vtype == 0x21:
                append(self.instance(pos, end))
            else:
                fast = fast_get(vtype << 16 | size)
                append(fast(data, pos) if fast is not None else self._value(vtype, pos, size))
            pos = end
        return values, pos

    def _plain_values(self, fields: tuple[int, ...], pos: int) -> tuple[list[Any], int]:
        """The values one by one through ``_value``: the reference the fast paths are tested against."""
        values: list[Any] = []
        pairs = iter(fields)
        for size, vtype in zip(pairs, pairs, strict=True):
            values.append(self._value(vtype, pos, size))
            pos += size
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
            return _cached_sid(raw) if size >= 8 else None
        if vtype == 0x21:
            return self.instance(pos, pos + size)
        if vtype == 0x81:
            # gene drops the empty strings of a string array, and an array left empty is null.
            return [item for item in _decode_utf16(raw, "replace", True)[0].split("\x00") if item] or None
        if vtype & 0x80 and (vtype & 0x7F) in _FIXED:
            width, render = _FIXED[vtype & 0x7F]
            return [render(raw[i : i + width]) for i in range(0, size - width + 1, width)]
        return raw.hex().upper()


# --- straight-line value decoders ---------------------------------------------------------------
#
# A log's records repeat a few substitution type lists (132 on the whole corpus), so a type list
# seen ``_GENERATE_AFTER`` times gets a decoder of its own: Python source built from the type codes
# alone (no input text enters it), compiled once per process.  It unpacks the sizes into locals,
# checks the sizes the types require (else it returns None and the loop decodes the record), and
# builds the list in one expression, with no per-value dispatch.  It gives what the loop gives, value
# for value (the tests compare both with ``Chunk._plain_values``).

ValueDecoder = Callable[[bytes, int, tuple[int, ...], "Chunk"], list[Any]]
"""Decodes the values at ``pos`` whose sizes are given (sizes that fit its types, see ``fits``)."""


@dataclass(slots=True)
class _Generated:
    """The straight-line decoder of a type list, and the sizes its types require."""

    decode: ValueDecoder
    exact: Callable[[tuple[int, ...]], Any] | None  # picks the sizes a type fixes...
    exact_sizes: Any  # ...which must equal these
    minimums: tuple[tuple[int, int], ...]  # (index, minimum size)

    def fits(self, sizes: tuple[int, ...]) -> bool:
        """Whether a descriptor's sizes are what the types require (checked once per descriptor)."""
        if self.exact is not None and self.exact(sizes) != self.exact_sizes:
            return False
        return not self.minimums or all(sizes[index] >= minimum for index, minimum in self.minimums)


_VALUE_DECODERS: dict[tuple[int, ...], _Generated] = {}
_TYPES_SEEN: dict[tuple[int, ...], int] = {}
_VALUE_DECODERS_LIMIT = 4096  # type lists or descriptor arrays; each dict is emptied when full
_GENERATE_AFTER = 96  # uses of a type list before it gets a decoder (compiling one costs about 0.5 ms)
_GENERATE_FROM_COUNT = 2  # shorter lists gain nothing


@dataclass(slots=True)
class _Descriptor:
    """A substitution descriptor array seen before, by its bytes: what decoding it needs."""

    fields: tuple[int, ...]  # size, type, size, type...
    sizes: tuple[int, ...]
    size: int  # of the values together
    types: tuple[int, ...]
    decoder: ValueDecoder | None = None  # its types' generated decoder, when its sizes fit them
    declined: bool = False  # its sizes do not fit its types' decoder


_DESCRIPTORS_SEEN: dict[bytes, _Descriptor] = {}

_fast_values = True
"""Decode values through the loop and the generated decoders (tests switch it off)."""

# type code -> (required size or None for any, minimum size, expression over p (start), q (end), s (size))
_VALUE_FORMS: dict[int, tuple[int | None, int, str]] = {
    0x01: (None, 0, 'decode(data[{p}:{q}], "replace", True)[0].rstrip("\\x00")'),
    0x00: (None, 0, "None"),
    0x04: (1, 0, "u8_text[data[{p}]]"),
    0x06: (2, 0, "str(u16(data, {p})[0])"),
    0x08: (4, 0, "str(u32(data, {p})[0])"),
    0x0A: (8, 0, "str(u64(data, {p})[0])"),
    0x0F: (16, 0, "(guids.get(raw := data[{p}:{q}]) or guid(raw))"),
    0x11: (8, 0, "filetime(u64(data, {p})[0])"),
    0x13: (None, 8, "cached_sid(data[{p}:{q}])"),
    0x14: (4, 0, '"0x%04x" % u32(data, {p})[0]'),
    0x15: (8, 0, '"0x%08x" % u64(data, {p})[0]'),
    0x21: (None, 0, "chunk.instance({p}, {q})"),
}


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _VALUE_DECODERS_LIMIT and key not in cache:
        cache.clear()
    cache[key] = value


def _value_decoder(types: tuple[int, ...]) -> _Generated:
    """Compile the straight-line decoder of ``types`` (see the section comment)."""
    exact: list[tuple[int, int]] = []
    minimums: list[tuple[int, int]] = []
    needed: list[str] = []  # the sizes unpacked: those the types do not fix
    positions: list[str] = []
    items: list[str] = []
    # A value's position is the last variable one plus a constant, so fixed-size values need no
    # statement of their own.
    anchor, offset = "pos", 0

    def at(delta: int) -> str:
        return f"{anchor} + {delta}" if delta else anchor

    for i, vtype in enumerate(types):
        form = _VALUE_FORMS.get(vtype)
        size = form[0] if form is not None else None
        start = at(offset)
        if size is not None:
            exact.append((i, size))
            needed.append("_")
            offset += size
            end = at(offset)
        else:
            needed.append(f"s{i}")
            positions.append(f"p{i + 1} = {start} + s{i}")
            anchor, offset = f"p{i + 1}", 0
            end = anchor
        if form is None:
            items.append(f"chunk._value({int(vtype)}, {start}, s{i})")
            continue
        _size, minimum, expression = form
        if minimum:
            minimums.append((i, minimum))
        items.append(expression.format(p=start, q=end))
    lines = ["def decode_values(data, pos, sizes, chunk):", f"    ({', '.join(needed)},) = sizes"]
    lines.extend(f"    {line}" for line in positions)
    lines.append("    return [")
    lines.extend(f"        {item}," for item in items)
    lines.append("    ]")
    namespace: dict[str, Any] = {
        "decode": _decode_utf16,
        "u8_text": _U8_TEXT,
        "u16": _U16.unpack_from,
        "u32": _U32.unpack_from,
        "u64": _U64.unpack_from,
        "guids": _GUIDS,
        "guid": _guid,
        "filetime": _filetime,
        "cached_sid": _cached_sid,
    }
    exec(compile("\n".join(lines), f"<evtx values {len(types)}>", "exec"), namespace)  # noqa: S102
    decoder: ValueDecoder = namespace["decode_values"]
    indices = [index for index, _size in exact]
    return _Generated(
        decoder,
        operator.itemgetter(*indices) if indices else None,
        tuple(size for _index, size in exact) if len(indices) > 1 else (exact[0][1] if exact else None),
        tuple(minimums),
    )
