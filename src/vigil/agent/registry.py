"""The agent's extension points, declared in one place: sources, hooks, actions, outputs.

An :class:`Extension` names what it is, how to build it from the agent config (``factory``) and what
it needs (``requirements(config)``: every unmet need as a sentence, no side effects; `vigil agent
doctor` prints them). Built-ins are registered by :func:`register_builtins`, exactly as a third-party
plug-in registers its own: a distribution declares an entry point in the group ``vigil.agent.plugins``
whose object is a callable taking the :class:`Registry`::

    [project.entry-points."vigil.agent.plugins"]
    quarantine = "my_edr_plugin:register"

    def register(registry):
        registry.add("action", "quarantine", factory=make_quarantine, help="move the image away")

Kinds and what their factory returns:

``source``
    ``emits="events"``: an object with ``name``, ``requirements()``, ``start(sink)``, ``stop()``,
    ``stats()`` that hands complete events to the pipeline (e.g. ``replay``).
    ``emits="records"``: a kernel source (:class:`vigil.agent.sources.base.EventSource`) whose raw
    records the sensor turns into events; the built-in kernel sources come from the sensor's own table.
``hook``
    a callable ``event -> event | None`` run by the pipeline before detection (None drops the event).
``action``
    a callable the action runner invokes; built-in actions are implemented by the runner itself
    (factory None), the registry only declares their names and needs.
``output``
    an :class:`vigil.agent.outputs.Output`.

A plug-in that fails to load is reported (``Registry.errors``) and the agent runs without it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from vigil.agent.config import ACTION_NAMES, AgentConfig
from vigil.agent.sources.base import has_capability

__all__ = ["ENTRY_POINT_GROUP", "KINDS", "Extension", "Registry", "default_registry", "register_builtins"]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "vigil.agent.plugins"
KINDS = ("source", "hook", "action", "output")

Requirements = Callable[[AgentConfig], list[str]]


def _no_requirements(config: AgentConfig) -> list[str]:
    return []


@dataclass(frozen=True)
class Extension:
    kind: str
    name: str
    factory: Callable[[AgentConfig], Any] | None
    help: str = ""
    requirements: Requirements = _no_requirements
    emits: str = ""  # sources only: "events" or "records"
    plugin: str = "builtin"
    live: bool = True  # sources only: events describe live processes of this host (actions may run)


@dataclass
class Registry:
    extensions: dict[tuple[str, str], Extension] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _plugin: str = "builtin"

    def add(
        self,
        kind: str,
        name: str,
        factory: Callable[[AgentConfig], Any] | None = None,
        *,
        help: str = "",
        requirements: Requirements | None = None,
        emits: str = "",
        live: bool = True,
    ) -> Extension:
        if kind not in KINDS:
            raise ValueError(f"unknown extension kind {kind!r}; expected one of {', '.join(KINDS)}")
        if (kind, name) in self.extensions:
            other = self.extensions[(kind, name)].plugin
            raise ValueError(f"{kind} {name!r} is already registered by {other}")
        if kind == "source" and emits not in ("events", "records"):
            raise ValueError(f"source {name!r}: emits must be 'events' or 'records', got {emits!r}")
        ext = Extension(
            kind, name, factory, help, requirements or _no_requirements, emits, self._plugin, live
        )
        self.extensions[(kind, name)] = ext
        return ext

    def get(self, kind: str, name: str) -> Extension:
        try:
            return self.extensions[(kind, name)]
        except KeyError:
            known = ", ".join(self.names(kind)) or "none"
            raise KeyError(f"no {kind} named {name!r} (known: {known})") from None

    def names(self, kind: str) -> list[str]:
        return [n for k, n in self.extensions if k == kind]

    def of(self, kind: str) -> list[Extension]:
        return [e for (k, _), e in self.extensions.items() if k == kind]

    def load_plugins(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Run every ``register(registry)`` of the entry-point group; failures are recorded, not fatal."""
        for ep in entry_points(group=group):
            self._plugin = f"plugin {ep.name} ({ep.value})"
            try:
                ep.load()(self)
            except Exception as e:
                message = f"plug-in {ep.name} ({ep.value}) failed to load: {type(e).__name__}: {e}"
                self.errors.append(message)
                logger.error("%s", message)
            finally:
                self._plugin = "builtin"


# -- built-ins -------------------------------------------------------------------------------------


def _replay_factory(config: AgentConfig) -> Any:
    from vigil.agent.replay import ReplaySource

    return ReplaySource(config.sensors.replay) if config.sensors.replay else None


def _replay_requirements(config: AgentConfig) -> list[str]:
    if not config.sensors.replay:
        return ["sensors.replay names no file"]
    from vigil.agent.replay import ReplaySource

    return ReplaySource(config.sensors.replay).requirements()


def _jsonl_factory(config: AgentConfig) -> Any:
    from vigil.agent.outputs import JsonlOutput

    o = config.output
    return JsonlOutput(
        o.dir, rotate_mb=o.rotate_mb, rotate_interval=o.rotate_interval, keep=o.keep, compress=o.compress
    )


