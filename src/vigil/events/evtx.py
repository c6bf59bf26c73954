"""EVTX reader: renders every record in the JSON shape of gene v2.3.0's EVTX reader.

The Windows event log format (``.evtx``) is a file header, 64 KiB chunks, and records whose body is
BinXML: a token stream of elements, attributes and template instances whose values are typed
substitutions.  We parse BinXML ourselves instead of going through a library's XML or JSON output
because gene's shape depends on facts those outputs drop: the type of each substitution value (a
GUID is rendered without braces, HexInt32 zero-padded to 4 digits, an empty binary is ``null``, a
string array stays a list), FILETIME at 100 ns precision, and whether an element had no content at
all (``{}``) or an empty value (``""``).  Measurements and the choice are in ``docs/scan.md``.

Shape rules (observed on the golden renderings in ``../shared/data/evtx``):

* every scalar is a string; attributes are merged into their element's object;
* an element whose only attribute is ``Name`` is stored under that name (``<Data Name="x">v`` gives
  ``"x": "v"``; ``<Provider Name="VSS"/>`` gives ``"VSS": ""``);
* an element with attributes and text gives ``{"<attr>": ..., "Value": "<text>"}``;
* an element without attributes, children or content gives ``{}``;
* a repeated key is suffixed with its rank: ``Data``, ``Data1``, ``Data2``...;
* the root ``Event`` element's attributes (``xmlns``) are dropped.

Templates are parsed and compiled once and shared by every chunk holding the same definition
(``_binxml``), so a record costs one pass over its substitution values and one over the compiled
plan: a container of ``<Data Name=..>`` leaves zips its keys with its values, and a plan structure
used often (``<System>``, ``<Event>``) runs generated straight-line code (``_container_code``).
Records written out without a template are rendered while they are parsed; whatever goes
wrong there, the record is read again by the plain walk (tree, then ``render_element``), which
reports errors as the reader always has.
"""

from __future__ import annotations

import copy
import logging
import operator
import os
import struct
from collections.abc import Callable, Iterator
from typing import Any

from vigil.events import _binxml
from vigil.events._binxml import (
    CHUNK_HEADER_SIZE,
    CHUNK_MAGIC,
    CHUNK_SIZE,
    FILE_HEADER_SIZE,
    FILE_MAGIC,
    RECORD_HEADER_SIZE,
    RECORD_MAGIC,
    Chunk,
    CorruptError,
    Element,
    Instance,
    Renderer,
    Subst,
)
from vigil.events._container_code import ATTRS as _ATTRS
from vigil.events._container_code import CALL as _CALL
from vigil.events._container_code import CONST as _CONST
from vigil.events._container_code import LEAF as _LEAF
from vigil.events._container_code import NAMED as _NAMED
from vigil.events._container_code import NESTED as _NESTED
from vigil.events._container_code import SLOT as _SLOT
from vigil.events._container_code import counted

logger = logging.getLogger(__name__)

__all__ = ["EvtxError", "chunk_count", "iter_evtx", "read_evtx"]

_U32 = struct.Struct("<I")
_ZEROS = bytes(CHUNK_SIZE)
_RECORD_HEAD = struct.Struct("<4sIQQ")  # magic, size, record id, written time

_reference = False
"""Read with the plain walk only: trees parsed then interpreted, no template shared between chunks
(with ``_binxml._share_templates`` off).  The tests compare the fast paths with it."""

# What decoding corrupt bytes can raise; translated into EvtxError at the record boundary.
_DECODE_ERRORS = (CorruptError, struct.error, IndexError, ValueError, OverflowError, RecursionError)


class EvtxError(ValueError):
    """A file that is not EVTX, or a chunk or record that cannot be parsed.

    ``path`` is the file, ``record`` the record id when known, ``offset`` the file offset.
    """

    def __init__(self, path: str, reason: str, *, record: int | None = None, offset: int | None = None):
        self.path = path
        self.reason = reason
        self.record = record
        self.offset = offset
        where = path
        if record is not None:
            where += f": record {record}"
        if offset is not None:
            where += f" (offset {offset:#x})"
        super().__init__(f"{where}: {reason}")


# --- rendering into gene's shape ----------------------------------------------------------------
#
# Each template element is compiled once into a closure ``render(values) -> (key, value)``; the
# closures are cached on the elements, and the trees are shared by every chunk holding the same
# template (``_binxml``), so a record only runs closures.  ``render_element`` interprets the same
# rules without compiling: it renders trees written out in a record (used once), and it is the
# reference the compiled closures are tested against.


