"""The manager link as an agent service: wires the spool, forwarder, syncs, uploads and commands.

:class:`ManagerService` is one of the daemon's services (``start()`` after the pipeline, ``stop()``
after it drained). On start it finds the ``manager`` output among the pipeline's outputs, points a
:class:`~vigil.agent.forwarder.Forwarder` at its spool and runs a
:class:`~vigil.agent.link.session.ManagerLink` with:

* rules: the Gene set (``database.gen``) and the Sigma set (``manager-sigma.yml``, correlation
  rules included), each validated by compiling it with the engine; applied by rebuilding the engine
  (and the Sigma correlation engine) from the rules and containers directories and swapping them
  into the running detector (no sensor restart);
* IoCs: the ``edr_iocs`` container, applied the same way;
* config: the local config is pushed when the manager has none (without ``manager.key``); a
  different config from the manager is saved to ``data_dir/manager-config.toml`` and the agent
  restarts in-process with it (this host's ``[manager]`` section always stays local);
* artifacts of the dump directory, system info, and commands whose ``processes``, ``report``,
  ``contain`` and ``uncontain`` use the tracker, the report builder and nftables (the manager's
  addresses stay reachable while contained);
* a ``Vigil/Operational`` 110 agent-health event every ``stats_interval`` with the spool's eviction
  count and the forwarder's counters, so the manager sees what the agent could not keep.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from pathlib import Path
from typing import Any

import orjson
import tomli_w

from vigil.agent.commands.builtins import CommandContext
from vigil.agent.commands.executor import CommandExecutor
from vigil.agent.config import AgentConfig, ConfigError
from vigil.agent.forwarder import Forwarder
from vigil.agent.link.client import EndpointClient, ManagerAddress
from vigil.agent.link.output import ManagerOutput
from vigil.agent.link.session import LinkIntervals, ManagerLink
from vigil.agent.link.sync import ConfigSync, IocSync, RuleSync, sigma_rule_sync, write_atomically
from vigil.agent.link.uploader import ArtifactUploader
from vigil.agent.spool import serialize_event

logger = logging.getLogger(__name__)

__all__ = ["AGENT_HEALTH", "MANAGER_CONFIG_FILE", "ManagerService", "manager_allowed", "shareable_config"]

AGENT_HEALTH = 110
MANAGER_CONFIG_FILE = "manager-config.toml"
_MIB = 1024 * 1024


def shareable_config(config: AgentConfig) -> dict[str, Any]:
    """The config as the manager may store it: everything but this endpoint's secret key."""
    data = orjson.loads(orjson.dumps(dataclasses.asdict(config)))
    data["manager"].pop("key", None)
    return data  # type: ignore[no-any-return]


