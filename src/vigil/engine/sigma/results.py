"""What the Sigma front end produces: compiled rules, one file's result, a rule set's result.

Plain records without pySigma, so a load served by the rule cache never imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vigil.engine.ir import RuleIR
from vigil.engine.sigma.errors import Rejection

if TYPE_CHECKING:
    from vigil.engine.sigma.correlation import CorrelationRuleIR
    from vigil.engine.sigma.logsources import Producer

__all__ = ["CompiledRule", "FileResult", "SigmaRuleSet"]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A Sigma rule compiled to IR, and who produces the events it applies to."""

    ir: RuleIR
    producer: Producer


@dataclass
class FileResult:
    """One Sigma file compiled alone: its rules and rejections, in order.

    ``file_rejections`` are the whole-file problems (unreadable, invalid YAML, not Sigma) and
    pySigma's collection errors; ``rule_rejections`` the rules that did not compile. A set of files
    reports all file rejections first, then the rule rejections (as when they are compiled at once).
    """

    rules: list[CompiledRule]
    file_rejections: list[Rejection]
    rule_rejections: list[Rejection]


@dataclass
class SigmaRuleSet:
    """What a set of Sigma files compiled to."""

    rules: list[CompiledRule] = field(default_factory=list)
    correlations: list[CorrelationRuleIR] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.rules) + len(self.correlations) + len(self.rejections)

    def extend(self, other: SigmaRuleSet) -> None:
        self.rules.extend(other.rules)
        self.correlations.extend(other.correlations)
        self.rejections.extend(other.rejections)