def _attribute_value(parts: list[str | Subst], values: list[Any]) -> str | None:
    texts: list[str] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
            continue
        value = values[part.index] if part.index < len(values) else None
        if value is None:
            if part.optional:
                return None
            continue
        texts.append(_flatten(value))
    return "".join(texts)


def _flatten(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ",".join(map(str, value))
    return ""


def _unique(out: dict[str, Any], key: str) -> str:
    """gene suffixes a repeated key with its rank: Data, Data1, Data2..."""
    rank = 1
    while f"{key}{rank}" in out:
        rank += 1
    return f"{key}{rank}"


def render_element(
    element: Element, values: list[Any], *, root: bool = False, compiled: bool = True
) -> tuple[str, Any]:
    """gene's (key, value) for ``element``, interpreted from the shape rules.

    Nested template instances are rendered by their compiled renderers unless ``compiled`` is
    false (the tests compare the two).
    """
    attrs: dict[str, Any] = {}
    if not root:
        for attr, attr_parts in element.attrs:
            text = _attribute_value(attr_parts, values)
            if text is not None:
                attrs[attr] = text
    children: list[tuple[str, Any]] = []
    texts: list[str] = []
    array: list[str] | None = None
    null = False
    for part in element.content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Subst):
            value = values[part.index] if part.index < len(values) else None
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, Instance):
                if value.root is not None:
                    children.append(render_instance(value, compiled=compiled))
            elif isinstance(value, list):
                array = value
            else:
                null = True
        else:
            children.append(render_element(part, values, compiled=compiled))
    return _shape(element.name, attrs, children, texts=texts, array=array, null=null)


def render_instance(instance: Instance, *, root: bool = False, compiled: bool = True) -> tuple[str, Any]:
    """gene's (key, value) for a template instance (its root must not be None)."""
    if instance.rendered is not None:
        if instance.handed_out:  # the same value substituted twice: do not share one dict
            return copy.deepcopy(instance.rendered)
        instance.handed_out = True
        return instance.rendered
    assert instance.root is not None
    if instance.once or not compiled:
        return render_element(instance.root, instance.values, root=root, compiled=compiled)
    return renderer(instance.root, root=root)(instance.values)


def _nested_value(instance: Instance) -> dict[str, Any]:
    """The value of an element whose only content is a substitution holding ``instance``."""
    if instance.root is None:
        return {}
    key, value = render_instance(instance)
    return {key: value}


def renderer(element: Element, *, root: bool = False) -> Renderer:
    """The compiled renderer of ``element`` (cached on it)."""
    if root:
        if element.root_render is None:
            element.root_render = _compile(element, root=True)
        return element.root_render
    if element.render is None:
        element.render = _compile(element, root=False)
    return element.render


def _static_attributes(attrs: list[tuple[str, list[str | Subst]]]) -> dict[str, str] | None:
    """The attributes as a dict when none holds a substitution, else None."""
    static: dict[str, str] = {}
    for attr, parts in attrs:
        if not all(isinstance(part, str) for part in parts):
            return None
        static[attr] = "".join(parts)  # type: ignore[arg-type]
    return static


def _has_substitution(element: Element) -> bool:
    if any(isinstance(part, Subst) for _, parts in element.attrs for part in parts):
        return True
    return any(
        isinstance(part, Subst) or (isinstance(part, Element) and _has_substitution(part))
        for part in element.content
    )


def _compile(element: Element, *, root: bool) -> Renderer:
    """Specialised closures for the common element forms; anything else goes to ``_general``."""
    attrs = [] if root else element.attrs
    name = element.name
    content = element.content
    if any(isinstance(part, Element) for part in content):
        static = _static_attributes(attrs)
        if static is not None:
            return _container(name, static, content)
    children = [renderer(part) if isinstance(part, Element) else part for part in content]
    general = _general(name, attrs, children)
    if any(len(parts) != 1 for _, parts in attrs) or not _slot_order(attrs):
        return general
    slots = [(attr, parts[0]) for attr, parts in attrs]
    static = {attr: part for attr, part in slots if isinstance(part, str)}
    dynamic = [(attr, part.index, part.optional) for attr, part in slots if isinstance(part, Subst)]
    if content and all(isinstance(part, Element) for part in content):
        return general
    if len(content) == 1 and isinstance(content[0], Subst):
        return _leaf(name, content[0].index, static, dynamic, general)
    if content:
        return general
    if not dynamic:
        if len(static) == 1 and "Name" in static:
            named = static["Name"]
            return lambda values: (named, "")
        return lambda values: (name, dict(static))

    def attributes(values: list[Any]) -> tuple[str, Any]:
        out = _fill(static, dynamic, values)
        if out is None:
            return general(values)
        if len(out) == 1 and "Name" in out:
            return out["Name"], ""
        return name, out

    return attributes


