"""The predicate IR: what every rule front end (Gene, Sigma) compiles to.

A rule's detection logic is a tree of the frozen node classes below. Leaves test one field of an
event (or, for ``KeywordMatch``, every string value of it); ``And``/``Or``/``Not``/``Const`` combine
them. The compiler turns a rule set's trees into generated Python, indexed by (channel, EventID);
front ends never evaluate events themselves.

Contract shared by the front ends and the compiler:

* ``FieldPath`` is a tuple of keys from the event root, e.g. ``("Event", "EventData", "Image")``.
  A field is *present* when every key exists in a nested JSON object; anything else is *missing*.
  Every leaf except ``Exists`` is false on a missing field (gene §2.3).
* String tests compare the field's *string form*: a JSON string as is, any other JSON value in Go's
  ``%v`` form (gene §2.4: ``true``, ``<nil>``, ``1e+06`` ...), so ``null`` is present.
* ``RegexMatch.pattern`` is RE2 syntax (flags inline, e.g. ``(?i)``) searched unanchored.
* Nodes are hashable, so identical sub-trees across rules can be shared by the compiler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "And",
    "Attack",
    "CidrMatch",
    "Const",
    "ContainerMatch",
    "Exists",
    "FieldPath",
    "FieldRefMatch",
    "FlagMatch",
    "KeywordMatch",
    "Node",
    "Not",
    "NumCmp",
    "Or",
    "RegexMatch",
    "RuleIR",
    "SourceLocation",
    "StrMatch",
    "StrOp",
]

FieldPath = tuple[str, ...]
StrOp = Literal["eq", "contains", "startswith", "endswith"]


@dataclass(frozen=True, slots=True)
class StrMatch:
    """The field's string form compared with ``value`` (gene ``=`` is ``eq`` and case-sensitive)."""

    field: FieldPath
    op: StrOp
    value: str
    ignore_case: bool = False


@dataclass(frozen=True, slots=True)
class RegexMatch:
    """RE2 unanchored search of ``pattern`` in the field's string form (gene ``~=``, Sigma ``re``)."""

    field: FieldPath
    pattern: str


@dataclass(frozen=True, slots=True)
class NumCmp:
    """Numeric comparison of the field, parsed as a number; unparsable or NaN is false.

    ``syntax="go"`` parses like gene's ``parseToFloat`` (Go ParseInt base 0, then ParseFloat);
    ``syntax="plain"`` accepts decimal integers and floats only (Sigma ``lt``/``gte``...).
    """

    field: FieldPath
    op: Literal["<", "<=", ">", ">="]
    value: float
    syntax: Literal["go", "plain"] = "go"


@dataclass(frozen=True, slots=True)
class FlagMatch:
    """Gene ``&=``: the field parses as a Go int64 (base 0) and has every bit of ``mask`` set."""

    field: FieldPath
    mask: int


@dataclass(frozen=True, slots=True)
class FieldRefMatch:
    """Two present fields whose string forms compare with ``op`` (gene ``= @F``, Sigma ``fieldref``)."""

    field: FieldPath
    other: FieldPath
    op: StrOp = "eq"
    ignore_case: bool = False


@dataclass(frozen=True, slots=True)
class ContainerMatch:
    """Gene ``extract('re', F) in C``: group ``group`` of ``pattern``'s first match is in ``container``."""

    field: FieldPath
    pattern: str
    group: str
    container: str


@dataclass(frozen=True, slots=True)
class Exists:
    """The field is present (``present=True``) or missing (``present=False``)."""

    field: FieldPath
    present: bool = True


@dataclass(frozen=True, slots=True)
class CidrMatch:
    """The field is an IPv4/IPv6 address inside one of ``networks`` (CIDR strings)."""

    field: FieldPath
    networks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KeywordMatch:
    """Any string value anywhere under ``scope`` matches (Sigma keywords: full-event search)."""

    op: StrOp | Literal["regex"]
    value: str
    ignore_case: bool = True
    scope: FieldPath = ("Event",)


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class And:
    """Short-circuit conjunction, evaluated left to right."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Short-circuit disjunction, evaluated left to right."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Const:
    value: bool


Node = (
    StrMatch
    | RegexMatch
    | NumCmp
    | FlagMatch
    | FieldRefMatch
    | ContainerMatch
    | Exists
    | CidrMatch
    | KeywordMatch
    | Not
    | And
    | Or
    | Const
)


@dataclass(frozen=True, slots=True)
class Attack:
    """One MITRE ATT&CK reference of a rule (gene ``Meta.ATTACK`` entry)."""

    id: str
    tactic: str = ""
    description: str = ""
    reference: str = ""


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """Where a rule was read: file and 1-based line of the start of the rule."""

    file: str
    line: int = 0


@dataclass(frozen=True, slots=True)
class RuleIR:
    """A front end's output for one rule: meta filter, detection logic and what a match reports.

    ``events`` maps an exact channel name to the EventIDs it accepts; an empty mapping accepts every
    event and an empty ID tuple every event of that channel (gene §5.2). ``sigma_id`` is set by the
    Sigma front end so detections can list the ids of the Sigma rules that matched.
    """

    name: str
    condition: Node
    events: tuple[tuple[str, tuple[int, ...]], ...] = ()
    computers: tuple[str, ...] = ()
    criticality: int = 0
    filter: bool = False
    actions: tuple[str, ...] = ()
    attack: tuple[Attack, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""
    source: SourceLocation | None = None
    sigma_id: str | None = None
