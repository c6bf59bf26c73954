"""Errors raised by the response actions.

::

    ActionError                  base of everything below; carries ``action`` and ``target``
    ├── ActionRefused            a guard said no (pid 1, the agent itself, its children, a kernel thread)
    ├── ActionUnavailable        the kernel or the machine lacks what the action needs (fanotify, nft)
    ├── TargetGone               the process or file disappeared before the action could run
    └── InvalidInput             bad input from config or caller (an address, a hash, a path)

Foreign errors (``OSError``, ``subprocess.CalledProcessError``) are translated at the boundary of
each module into one of these, so callers branch on vigil's types only.
"""

from __future__ import annotations


class ActionError(Exception):
    """Base class: ``action`` names the action, ``target`` what it acted on (pid, path, address)."""

    def __init__(self, message: str, *, action: str = "", target: object = None) -> None:
        super().__init__(message)
        self.action = action
        self.target = target


class ActionRefused(ActionError):
    """A safety guard refused the action."""


class ActionUnavailable(ActionError):
    """The action cannot run on this machine; ``reason`` says why."""


class TargetGone(ActionError):
    """The target process or file no longer exists."""


class InvalidInput(ActionError):
    """Input failed validation; the message names the value and where it came from."""