def _container(name: str, static: dict[str, str], content: list[Element | str | Subst]) -> Renderer:
    """An element with child elements and constant attributes: a dict of its children.

    With at least one child element the result is always a dict, so text parts are dropped and a
    substitution contributes only when it holds a template instance.  A repeated key is ranked at
    render time, as the keys of called children and instances are not known before.
    """
    plan: list[tuple[int, str, Any]] = []
    width = 0  # substitution indices read here: shorter value arrays are padded with None
    for part in content:
        if isinstance(part, Subst):
            plan.append((_NESTED, "", part.index))
            width = max(width, part.index + 1)
            continue
        if not isinstance(part, Element):
            continue
        only = part.content[0] if len(part.content) == 1 else None
        if isinstance(only, Subst) and not part.attrs:
            plan.append((_SLOT, part.name, only.index))
            width = max(width, only.index + 1)
        elif isinstance(only, Subst) and _static_attributes(part.attrs) == {"Name": _name_attr(part)}:
            plan.append((_NAMED, _name_attr(part), (only.index, _on_demand(part))))
            width = max(width, only.index + 1)
        elif (attributes := _attribute_slots(part)) is not None:
            plan.append((_ATTRS, part.name, (*attributes, _on_demand(part))))
            width = max(width, *(index + 1 for _, index, _ in attributes[1]))
        elif isinstance(only, Subst) and (attributes := _attribute_slots(part, content=True)) is not None:
            plan.append((_LEAF, part.name, (*attributes, only.index, renderer(part))))
            width = max(width, only.index + 1, *(index + 1 for _, index, _ in attributes[1]))
        elif not _has_substitution(part):
            key, value = render_element(part, [])
            if value is None or isinstance(value, str):
                plan.append((_CONST, key, value))
            else:
                plan.append((_CALL, "", renderer(part)))
        else:
            plan.append((_CALL, "", renderer(part)))

    def container(values: list[Any]) -> tuple[str, Any]:
        if len(values) < width:
            values = values + [None] * (width - len(values))
        out = dict(static) if static else {}
        for kind, static_key, arg in plan:
            if kind == _SLOT:
                key = static_key
                value = values[arg]
                if value.__class__ is Instance:
                    value = _nested_value(value)
            elif kind == _NAMED:
                value = values[arg[0]]
                if value.__class__ is Instance:
                    key, value = arg[1](values)
                else:
                    key = static_key
            elif kind == _CALL:
                key, value = arg(values)
            elif kind == _LEAF:
                key, value = arg[3](values)
            elif kind == _ATTRS:
                static_attrs, dynamic, fallback = arg
                value = dict(static_attrs) if static_attrs else {}
                for attr, index, optional in dynamic:
                    attr_value = values[index]
                    if attr_value.__class__ is str:
                        value[attr] = attr_value
                    elif attr_value is not None or not optional:
                        key, value = fallback(values)
                        break
                else:
                    if len(value) == 1 and "Name" in value:
                        key, value = value["Name"], ""
                    else:
                        key = static_key
            elif kind == _CONST:
                key = static_key
                value = arg
            else:
                value = values[arg]
                if value.__class__ is not Instance or value.root is None:
                    continue
                render = value.root.render
                if render is not None and not value.once:
                    key, value = render(value.values)
                else:
                    key, value = render_instance(value)
            if key in out:
                key = _unique(out, key)
            out[key] = value
        return name, out

    leaves = _leaves(name, static, plan, width, container)
    if leaves is not None:
        return leaves
    return counted(
        name, static, plan, width=width, loop=container, helpers=(Instance, _unique, render_instance)
    )


