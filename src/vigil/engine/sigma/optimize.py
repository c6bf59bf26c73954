"""Rewrites of a compiled Sigma rule that keep its meaning and make it cheaper to match.

* **EventID hoisting.** Rules on a service (``service: security``) only name a channel; their
  condition usually requires ``EventID`` values. When every match needs one of a known set of
  EventIDs, the set goes into the rule's ``events`` filter, so the engine's (channel, EventID)
  index only offers the rule those events. EventID 0 is kept in the set: the engine files an
  ``EventID`` rendered as an object (``{"Qualifiers": ..., "Value": ...}``) under 0 (gene's
  reading), and the condition still tests ``EventID.Value`` for those.
* **Keyword merging.** An ``Or`` of keyword searches over the same scope becomes one RE2
  alternation, so the event's strings are walked once instead of once per keyword.
"""

from __future__ import annotations

from vigil.engine.ir import And, KeywordMatch, Node, Not, Or, RegexMatch, StrMatch
from vigil.engine.sigma.fields import SYSTEM_FIELDS
from vigil.engine.sigma.logsources import EventFilter
from vigil.engine.sigma.values import escape_regex

__all__ = ["hoist_event_ids", "merge_keywords", "required_event_ids"]

_EVENT_ID_PATHS = frozenset(SYSTEM_FIELDS["EventID"])


def required_event_ids(node: Node) -> frozenset[int] | None:
    """EventIDs one of which every event matching ``node`` has, or None when unconstrained."""
    match node:
        case StrMatch(field=f, op="eq", value=v) if f in _EVENT_ID_PATHS and v.isdigit():
            return frozenset({int(v)})
        case Or(children=children):
            sets = [required_event_ids(c) for c in children]
            if not sets or any(s is None for s in sets):
                return None
            return frozenset().union(*[s for s in sets if s is not None])
        case And(children=children):
            constrained = [s for s in (required_event_ids(c) for c in children) if s is not None]
            if not constrained:
                return None
            return frozenset.intersection(*constrained)
    return None


def hoist_event_ids(condition: Node, events: EventFilter) -> EventFilter:
    """``events`` with the condition's required EventIDs on channels that accept any EventID."""
    if not events or all(ids for _, ids in events):
        return events
    required = required_event_ids(condition)
    if not required:
        return events
    ids = tuple(sorted(required | {0}))
    return tuple((channel, existing or ids) for channel, existing in events)


def _alternative(kw: KeywordMatch) -> str:
    if kw.op == "regex":
        body = kw.value
    else:
        text = escape_regex(kw.value)
        body = {"eq": f"^{text}$", "contains": text, "startswith": f"^{text}", "endswith": f"{text}$"}[kw.op]
    return f"(?:{'(?i)' if kw.ignore_case else ''}{body})"


def merge_keywords(node: Node) -> Node:
    """Merge the keyword searches of each ``Or`` that share a scope into one regex search."""
    match node:
        case Not(child=child):
            return Not(merge_keywords(child))
        case And(children=children):
            return And(tuple(merge_keywords(c) for c in children))
        case Or(children=children):
            merged: list[Node] = []
            groups: dict[tuple[str, ...], list[KeywordMatch]] = {}
            for child in (merge_keywords(c) for c in children):
                if isinstance(child, KeywordMatch):
                    if child.scope not in groups:
                        groups[child.scope] = []
                        merged.append(child)  # placeholder, replaced below
                    groups[child.scope].append(child)
                else:
                    merged.append(child)
            out: list[Node] = []
            for child in merged:
                if isinstance(child, KeywordMatch) and child.scope in groups:
                    group = groups.pop(child.scope)
                    if len(group) == 1:
                        out.append(group[0])
                    else:
                        pattern = "|".join(_alternative(k) for k in group)
                        out.append(KeywordMatch("regex", pattern, ignore_case=False, scope=child.scope))
                elif not isinstance(child, KeywordMatch):
                    out.append(child)
            return out[0] if len(out) == 1 else Or(tuple(out))
    return node


def _contains_regex(field: tuple[str, ...], ignore_case: bool, values: list[str]) -> RegexMatch:
    body = "|".join(escape_regex(v) for v in values)
    return RegexMatch(field, f"(?{'i' if ignore_case else ''}s:{body})")


def merge_string_tests(node: Node) -> Node:
    """Turn ``contains`` tests into RE2 searches, one alternation per field of each ``Or``.

    The engine searches all the regexes of a field in one pass (an RE2 set, with a per-value
    cache), so the substring tests of every rule on ``CommandLine`` cost one pass over it instead
    of one per value and rule. Equality and prefix/suffix tests stay string tests: they do not scan
    the field. Case-insensitive tests then use RE2's case folding instead of ``str.lower``; the two
    agree on ASCII.
    """
    match node:
        case StrMatch(op="contains"):
            return _contains_regex(node.field, node.ignore_case, [node.value])
        case Not(child=child):
            return Not(merge_string_tests(child))
        case And(children=children):
            return And(tuple(merge_string_tests(c) for c in children))
        case Or(children=children):
            groups: dict[tuple[tuple[str, ...], bool], list[str]] = {}
            for kid in children:
                if isinstance(kid, StrMatch) and kid.op == "contains":
                    groups.setdefault((kid.field, kid.ignore_case), []).append(kid.value)
            out: list[Node] = []
            for kid in children:
                if not (isinstance(kid, StrMatch) and kid.op == "contains"):
                    out.append(merge_string_tests(kid))
                    continue
                key = (kid.field, kid.ignore_case)
                values = groups.pop(key, None)
                if values is not None:  # first test of its group: the whole group goes here
                    out.append(_contains_regex(kid.field, kid.ignore_case, values))
            return out[0] if len(out) == 1 else Or(tuple(out))
    return node
