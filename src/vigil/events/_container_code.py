"""Straight-line renderers for EVTX containers whose plan repeats (``<System>``, ``<Event>``).

``vigil.events.evtx`` renders an element with child elements by a loop over a plan of its children
(one entry per child: a plain leaf, a ``Name``d leaf, a constant, an attribute-only element, a
nested template instance, or a call).  For the few plans that nearly every record runs (the
``System`` element of a log and the ``Event`` root above it) the loop's dispatch dominates, so a
plan structure used often enough gets a function of its own: Python source built from the plan's
kinds and substitution indices only (every name, key and constant is passed in, no input text
enters the source), compiled once per process and shared by every container of that structure.

A generated renderer first checks what its straight line assumes: enough values, no template
instance where a value is stored, only strings (or absent optional values) in attributes.  Else,
and when two keys of its dict collide (gene ranks them ``Data1``...), it returns what the loop
returns by calling the loop.  The tests compare both on every corpus record.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

Renderer = Callable[[list[Any]], tuple[str, Any]]

# How a container renders each of its parts (see ``vigil.events.evtx._container``).
SLOT = 0  # <X>%n</X>: "X": value
NAMED = 1  # <X Name="k">%n</X>: "k": value
CALL = 2  # any other element: its own renderer
CONST = 3  # an element without substitutions whose value is a string (or null)
NESTED = 4  # a substitution among elements: a template instance's element, if it holds one
ATTRS = 5  # <X a="%n" b="c"/>: "X": {"a": value, "b": "c"}
LEAF = 6  # <X a="%n">%m</X>: "X": {"a": value, "Value": value} (``vigil.events.evtx._leaf``)

Plan = list[tuple[int, str, Any]]

GENERATE_AFTER = 48  # renders of a plan structure before it is compiled (about 1 ms each)
_FACTORIES_LIMIT = 256  # plan structures compiled or counted; each dict is emptied when full
_FACTORIES: dict[tuple[Any, ...], Callable[..., Renderer]] = {}
_USES: dict[tuple[Any, ...], int] = {}


def structure(static: dict[str, str], plan: Plan, width: int) -> tuple[Any, ...]:
    """What the generated source depends on: the kinds, indices and attribute layouts."""
    parts: list[Any] = [len(static), width]
    for kind, _key, arg in plan:
        if kind in (SLOT, NESTED):
            parts.append((kind, arg))
        elif kind == NAMED:
            parts.append((kind, arg[0]))
        elif kind in (ATTRS, LEAF):
            static_attrs, dynamic = arg[0], arg[1]
            parts.append(
                (
                    kind,
                    arg[2] if kind == LEAF else -1,
                    len(static_attrs),
                    "Name" in static_attrs,
                    tuple((index, optional, attr == "Name") for attr, index, optional in dynamic),
                )
            )
        else:
            parts.append((kind,))
    return tuple(parts)


def counted(
    name: str,
    static: dict[str, str],
    plan: Plan,
    *,
    width: int,
    loop: Renderer,
    helpers: tuple[Any, ...],
) -> Renderer:
    """``loop``, or its generated equivalent once its plan structure has been used often enough."""
    key = structure(static, plan, width)
    factory = _FACTORIES.get(key)
    if factory is not None:
        return factory(_constants(name, static, plan), loop, *helpers)
    generated: list[Renderer] = []

    def render(values: list[Any]) -> tuple[str, Any]:
        if generated:
            return generated[0](values)
        uses = _USES.get(key, 0) + 1
        if uses < GENERATE_AFTER:
            _remember(_USES, key, uses)
            return loop(values)
        _USES.pop(key, None)
        made = _FACTORIES.get(key)
        if made is None:
            made = _factory(static, plan, width)
            _remember(_FACTORIES, key, made)
        generated.append(made(_constants(name, static, plan), loop, *helpers))
        return generated[0](values)

    return render


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _FACTORIES_LIMIT and key not in cache:
        cache.clear()
    cache[key] = value


def _constants(name: str, static: dict[str, str], plan: Plan) -> tuple[Any, ...]:
    """The names, keys and constants of a plan, in the order ``_factory`` numbers them."""
    constants: list[Any] = [name]
    for attr, value in static.items():
        constants += [attr, value]
    for kind, key, arg in plan:
        if kind in (SLOT, NAMED):
            constants.append(key)
        elif kind == CONST:
            constants += [key, arg]
        elif kind == CALL:
            constants.append(arg)
        elif kind in (ATTRS, LEAF):
            static_attrs, dynamic = arg[0], arg[1]
            constants.append(key)
            for attr, value in static_attrs.items():
                constants += [attr, value]
            constants += [attr for attr, _index, _optional in dynamic]
    return tuple(constants)


def _factory(static: dict[str, str], plan: Plan, width: int) -> Callable[..., Renderer]:
    """Compile the renderer of a plan structure (see the module docstring)."""
    numbered = itertools.count()
    names = (f"c{i}" for i in numbered)  # the constants, numbered as ``_constants`` lists them
    name = next(names)
    out_items: list[str] = [f"{next(names)}: {next(names)}" for _ in static]
    static_count = len(static)
    guards: list[str] = []
    loads: dict[int, str] = {}
    body: list[str] = []
    after: list[str] = []  # entries after the first dynamic presence: appended one by one
    dynamic_presence = False

    def load(index: int) -> str:
        if index not in loads:
            loads[index] = f"v{index}"
        return loads[index]

    def add(key: str, value: str) -> None:
        nonlocal static_count
        if not dynamic_presence:
            out_items.append(f"{key}: {value}")
            static_count += 1
            return
        after.append(f"k = {key}")
        after.append("if k in out:")
        after.append("    k = unique(out, k)")
        after.append(f"out[k] = {value}")

    for position, (kind, _key, arg) in enumerate(plan):
        if kind in (SLOT, NAMED):
            value = load(arg if kind == SLOT else arg[0])
            guards.append(f"{value}.__class__ is Instance")
            add(next(names), value)
        elif kind == CONST:
            key = next(names)
            add(key, next(names))
        elif kind == CALL:
            call = next(names)
            target = body if not dynamic_presence else after
            target.append(f"k{position}, x{position} = {call}(values)")
            add(f"k{position}", f"x{position}")
        elif kind in (ATTRS, LEAF):
            static_attrs, dynamic = arg[0], arg[1]
            key = next(names)
            text = ""
            if kind == LEAF:  # the content: a string, or the leaf's own renderer decides
                text = load(arg[2])
                guards.append(f"{text}.__class__ is not str")
            items = [f"{next(names)}: {next(names)}" for _ in static_attrs]
            later: list[str] = []  # from the first optional attribute on, set in order
            named = "Name" in static_attrs
            for attr, index, is_optional in dynamic:
                value = load(index)
                attr_name = next(names)
                named = named or attr == "Name"
                if is_optional:
                    guards.append(f"({value} is not None and {value}.__class__ is not str)")
                    later.append(f"if {value} is not None:")
                    later.append(f"    a{position}[{attr_name}] = {value}")
                else:
                    guards.append(f"{value}.__class__ is not str")
                    if later:
                        later.append(f"a{position}[{attr_name}] = {value}")
                    else:
                        items.append(f"{attr_name}: {value}")
            target = body if not dynamic_presence else after
            target.append(f"a{position} = {{{', '.join(items)}}}")
            target.extend(later)
            if kind == LEAF:  # what ``_leaf`` returns with these attributes
                target.append(f"if not a{position}:")
                target.append(f"    k{position}, a{position} = {key}, {text}")
                if named:
                    target.append(f'elif len(a{position}) == 1 and "Name" in a{position}:')
                    target.append(f'    k{position}, a{position} = a{position}["Name"], {text}')
                target.append("else:")
                target.append(f'    a{position}["Value"] = {text}')
                target.append(f"    k{position} = {key}")
                add(f"k{position}", f"a{position}")
            elif named:
                target.append(f'if len(a{position}) == 1 and "Name" in a{position}:')
                target.append(f'    k{position}, a{position} = a{position}["Name"], ""')
                target.append("else:")
                target.append(f"    k{position} = {key}")
                add(f"k{position}", f"a{position}")
            else:
                add(key, f"a{position}")
        else:  # NESTED: present only when the value is an instance holding an element
            dynamic_presence = True
            value = load(arg)
            after.append(f"if {value}.__class__ is Instance and {value}.root is not None:")
            after.append(f"    r = {value}.root.render")
            after.append(f"    if r is not None and not {value}.once:")
            after.append(f"        k, x = r({value}.values)")
            after.append("    else:")
            after.append(f"        k, x = render_instance({value})")
            after.append("    if k in out:")
            after.append("        k = unique(out, k)")
            after.append("    out[k] = x")
    count = next(numbered)  # how many constants were numbered
    lines = ["def factory(constants, loop, Instance, unique, render_instance):"]
    lines.append(f"    ({', '.join(f'c{i}' for i in range(count))},) = constants")
    lines.append("    def render(values):")
    lines.append(f"        if len(values) < {width}:")
    lines.append("            return loop(values)")
    lines.extend(f"        v{index} = values[{index}]" for index in sorted(loads))
    if guards:
        lines.append(f"        if {' or '.join(guards)}:")
        lines.append("            return loop(values)")
    lines.extend(f"        {line}" for line in body)
    lines.append(f"        out = {{{', '.join(out_items)}}}")
    lines.append(f"        if len(out) != {static_count}:  # two keys collide: the loop ranks them")
    lines.append("            return loop(values)")
    lines.extend(f"        {line}" for line in after)
    lines.append(f"        return {name}, out")
    lines.append("    return render")
    namespace: dict[str, Any] = {}
    source = "\n".join(lines)

    exec(compile(source, "<evtx container>", "exec"), namespace)  # noqa: S102
    factory: Callable[..., Renderer] = namespace["factory"]
    return factory