def _leaves(
    name: str, static: dict[str, str], plan: list[tuple[int, str, Any]], width: int, container: Renderer
) -> Renderer | None:
    """For a container of plain and ``Name``d leaves only (``<EventData>``'s ``<Data Name="k">%n``):
    a renderer that zips its keys with its values when they are all strings, the common case.

    The keys must be distinct (no ranking) and there must be no constant attribute; a value that is
    not a string (null, array, template instance) or a short value array goes to ``container``.
    """
    if static or len(plan) < 2 or any(kind not in (_SLOT, _NAMED) for kind, _, _ in plan):
        return None
    keys = tuple(key for _, key, _ in plan)
    if len(set(keys)) != len(keys):
        return None
    indices = tuple(arg if kind == _SLOT else arg[0] for kind, _, arg in plan)
    join = "".join
    if indices == tuple(range(len(indices))):
        count = len(indices)

        def in_order(values: list[Any]) -> tuple[str, Any]:
            if len(values) != count:
                return container(values)
            try:
                join(values)  # a TypeError unless every value is a string: one C loop
            except TypeError:
                return container(values)
            return name, dict(zip(keys, values, strict=True))

        return in_order
    pick = operator.itemgetter(*indices)

    def picked(values: list[Any]) -> tuple[str, Any]:
        if len(values) < width:
            return container(values)
        chosen = pick(values)
        try:
            join(chosen)
        except TypeError:
            return container(values)
        return name, dict(zip(keys, chosen, strict=True))

    return picked


def _on_demand(element: Element) -> Renderer:
    """``element``'s renderer, compiled when first needed: for fallbacks most templates never take."""

    def render(values: list[Any]) -> tuple[str, Any]:
        return renderer(element)(values)

    return render


def _attribute_slots(
    element: Element, *, content: bool = False
) -> tuple[dict[str, str], list[tuple[str, int, bool]]] | None:
    """For an element whose attributes are each a text or one substitution (at least one), without
    content (or, with ``content``, whose content is one substitution): its constant attributes and
    its (attribute, index, optional) substitutions."""
    if bool(element.content) is not content or any(len(parts) != 1 for _, parts in element.attrs):
        return None
    if not _slot_order(element.attrs):
        return None
    static = {attr: parts[0] for attr, parts in element.attrs if isinstance(parts[0], str)}
    dynamic = [
        (attr, parts[0].index, parts[0].optional)
        for attr, parts in element.attrs
        if isinstance(parts[0], Subst)
    ]
    return (static, dynamic) if dynamic else None


def _slot_order(attrs: list[tuple[str, list[str | Subst]]]) -> bool:
    """Whether one-part attributes can be rendered as the slot renderers do, constant ones first
    and then the substituted ones: the shape rules' result (key order included) only when no name
    repeats and no constant attribute follows a substituted one."""
    if len({attr for attr, _ in attrs}) != len(attrs):
        return False
    constant = [isinstance(parts[0], str) for _, parts in attrs]
    return constant == sorted(constant, reverse=True)


def _name_attr(element: Element) -> str:
    parts = element.attrs[0][1] if element.attrs else []
    return "".join(part for part in parts if isinstance(part, str))


def _leaf(
    name: str, index: int, static: dict[str, str], dynamic: list[tuple[str, int, bool]], general: Renderer
) -> Renderer:
    """An element whose content is one substitution: the commonest form (``<Data Name="x">%1``)."""
    if dynamic:

        def leaf(values: list[Any]) -> tuple[str, Any]:
            try:
                value = values[index]
            except IndexError:
                value = None
            out = _fill(static, dynamic, values) if value.__class__ is str else None
            if out is None:
                return general(values)
            if not out:
                return name, value
            if len(out) == 1 and "Name" in out:
                return out["Name"], value
            out["Value"] = value
            return name, out

        return leaf
    key = name
    if len(static) == 1 and "Name" in static:
        key, static = static["Name"], {}
    if static:

        def with_attributes(values: list[Any]) -> tuple[str, Any]:
            try:
                value = values[index]
            except IndexError:
                value = None
            if value.__class__ is str:
                return key, {**static, "Value": value}
            return general(values)

        return with_attributes

    def plain(values: list[Any]) -> tuple[str, Any]:
        try:
            value = values[index]
        except IndexError:
            value = None
        if value.__class__ is str:
            return key, value
        return general(values)

    return plain


def _fill(
    static: dict[str, str], dynamic: list[tuple[str, int, bool]], values: list[Any]
) -> dict[str, Any] | None:
    """The attributes when every substituted one is a string or an absent optional (else None)."""
    out: dict[str, Any] = dict(static)
    for attr, index, optional in dynamic:
        try:
            value = values[index]
        except IndexError:
            value = None
        if value.__class__ is str:
            out[attr] = value
        elif value is not None or not optional:
            return None
    return out


