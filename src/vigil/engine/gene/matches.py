"""Gene match statements (``$name: Field op 'value'``, ``= @Field``, ``extract(...) in container``).

Classification uses gene's own three patterns, searched unanchored, in gene's order (spec §2.1);
then quote trimming, Go number parsing and RE2 validation turn each statement into an IR leaf.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import re2

from vigil.engine import runtime
from vigil.engine.ir import (
    ContainerMatch,
    FieldPath,
    FieldRefMatch,
    FlagMatch,
    Node,
    NumCmp,
    RegexMatch,
    StrMatch,
)
from vigil.events.fields import GoNumError, go_parse_int, parse_to_float

__all__ = ["MatchError", "ParsedMatch", "event_data_path", "parse_match"]

# Go RE2 classes: \w is ASCII, \s is [\t\n\f\r ] (no \v).
_S = r"[\t\n\f\r ]"
_FM = re.compile(
    rf"(?P<name>\$\w+):{_S}*(?P<operand>(\w+|\".*?\")){_S}*(?P<operator>(=|~=|\&=|<|>|>=|<=)){_S}+'(?P<value>.*)'",
    re.ASCII,
)
_IND = re.compile(
    rf"(?P<name>\$\w+):{_S}*(?P<operand>(\w+|\".*?\")){_S}*(?P<operator>=){_S}+@(?P<value>.*)", re.ASCII
)
_CM = re.compile(
    rf"(?P<name>\$\w+):{_S}+extract\({_S}*'(?P<regexp>.*?\(\?P<(?P<rexname>.*?)>.*?\).*?)'{_S}*,{_S}*"
    rf"(?P<operand>.*){_S}*\){_S}+in{_S}+(?P<container>[\w\.\-]+)",
    re.ASCII,
)


class MatchError(ValueError):
    """A match statement gene (or vigil, where gene would crash) refuses at load."""


@dataclass(frozen=True, slots=True)
class ParsedMatch:
    name: str
    node: Node
    container: str | None = None  # set for extract(...) statements


def _trim(s: str) -> str:
    return s.strip("\"'")


def event_data_path(operand: str) -> FieldPath:
    """gene v2.3.0 field path: ``/Event/EventData/<operand>`` trimmed of ``/`` and split on ``/``."""
    return tuple(("/Event/EventData/" + operand).strip("/").split("/"))


def check_regex(pattern: str) -> re2._Regexp:
    try:
        regex = re2.compile(pattern)
        runtime.note_program_size(pattern, int(regex._regexp.ProgramSize()))
        return regex
    except re2.error as err:
        msg = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else str(err)
        raise MatchError(f"invalid regular expression {pattern!r}: {msg}") from None


def parse_match(statement: str) -> ParsedMatch:
    """Classify and compile one statement; MatchError names what is wrong."""
    m = _FM.search(statement) or _IND.search(statement)
    if m is not None:
        name = m.group("name")
        field = event_data_path(_trim(m.group("operand")))
        op = m.group("operator")
        value = _trim(m.group("value"))
        if m.re is _IND:
            return ParsedMatch(name, FieldRefMatch(field, event_data_path(value)))
        if op == "=":
            return ParsedMatch(name, StrMatch(field, "eq", value))
        if op == "~=":
            pattern = "(" + value + ")"
            check_regex(pattern)
            return ParsedMatch(name, RegexMatch(field, pattern))
        if op == "&=":
            try:
                mask = go_parse_int(value, 64)
            except GoNumError:
                raise MatchError(
                    f"Failed to compile {statement!r}: &= needs an int64 value, got {value!r}"
                ) from None
            return ParsedMatch(name, FlagMatch(field, mask))
        try:
            number = parse_to_float(value)
        except GoNumError:
            raise MatchError(f"Failed to compile {statement!r}: {op} needs a number, got {value!r}") from None
        return ParsedMatch(name, NumCmp(field, op, number, "go"))  # type: ignore[arg-type]
    m = _CM.search(statement)
    if m is None:
        raise MatchError(f"Unknown match statement: {statement}")
    pattern = m.group("regexp")
    group = m.group("rexname")
    regex = check_regex(pattern)
    if group not in regex.groupindex:
        raise MatchError(f"extract() regular expression {pattern!r} has no group named {group!r}")
    container = m.group("container")
    node = ContainerMatch(event_data_path(m.group("operand")), pattern, group, container)
    return ParsedMatch(m.group("name"), node, container)
