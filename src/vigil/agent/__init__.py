"""vigil.agent: the Linux endpoint agent.

Public API of the daemon half: ``Agent`` (startup, run, shutdown), its typed config
(``AgentConfig``, ``load_config``, ``ConfigError``), the ``Pipeline`` and ``Detector``, the ``Output``
protocol with the standalone ``JsonlOutput``, the ``ReplaySource`` and the extension ``Registry``.
Sources, tracker and enrichment live in ``vigil.agent.sources`` / ``sensor`` / ``tracker``; response
actions in ``vigil.agent.actions``; the manager link in ``vigil.agent.link``.
"""

from vigil.agent.config import AgentConfig, ConfigError
from vigil.agent.config_loader import load_config
from vigil.agent.daemon import Agent, AgentError
from vigil.agent.detection import Detector, Verdict
from vigil.agent.outputs import JsonlOutput, Output
from vigil.agent.pipeline import Pipeline
from vigil.agent.registry import Registry, default_registry
from vigil.agent.replay import ReplaySource

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentError",
    "ConfigError",
    "Detector",
    "JsonlOutput",
    "Output",
    "Pipeline",
    "Registry",
    "ReplaySource",
    "Verdict",
    "default_registry",
    "load_config",
]