def _general(name: str, attrs: list[tuple[str, list[str | Subst]]], parts: list[Any]) -> Renderer:
    def render(values: list[Any]) -> tuple[str, Any]:
        rendered_attrs: dict[str, Any] = {}
        for attr, attr_parts in attrs:
            text = _attribute_value(attr_parts, values)
            if text is not None:
                rendered_attrs[attr] = text
        children: list[tuple[str, Any]] = []
        texts: list[str] = []
        array: list[str] | None = None
        null = False
        for part in parts:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Subst):
                value = values[part.index] if part.index < len(values) else None
                if isinstance(value, str):
                    texts.append(value)
                elif isinstance(value, Instance):
                    if value.root is not None:
                        children.append(render_instance(value))
                elif isinstance(value, list):
                    array = value
                else:
                    null = True
            else:
                children.append(part(values))
        return _shape(name, rendered_attrs, children, texts=texts, array=array, null=null)

    return render


def _shape(
    name: str,
    attrs: dict[str, Any],
    children: list[tuple[str, Any]],
    *,
    texts: list[str],
    array: list[str] | None,
    null: bool,
) -> tuple[str, Any]:
    key = name
    named = not children and len(attrs) == 1 and "Name" in attrs
    if named:
        key = attrs.pop("Name")
    if children:
        out: dict[str, Any] = attrs
        for child_key, child_value in children:
            out[_unique(out, child_key) if child_key in out else child_key] = child_value
        return key, out
    scalar: Any
    if array is not None:
        scalar = array
    elif texts:
        scalar = "".join(texts)
    elif null:
        scalar = None
    elif named:
        scalar = ""
    else:
        return key, attrs
    if attrs:
        attrs["Value"] = scalar
        return key, attrs
    return key, scalar


# --- file walking -----------------------------------------------------------------------------


