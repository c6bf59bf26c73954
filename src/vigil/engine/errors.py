"""Rule loading errors: each one names the file, line, rule and statement at fault."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RuleError", "RuleLoadError"]


@dataclass(frozen=True, slots=True)
class RuleError:
    """One problem of a rule set. ``line`` is the 1-based line where the rule object starts."""

    file: str
    line: int
    rule: str | None
    statement: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where]
        if self.rule is not None:
            parts.append(f"rule {self.rule!r}")
        if self.statement is not None:
            parts.append(f"statement {self.statement!r}")
        return ": ".join(parts) + f": {self.message}"


class RuleLoadError(Exception):
    """Loading stopped: ``errors`` lists every RuleError found."""

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = errors
        first = str(errors[0]) if errors else "no detail"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more)
