"""Enrichment hooks, registered in one place (`default_hooks`)."""

from vigil.agent.enrich.builtin import register_builtin
from vigil.agent.enrich.hooks import Hook, HookContext, HookRegistry


def default_hooks() -> HookRegistry:
    """The built-in hooks in WHIDS order; add third-party hooks with `registry.register(...)`."""
    reg = HookRegistry()
    register_builtin(reg)
    return reg


__all__ = ["Hook", "HookContext", "HookRegistry", "default_hooks"]