def manager_allowed(url: str) -> list[str]:
    """``ADDR:PORT`` entries for every address the manager's host name resolves to."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out = []
    for family, *_rest, sockaddr in infos:
        addr = str(sockaddr[0])
        entry = f"[{addr}]:{port}" if family == socket.AF_INET6 else f"{addr}:{port}"
        if entry not in out:
            out.append(entry)
    return out


class ManagerService:
    """Starts and stops the manager link with the agent (restart-safe: a new link per start)."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.link: ManagerLink | None = None
        self.sigma_sync: RuleSync | None = None
        self.output: ManagerOutput | None = None
        self._contained = False
        # The manager's config dict last applied and the AgentConfig built from it: while the agent
        # runs that config, it is what we compare with the manager's digest (no restart loop).
        self._applied: tuple[dict[str, Any], AgentConfig] | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        config: AgentConfig = self.agent.config
        if config.standalone:
            return
        pipeline = self.agent.pipeline
        outputs = getattr(pipeline, "outputs", []) if pipeline is not None else []
        output = next((o for o in outputs if isinstance(o, ManagerOutput)), None)
        if output is None:
            logger.error("managed mode but no manager output: nothing is forwarded")
            return
        m = config.manager
        address = ManagerAddress(
            url=m.url,
            uuid=m.uuid,
            key=m.key,
            fingerprint=m.fingerprint.replace(":", "").lower(),
            server_key=m.server_key,
            verify_tls=m.tls_verify,
            ca_file=m.ca_file or None,
        )
        client = EndpointClient(address, hostname=config.hostname or None, timeout=m.timeout)
        forwarder = Forwarder(output.spool, client)
        output.attached = True
        output.notify = forwarder.notify
        self.output = output
        context = CommandContext(
            processes=self._processes,
            report=self._report,
            contain=self._contain,
            uncontain=self._uncontain,
        )
        interval = config.rules.update_interval
        self.link = ManagerLink(
            client=client,
            forwarder=forwarder,
            executor=CommandExecutor(context),
            rule_sync=RuleSync(client, Path(config.rules.dir), validate=validate_rules, apply=self.reload),
            ioc_sync=IocSync(client, Path(config.rules.containers_dir), apply=self.reload),
            config_sync=ConfigSync(client, current=self._local_config, replace=self._replace_config),
            uploader=ArtifactUploader(client, Path(config.dump.dir), max_upload_bytes=m.max_upload_mb * _MIB),
            system_info=_system_info,
            intervals=LinkIntervals(rules=interval, uploads=min(60.0, interval)),
        )
        self.sigma_sync = sigma_rule_sync(
            client, Path(config.rules.dir), validate=validate_sigma_rules, apply=self.reload
        )
        self.link.add_task("sigma-rules", lambda: interval, self.sigma_sync.run_once)
        self.link.add_task("health", lambda: config.stats_interval, self.health)
        self.link.start()
        logger.info("manager link to %s started (endpoint %s)", m.url, m.uuid)

    def stop(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            link.stop(drain_deadline=min(5.0, self.agent.config.drain_timeout))
        if self.output is not None:
            self.output.notify = None
            self.output.spool.close()
            self.output = None

    # -- rules and IoCs --------------------------------------------------------------------------
    def reload(self) -> None:
        """Rebuild the engine (and the Sigma correlations) from disk and swap them into the detector.

        The correlation engine keeps its open windows when its rules did not change (an IoC or a
        Gene rule update must not reset a half-counted ``event_count``).
        """
        from vigil.agent.detection import build_engine, correlation_engine, freeze_heap

        pipeline = self.agent.pipeline
        if pipeline is None:
            return
        config: AgentConfig = self.agent.config
        try:
            engine = build_engine(config)
            correlation = correlation_engine(config.rules.dir)
        except Exception as exc:  # the engine's errors name file, line and rule
            logger.error("rules or IoCs from the manager do not load with the local ones, kept old: %s", exc)
            return
        detector = pipeline.detector
        old = detector.correlation
        if correlation is not None and old is not None and old.rules == correlation.rules:
            correlation = old
        detector.engine = engine
        detector.correlation = correlation
        freeze_heap()
        logger.info(
            "engine reloaded: %d rules, %d sigma correlation rules",
            len(getattr(engine, "rules", ())),
            len(correlation.rules) if correlation is not None else 0,
        )

    # -- config ----------------------------------------------------------------------------------
    def _local_config(self) -> dict[str, Any]:
        if self._applied is not None and self._applied[1] is self.agent.config:
            return self._applied[0]
        return shareable_config(self.agent.config)

    def _replace_config(self, data: dict[str, Any]) -> list[str]:
        from vigil.agent.config_loader import load_config

        current: AgentConfig = self.agent.config
        original = data
        data = dict(data)
        data["manager"] = dataclasses.asdict(current.manager)  # never taken from the manager
        path = Path(current.data_dir) / MANAGER_CONFIG_FILE
        try:
            text = tomli_w.dumps(_drop_none(data))
        except (TypeError, ValueError) as exc:
            return [f"cannot be written as TOML: {exc}"]
        tmp = path.with_name(f".{path.name}.check")
        try:
            write_atomically(tmp, text.encode())
            os.chmod(tmp, 0o600)
            new = load_config(tmp, env={})
        except ConfigError as exc:
            return [str(exc)]
        finally:
            tmp.unlink(missing_ok=True)
        write_atomically(path, text.encode())
        os.chmod(path, 0o600)
        logger.info("configuration from the manager saved to %s: restarting", path)
        self._applied = (original, new)
        self.agent.request_restart(new)
        return []

    # -- health ----------------------------------------------------------------------------------
    def health(self) -> None:
        from vigil.agent.actions.events import operational_event

        link, output = self.link, self.output
        if link is None or output is None:
            return
        status = link.status()
        fwd = status["forwarder"]
        event = operational_event(
            AGENT_HEALTH,
            {
                "SpoolEvents": status["spool"]["events"],
                "SpoolBytes": status["spool"]["bytes"],
                "SpoolEvicted": status["spool"]["evicted"],
                "Forwarded": fwd["sent"],
                "ForwardFailures": fwd["failures"],
                "TaskFailures": sum(t["failures"] for t in status["tasks"].values()),
            },
        )
        if self.agent.config.hostname:
            event["Event"]["System"]["Computer"] = self.agent.config.hostname
        output.spool.put((serialize_event(event),))  # straight to the spool: write() is the pipeline's
        link.forwarder.notify()
        if self._contained:
            from vigil.agent.containment import heartbeat

            heartbeat(self._heartbeat_path())

    # -- command context -------------------------------------------------------------------------
    def _tracker(self) -> Any:
        pipeline = self.agent.pipeline
        return getattr(pipeline, "tracker", None) if pipeline is not None else None

    def _processes(self) -> list[dict[str, Any]]:
        tracker = self._tracker()
        if tracker is None:
            raise RuntimeError("no process tracker (the kernel sensor is not running)")
        out = []
        for p in tracker.snapshot():
            out.append(
                {
                    "pid": p.pid,
                    "ppid": p.ppid,
                    "guid": p.guid,
                    "image": p.image,
                    "command-line": p.command_line,
                    "user": p.user,
                    "start-time": p.start_time,
                    "hashes": dict(p.hashes),
                    "threat-score": p.threat_score,
                    "signatures": dict(p.signatures),
                }
            )
        return out

    def _report(self) -> dict[str, Any]:
        from vigil.agent.actions.report import build_report

        tracker = self._tracker()
        return build_report(processes=tracker.snapshot() if tracker is not None else None)

    def _heartbeat_path(self) -> str:
        return os.path.join(self.agent.config.data_dir, "containment.heartbeat")

    def _contain(self) -> str:
        from vigil.agent.containment import contain, heartbeat

        allowed = manager_allowed(self.agent.config.manager.url)
        heartbeat(self._heartbeat_path())
        contain(allowed, deadman=self._heartbeat_path())
        self._contained = True
        return f"contained; the manager stays reachable at {', '.join(allowed)}"

    def _uncontain(self) -> str:
        from vigil.agent.containment import uncontain

        was = uncontain()
        self._contained = False
        return "uncontained" if was else "was not contained"


def validate_rules(body: bytes) -> list[str]:
    """Every error the engine finds in a rule set (empty: it compiles)."""
    from vigil.engine import Engine  # type: ignore[attr-defined,unused-ignore]

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [f"rules are not UTF-8: {exc}"]
    try:
        Engine().load_text(text, source="<manager rules>")
    except Exception as exc:
        errors = getattr(exc, "errors", None)
        return [str(e) for e in errors] if errors else [str(exc)]
    return []


def validate_sigma_rules(body: bytes) -> list[str]:
    """Every reason the manager's Sigma set cannot run here (empty: every rule compiles).

    Strict like the Gene set: a rule this agent cannot compile (an older front end, a log source it
    does not know) refuses the whole set, so the agent never runs a part of it silently.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [f"Sigma rules are not UTF-8: {exc}"]
    try:
        from vigil.engine.sigma import load_sigma_text
    except ImportError:
        return ["this agent has no Sigma front end (pip install 'vigil[sigma]')"]
    from vigil.engine.compiler import check_ir

    result = load_sigma_text(text, path="<manager sigma rules>")
    errors = [str(r) for r in result.rejections]
    names: set[str] = set()
    for rule in result.rules:
        problem = check_ir(rule.ir.condition)
        if problem is not None:
            errors.append(f"rule {rule.ir.name!r}: {problem}")
        if rule.ir.name in names:
            errors.append(f"rule {rule.ir.name!r}: title used twice")
        names.add(rule.ir.name)
    return errors


def _system_info() -> dict[str, Any]:
    from vigil.agent.sysinfo import system_info

    return system_info()


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value
