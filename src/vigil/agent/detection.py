"""Detection as WHIDS does it (``whids-reference.md`` §4.3), over vigil's engine.

For each event the engine gives a match result: rule names (signature), criticality (capped at 10),
actions (rule actions plus the default actions of the criticality band) and whether a *filter* rule
matched. The :class:`Detector` turns that into a :class:`Verdict`:

* a signature match sets ``Event.Detection`` (WHIDS form: Signature, Criticality, ATTACK, Actions);
* it is an **alert** when its criticality is at or above ``criticality_threshold``: reported and,
  when ``endpoint`` is on, its actions run;
* a filter match (no signature) is reported when ``en_filters`` is on, without a Detection;
* ``log_all`` reports every event.

One deliberate difference with WHIDS: WHIDS queues actions for any detection, even one below the
threshold that it does not forward; vigil acts only on alerts, so every action has an alert that
says why. Lower the threshold to act on lower criticalities.
"""

from __future__ import annotations

import gc
import gzip
import logging
import os
from dataclasses import dataclass
from typing import Any, Protocol

from vigil.agent.config import AgentConfig

__all__ = [
    "Detector",
    "EngineLike",
    "MatchLike",
    "Verdict",
    "build_engine",
    "correlation_engine",
    "freeze_heap",
    "load_containers",
]

logger = logging.getLogger(__name__)


class MatchLike(Protocol):
    signature: Any
    criticality: int
    filtered: bool

    def to_whids(self) -> dict[str, Any] | None: ...


class EngineLike(Protocol):
    def match(self, event: dict[str, Any]) -> MatchLike | None: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    report: bool  # hand the event to the outputs
    alert: bool  # a Detection at or above the threshold
    actions: tuple[str, ...]  # actions to run now (alerts on an endpoint only)


NOTHING = Verdict(report=False, alert=False, actions=())
LOGGED = Verdict(report=True, alert=False, actions=())


class Detector:
    """Apply the engine and the §4.3 rules to one event at a time (pipeline thread only)."""

    def __init__(
        self,
        engine: EngineLike,
        *,
        threshold: int = 5,
        en_filters: bool = True,
        log_all: bool = False,
        endpoint: bool = True,
        correlation: Any = None,
    ) -> None:
        self.engine = engine
        #: Sigma correlation rules (``vigil.engine.sigma.CorrelationEngine``) fed after each match.
        self.correlation = correlation
        self.threshold = threshold
        self.en_filters = en_filters
        self.log_all = log_all
        self.endpoint = endpoint

    @classmethod
    def from_config(cls, engine: EngineLike, config: AgentConfig) -> Detector:
        return cls(
            engine,
            threshold=config.criticality_threshold,
            en_filters=config.en_filters,
            log_all=config.log_all,
            endpoint=config.endpoint,
            correlation=correlation_engine(config.rules.dir),
        )

    def inspect(self, event: dict[str, Any]) -> Verdict:
        """Match ``event`` (adding ``Event.Detection`` when a rule fires) and say what to do with it."""
        result = self.engine.match(event)
        if result is None:
            return LOGGED if self.log_all else NOTHING
        detection = result.to_whids() if result.signature else None
        sigma_ids = getattr(result, "sigma_ids", None)
        if detection and sigma_ids and self.correlation is not None:
            detection = self._correlate(event, sigma_ids, detection)
        if detection:
            event.setdefault("Event", {})["Detection"] = detection
            crit = int(detection.get("Criticality", result.criticality))
            alert = crit >= self.threshold
        else:
            alert = False
        report = alert or (result.filtered and self.en_filters) or self.log_all
        actions: tuple[str, ...] = ()
        if alert and self.endpoint and detection:
            actions = tuple(detection.get("Actions") or ())
        return Verdict(report=report, alert=alert, actions=actions)

    def _correlate(
        self, event: dict[str, Any], sigma_ids: list[str], detection: dict[str, Any]
    ) -> dict[str, Any]:
        """Add the Sigma correlations this event completes to its Detection (criticality summed, capped)."""
        from vigil.engine.sigma import event_timestamp, hit_record

        ts = event_timestamp(event)
        if ts is None:
            return detection
        for hit in self.correlation.feed(event, sigma_ids, ts):
            record = hit_record(hit)
            detection = dict(detection)
            detection["Signature"] = [*detection.get("Signature", []), *record["Signature"]]
            detection["SigmaIDs"] = [*detection.get("SigmaIDs", []), *record["SigmaIDs"]]
            detection["Criticality"] = min(10, int(detection.get("Criticality", 0)) + record["Criticality"])
            detection.setdefault("Correlations", []).append(record["Correlation"])
        return detection


def correlation_engine(rules_dir: str) -> Any:
    """Sigma correlation rules of the rules directory (None without any or without the sigma extra)."""
    if not os.path.isdir(rules_dir):
        return None
    try:
        from vigil.engine.sigma import correlation_engine_for
    except ImportError:
        return None
    return correlation_engine_for([rules_dir])


def freeze_heap() -> None:
    """Keep the garbage collector off what the rules loaded: call once the engine is in place.

    The Sigma front end imports pySigma, whose module data make a full collection of the agent's
    heap take about 50 ms (5 ms without it); the pipeline thread waits for it, and the alert of the
    event being matched is late by as much. Frozen objects are never scanned again. Each call first
    unfreezes and collects once, so the cycles of an engine replaced since the last call are freed.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def load_containers(directory: str) -> dict[str, list[str]]:
    """``NAME.cont`` / ``NAME.cont.gz`` files (one value per line) -> {NAME: values}."""
    out: dict[str, list[str]] = {}
    if not os.path.isdir(directory):
        return out
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if entry.endswith(".cont.gz"):
            with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
                out[entry[: -len(".cont.gz")]] = [line.strip() for line in f if line.strip()]
        elif entry.endswith(".cont"):
            with open(path, encoding="utf-8", errors="replace") as f:
                out[entry[: -len(".cont")]] = [line.strip() for line in f if line.strip()]
    return out


def build_engine(config: AgentConfig) -> Any:
    """The engine with the config's default actions, IoC containers and rules directory, compiled."""
    from vigil.engine import Engine  # type: ignore[attr-defined,unused-ignore]

    engine = Engine(show_attack=True, show_actions=True, default_actions=config.default_actions())
    for name, values in load_containers(config.rules.containers_dir).items():
        engine.add_container(name, values)
        logger.info("container %s: %d values", name, len(values))
    rules_dir = config.rules.dir
    if os.path.isdir(rules_dir) and os.listdir(rules_dir):
        engine.load_path(rules_dir)
    else:
        logger.warning("no rules in %s: only the built-in rules detect anything", rules_dir)
    from vigil.agent.response import builtin_rules

    engine.load_text(builtin_rules(config), source="<vigil built-in rules>")
    # Generate the matcher now, not on the first event: with SigmaHQ's Linux rules that takes about
    # 100 ms, which the first alert would wait for (and the generated code is then in the heap
    # that ``freeze_heap`` freezes).
    engine.compile(lazy=False)
    return engine