def chunk_count(size: int) -> int:
    """How many 64 KiB chunk slots follow the file header of an ``.evtx`` file of ``size`` bytes."""
    return max(0, -(-(size - FILE_HEADER_SIZE) // CHUNK_SIZE))


def _chunk(path: str, fd: int, offset: int) -> bytes | None:
    """The chunk at ``offset``; None for an empty (all-zero) slot, EvtxError for a damaged one."""
    try:
        chunk = os.pread(fd, CHUNK_SIZE, offset)
    except OSError as exc:
        raise EvtxError(path, f"cannot read: {exc.strerror or exc}", offset=offset) from exc
    if chunk[:8] == CHUNK_MAGIC:
        if len(chunk) < CHUNK_SIZE:
            raise EvtxError(path, f"truncated chunk: {len(chunk)} of {CHUNK_SIZE} bytes", offset=offset)
        return chunk
    if chunk != _ZEROS[: len(chunk)]:  # an unused slot is all zeros (memcmp, not a count)
        raise EvtxError(path, "bad chunk signature", offset=offset)
    return None


def read_evtx(
    path: str | os.PathLike[str],
    *,
    on_error: Callable[[EvtxError], None] | None = None,
    chunks: range | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield every record of the ``.evtx`` file at ``path`` as ``{"Event": {...}}`` in gene's shape.

    A file that is not EVTX raises :class:`EvtxError`.  A corrupt chunk or record raises
    :class:`EvtxError` naming the file, the record and the offset, unless ``on_error`` is given: then
    it receives the error and reading goes on with the next record (or chunk) so nothing else is lost.
    ``chunks`` limits reading to those chunk slots (0 is the first chunk after the file header):
    chunks are independent, so parallel scanners give each worker a range (see ``chunk_count``).
    """
    name = os.fspath(path)
    # Chunks are read one by one with pread: logs can be large, and a 64 KiB read costs less CPU
    # than faulting in the pages of a mapped file (the corpus' small files are mostly that).
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise EvtxError(name, f"cannot read: {exc.strerror or exc}") from exc
    try:
        try:
            size = os.fstat(fd).st_size
            head = os.pread(fd, len(FILE_MAGIC), 0)
        except OSError as exc:
            raise EvtxError(name, f"cannot read: {exc.strerror or exc}") from exc
        if head != FILE_MAGIC:
            raise EvtxError(name, "not an EVTX file (no ElfFile signature)", offset=0)
        if size < FILE_HEADER_SIZE:
            raise EvtxError(name, f"truncated file header: {size} bytes", offset=0)

        def fail(error: EvtxError) -> None:
            if on_error is None:
                raise error
            on_error(error)

        slots = range(chunk_count(size))
        for slot in slots if chunks is None else slots[chunks.start : chunks.stop]:
            chunk_offset = FILE_HEADER_SIZE + slot * CHUNK_SIZE
            try:
                raw = _chunk(name, fd, chunk_offset)
            except EvtxError as error:
                fail(error)
                continue
            if raw is not None:
                yield from _records(name, chunk_offset, raw, fail)
    finally:
        os.close(fd)


def iter_evtx(
    path: str | os.PathLike[str], *, chunks: range | None = None
) -> Iterator[dict[str, Any] | EvtxError]:
    """Like :func:`read_evtx`, but every error is yielded in the stream instead of raised.

    For scanners that report bad input and go on (``vigil scan``): a file that cannot be read at
    all yields one error; a bad chunk or record yields its error between the events around it.
    With ``chunks``, a file-level error comes only with the range that starts at slot 0, so ranges
    that tile a file report it once, as one whole-file read does.
    """
    pending: list[EvtxError] = []
    try:
        for event in read_evtx(path, on_error=pending.append, chunks=chunks):
            if pending:
                yield from pending
                pending.clear()
            yield event
    except EvtxError as error:
        if chunks is None or chunks.start == 0:
            pending.append(error)
    yield from pending


def _records(
    path: str, chunk_offset: int, raw: bytes, fail: Callable[[EvtxError], None]
) -> Iterator[dict[str, Any]]:
    chunk = (
        Chunk(raw, chunk_offset)
        if _reference
        else Chunk(raw, chunk_offset, shape=_shape, tree=_binxml.compiled_tree)
    )
    plain: Chunk | None = None
    (end,) = _U32.unpack_from(raw, 48)  # free space offset: the records end there
    trusted = CHUNK_HEADER_SIZE <= end <= CHUNK_SIZE
    if not trusted:
        fail(EvtxError(path, f"bad free space offset {end:#x} in chunk header", offset=chunk_offset))
        end = CHUNK_SIZE  # read records up to the first empty slot instead
    pos = CHUNK_HEADER_SIZE
    while pos + RECORD_HEADER_SIZE <= end:
        magic, size, record_id, _written = _RECORD_HEAD.unpack_from(raw, pos)
        if magic != RECORD_MAGIC or size < RECORD_HEADER_SIZE + 4 or pos + size > CHUNK_SIZE:
            if not trusted and magic == b"\x00\x00\x00\x00":
                return
            if magic != RECORD_MAGIC:
                fail(EvtxError(path, "bad record signature", offset=chunk_offset + pos))
            else:
                reason = f"bad record size {size}"
                fail(EvtxError(path, reason, record=record_id, offset=chunk_offset + pos))
            # Resynchronise on the next record signature so the rest of the chunk is not lost.
            pos = raw.find(RECORD_MAGIC, pos + 1, end)
            if pos < 0:
                return
            continue
        try:
            event = _event(chunk, pos + RECORD_HEADER_SIZE, pos + size - 4)
        except _DECODE_ERRORS:
            # Redo the record on the plain walk (trees parsed, then rendered): it reports a corrupt
            # record exactly as it always has.
            if plain is None:
                plain = Chunk(raw, chunk_offset)
            try:
                event = _event(plain, pos + RECORD_HEADER_SIZE, pos + size - 4)
            except _DECODE_ERRORS as exc:
                where = chunk_offset + pos
                fail(EvtxError(path, f"corrupt record: {exc}", record=record_id, offset=where))
            else:
                yield {"Event": event}
        else:
            yield {"Event": event}
        pos += size


def _event(chunk: Chunk, start: int, end: int) -> Any:
    """The ``Event`` value of the record whose BinXML spans ``start:end``."""
    data = chunk.data
    if start + 4 < end and data[start] == 0x0F and data[start + 4] == 0x0C and not _reference:
        # The usual record: a fragment header, then a template instance (no Instance object).
        template, values = chunk.template_instance(start + 4)
        if template is None:
            raise CorruptError("record holds no element")
        render = template.root_render
        if render is not None:
            return render(values)[1]
        return render_instance(Instance(template, values), root=True)[1]
    instance = chunk.instance(start, end, record=True)
    root = instance.root
    if root is None:
        raise CorruptError("record holds no element")
    if _reference:
        return render_instance(instance, root=True, compiled=False)[1]
    if root.root_render is not None and not instance.once:  # the usual case, without the calls
        return root.root_render(instance.values)[1]
    return render_instance(instance, root=True)[1]
