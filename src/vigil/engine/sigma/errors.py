"""Errors of the Sigma front end.

::

    SigmaFrontEndError            a Sigma rule could not be turned into vigil IR
    ├── SigmaParseError           the YAML or the rule is malformed (pySigma's errors, translated)
    ├── UnsupportedLogSource      vigil produces no event the rule's log source describes
    └── UnsupportedConstruct      the rule uses a construct vigil's IR cannot express

Every error carries the rule's ``path``, ``rule_id`` and ``title`` when known, so a report can
name the rule without parsing the message.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Rejection",
    "SigmaFrontEndError",
    "SigmaParseError",
    "UnsupportedConstruct",
    "UnsupportedLogSource",
]


class SigmaFrontEndError(Exception):
    """Base class: one Sigma rule that does not compile, with where it came from."""

    kind = "error"

    def __init__(
        self,
        reason: str,
        *,
        path: str | None = None,
        rule_id: str | None = None,
        title: str | None = None,
    ) -> None:
        self.reason = reason
        self.path = path
        self.rule_id = rule_id
        self.title = title
        super().__init__(reason)

    def located(self, *, path: str | None, rule_id: str | None, title: str | None) -> SigmaFrontEndError:
        """Fill in the location fields that are still unknown (returns ``self``)."""
        self.path = self.path or path
        self.rule_id = self.rule_id or rule_id
        self.title = self.title or title
        return self

    def __str__(self) -> str:
        where = ": ".join(x for x in (self.path, self.title and repr(self.title)) if x)
        return f"{where}: {self.reason}" if where else self.reason


class SigmaParseError(SigmaFrontEndError):
    kind = "parse"


class UnsupportedLogSource(SigmaFrontEndError):
    kind = "logsource"


class UnsupportedConstruct(SigmaFrontEndError):
    kind = "construct"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A rule (or a whole file) that did not compile, and why."""

    path: str
    line: int
    rule_id: str | None
    title: str | None
    kind: str
    reason: str
    #: the rejected rule is a correlation rule.
    correlation: bool = False

    def __str__(self) -> str:
        rule = f" rule {self.title!r}" if self.title else ""
        rid = f" ({self.rule_id})" if self.rule_id else ""
        return f"{self.path}:{self.line}:{rule}{rid}: [{self.kind}] {self.reason}"