def _jsonl_requirements(config: AgentConfig) -> list[str]:
    return _writable(config.output.dir, "output.dir")


def _manager_factory(config: AgentConfig) -> Any:
    from vigil.agent.link.output import manager_output_factory

    return manager_output_factory(config)


def _manager_requirements(config: AgentConfig) -> list[str]:
    from vigil.agent.link.output import manager_output_requirements

    return manager_output_requirements(config)


def _writable(path: str, key: str) -> list[str]:
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.access(probe, os.W_OK | os.X_OK):
        return [f"{key} {path} is not writable by uid {os.geteuid()} ({probe} refuses)"]
    return []


_CAPS = {"CAP_DAC_READ_SEARCH": 2, "CAP_KILL": 5, "CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21}


def _needs_caps(*caps: str) -> Requirements:
    def requirements(config: AgentConfig) -> list[str]:
        missing = [c for c in caps if not has_capability(_CAPS[c])]
        return [f"needs {', '.join(missing)} (run as root)"] if missing else []

    return requirements


def _action_requirements(name: str) -> Requirements:
    caps: dict[str, tuple[str, ...]] = {
        "kill": ("CAP_KILL",),
        "blacklist": ("CAP_SYS_ADMIN",),
        "memdump": ("CAP_SYS_PTRACE",),
        "filedump": ("CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"),
        "report": ("CAP_SYS_PTRACE",),
        "brief": ("CAP_SYS_PTRACE",),
    }
    base = _needs_caps(*caps.get(name, ()))

    def requirements(config: AgentConfig) -> list[str]:
        unmet = base(config)
        if not config.endpoint:
            unmet.append("endpoint = false: actions are off")
        if name in ("report", "brief") and not config.reporting.enable:
            unmet.append("reporting.enable = false")
        if name == "kill" and not hasattr(os, "pidfd_open"):
            unmet.append("os.pidfd_open is missing (Linux 5.3 and Python 3.9 or later needed)")
        if name == "blacklist" and not os.path.exists("/proc/sys/fs/fanotify"):
            unmet.append("the kernel has no fanotify (/proc/sys/fs/fanotify is missing)")
        if name in ("memdump", "filedump", "report", "brief"):
            unmet.extend(_writable(config.dump.dir, "dump.dir"))
        return unmet

    return requirements


_ACTION_HELP = {
    "kill": "kill the process (pidfd; never the agent or its children)",
    "blacklist": "deny later executions of the image by sha256 (fanotify), persisted",
    "memdump": "write an ELF core of the process; it keeps running",
    "filedump": "copy the image, parent image and files named in the command line",
    "report": "full incident-response report (processes, modules, network, commands)",
    "brief": "short report without commands",
}


def _kernel_source_entries(registry: Registry) -> None:
    """The sensor's kernel sources, from its own table (vigil.agent.sources.registry)."""
    try:
        from vigil.agent.sources import registry as sources_registry
    except ImportError:
        registry.add(
            "source",
            "kernel",
            None,
            help="kernel sensor",
            requirements=lambda c: ["the kernel sensor (vigil.agent.sensor) is not part of this build"],
            emits="records",
        )
        return
    for name in sources_registry.SOURCES:
        registry.add(
            "source",
            name,
            None,
            help=f"kernel source ({sources_registry.SOURCES[name]})",
            requirements=_kernel_requirements(name),
            emits="records",
        )


def _kernel_requirements(name: str) -> Requirements:
    def requirements(config: AgentConfig) -> list[str]:
        from vigil.agent.sources.registry import create_source

        options: dict[str, Any] = {"paths": list(config.sensors.watch_paths)} if name == "files" else {}
        try:
            source = create_source(name, options)
        except ImportError as e:
            return [f"not importable: {e}"]
        except (TypeError, ValueError) as e:
            return [f"cannot be configured: {e}"]
        return list(source.requirements())

    return requirements


def register_builtins(registry: Registry) -> None:
    """Register vigil's own extensions (the same call a plug-in's entry point makes)."""
    registry.add(
        "source",
        "replay",
        _replay_factory,
        help="replay a JSON-lines file of events (sensors.replay)",
        requirements=_replay_requirements,
        emits="events",
        live=False,
    )
    _kernel_source_entries(registry)
    for name in ACTION_NAMES:
        registry.add("action", name, None, help=_ACTION_HELP[name], requirements=_action_requirements(name))
    registry.add(
        "output",
        "jsonl",
        _jsonl_factory,
        help="standalone alerts.jsonl and events.jsonl in output.dir, rotated",
        requirements=_jsonl_requirements,
    )
    registry.add(
        "output",
        "manager",
        _manager_factory,
        help="durable spool forwarded to the manager (manager.url set)",
        requirements=_manager_requirements,
    )


def default_registry(*, plugins: bool = True) -> Registry:
    """Built-ins, then every installed plug-in."""
    registry = Registry()
    register_builtins(registry)
    if plugins:
        registry.load_plugins()
    return registry
