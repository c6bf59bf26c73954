"""The agent daemon: ``startup()`` -> tick loop -> ``shutdown()``.

Startup prepares the data directories, builds the engine (containers, then rules), the outputs, the
action runner and the pipeline, then starts the sources: each one that cannot run is reported with
its reasons and the agent runs on with the others. Shutdown stops intake first (sources), lets the
pipeline drain within ``drain_timeout``, then stops actions and outputs. The first SIGTERM or SIGINT
asks for that graceful stop; a second one exits at once (status 128 + signal). Under systemd the
agent reports READY/STOPPING through ``NOTIFY_SOCKET`` (``Type=notify``).
"""

from __future__ import annotations

import functools
import logging
import logging.handlers
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from vigil.agent.config import AgentConfig, ConfigError
from vigil.agent.detection import Detector, build_engine, freeze_heap
from vigil.agent.outputs import Output
from vigil.agent.pipeline import Pipeline, SelfFilter
from vigil.agent.registry import Registry, default_registry
from vigil.agent.response import Response

__all__ = ["Agent", "AgentError", "configure_logging", "sd_notify"]

logger = logging.getLogger(__name__)


class AgentError(Exception):
    """The agent cannot start: ``what`` names the part (rules, data_dir, sources ...)."""

    def __init__(self, what: str, message: str) -> None:
        self.what = what
        super().__init__(f"{what}: {message}")


def sd_notify(state: str) -> bool:
    """Tell systemd about our state (``READY=1``, ``STOPPING=1``); False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(state.encode())
    except OSError as e:
        logger.warning("cannot notify systemd at %s: %s", address, e)
        return False
    return True


def configure_logging(config: AgentConfig, *, level: int | None = None) -> None:
    """Agent log level and, when ``log_file`` is set, a file that logrotate may move away."""
    root = logging.getLogger()
    root.setLevel(level if level is not None else getattr(logging, config.log_level.upper()))
    if config.log_file:
        os.makedirs(os.path.dirname(config.log_file) or ".", mode=0o750, exist_ok=True)
        handler = logging.handlers.WatchedFileHandler(config.log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        registry: Registry | None = None,
        engine: Any = None,
        outputs: Iterable[Output] | None = None,
        services: Iterable[Any] = (),
        reload: Callable[[], AgentConfig] | None = None,
    ) -> None:
        self.config = config
        self.registry = registry if registry is not None else default_registry()
        self._engine = engine
        self._outputs = list(outputs) if outputs is not None else None
        self.services = list(services)  # objects with start()/stop(), e.g. the manager link
        self._reload = reload  # SIGHUP: load the config again (file, environment, command line)
        self._hup = False
        self.pipeline: Pipeline | None = None
        self.sensor: Any = None
        self.runner: Any = None
        self.response: Response | None = None
        self.event_sources: list[Any] = []
        self.status: dict[str, str | None] = {}
        self._stop = threading.Event()
        self._pending: AgentConfig | None = None
        self._exit_code = 0
        self._signals = 0
        self._started = 0.0

    # -- lifecycle -------------------------------------------------------------------------------------
    def startup(self) -> None:
        c = self.config
        self._started = time.monotonic()
        self.pipeline = self.sensor = self.runner = self.response = None  # from a previous run
        self.event_sources = []
        self.status = {}
        self._check_sources()
        hooks = []
        for name in c.pipeline.hooks:
            try:
                ext = self.registry.get("hook", name)
            except KeyError as e:
                raise ConfigError("pipeline.hooks", str(e.args[0]), value=name) from None
            if ext.factory is not None:
                hooks.append(ext.factory(c))
        self._prepare_dirs()
        engine = self._build_engine()
        detector = Detector.from_config(engine, c)
        outputs = self._outputs if self._outputs is not None else self._build_outputs()
        if c.endpoint:
            # Blocked execs and canary hits come back as events; the pipeline accepts them once started.
            self.response = Response(
                c,
                lambda event: self.pipeline.submit(event) if self.pipeline else None,
                report_context=self._report_context,
            )
            rule_actions = {a for rule in getattr(engine, "rules", ()) for a in getattr(rule, "actions", ())}
            self.response.start(rule_actions)
            self.runner = self.response.runner
        self.pipeline = Pipeline(
            detector,
            outputs,
            actions=self.runner,
            hooks=hooks,
            is_self=SelfFilter(),
            queue_size=c.pipeline.queue_size,
            batch_size=c.pipeline.batch_size,
            stats_interval=c.stats_interval,
            inline=c.pipeline.inline,
        )
        self.pipeline.extra_stats = self._source_stats
        freeze_heap()  # before the pipeline runs: full collections would delay alerts
        self.pipeline.start()
        for service in self.services:
            service.start()
        self._start_sources()
        running = [n for n, why in self.status.items() if why is None]
        if not running:
            logger.error("no event source is running: the agent detects nothing (see `vigil agent doctor`)")
        logger.info(
            "agent running (pid %d, %s mode, threshold %d, %d rules): sources %s",
            os.getpid(),
            "standalone" if c.standalone else "managed",
            c.criticality_threshold,
            len(getattr(engine, "rules", ())),
            ", ".join(running) or "none",
        )
        sd_notify("READY=1\nSTATUS=running")

    def run(self, *, install_signals: bool = True) -> int:
        """Start, tick until a stop is asked, shut down; the process exit status."""
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
            if self._reload is not None:
                signal.signal(signal.SIGHUP, self._on_hup)
        try:
            self.startup()
        except (AgentError, ConfigError) as e:
            logger.error("cannot start: %s", e)
            self.shutdown()
            return 2
        except Exception:
            logger.exception("cannot start: unexpected error")
            self.shutdown()
            return 1
        while not self._stop.wait(1.0):
            if self._hup:
                self._hup = False
                self._reload_config()
            if self._pending is not None:
                self._restart()
            self.tick()
        self.shutdown()
        return self._exit_code

    def request_stop(self) -> None:
        self._stop.set()

    def request_restart(self, config: AgentConfig) -> None:
        """Restart in-process with ``config`` at the next tick (WHIDS: a config from the manager).

        Everything stops and starts again with the new config; when it is refused (rules that do
        not load, a bad source name) the agent starts again with the previous one and says why.
        """
        self._pending = config

    def _restart(self) -> None:
        new, self._pending = self._pending, None
        assert new is not None
        old = self.config
        logger.info("restarting with a new configuration")
        sd_notify("RELOADING=1")
        self._stop_parts()
        self.config = new
        try:
            self.startup()
            return
        except (AgentError, ConfigError) as e:
            logger.error("new configuration refused, the previous one stays: %s", e)
        except Exception:
            logger.exception("new configuration failed, the previous one stays")
        self._stop_parts()
        self.config = old
        try:
            self.startup()
        except Exception:  # the previous config no longer starts either (e.g. rules changed on disk)
            logger.exception("the previous configuration does not start any more: stopping")
            self._exit_code = 2
            self._stop.set()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._hup = True  # the tick loop reloads within a second, outside the signal handler

    def _reload_config(self) -> None:
        assert self._reload is not None
        try:
            config = self._reload()
        except ConfigError as e:
            logger.error("SIGHUP: configuration refused, nothing changed: %s", e)
            return
        logger.info("SIGHUP: configuration reloaded")
        self.request_restart(config)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            logger.info(
                "%s: stopping (drain up to %.1f s; send it again to force)", name, self.config.drain_timeout
            )
            self._stop.set()
        else:
            logger.warning("%s again: exiting now without draining", name)
            logging.shutdown()
            os._exit(128 + signum)

    def tick(self) -> None:
        """Once a second: report sources that stopped on their own."""
        if self.sensor is not None:
            for name, why in self.sensor.status().items():
                if self.status.get(name) is None and why is not None:
                    logger.warning("source %s stopped: %s", name, why)
                self.status[name] = why

    def shutdown(self) -> int:
        sd_notify("STOPPING=1")
        drained = self._stop_parts()
        logger.info(
            "agent stopped after %.1f s (%s)",
            time.monotonic() - self._started if self._started else 0.0,
            "drained" if drained else "drain deadline passed, see final stats",
        )
        return 0

    def _stop_parts(self) -> bool:
        """Stop intake (sources), drain the pipeline, then stop response, outputs and services."""
        deadline = time.monotonic() + self.config.drain_timeout
        for src in self.event_sources:
            self._quietly(src.stop, f"source {src.name}")
        if self.sensor is not None:
            self._quietly(self.sensor.stop, "sensor")
        drained = True
        if self.pipeline is not None:
            drained = self.pipeline.stop(timeout=max(0.0, deadline - time.monotonic()))
        if self.response is not None:
            self._quietly(self.response.stop, "response")
        for service in reversed(self.services):
            self._quietly(service.stop, f"service {type(service).__name__}")
        return drained

    @staticmethod
    def _quietly(fn: Any, what: str) -> None:
        try:
            fn()
        except Exception:
            logger.exception("stopping %s failed", what)

    # -- parts -----------------------------------------------------------------------------------------
    def _prepare_dirs(self) -> None:
        c = self.config
        dirs = [c.data_dir, c.dump.dir, c.rules.dir, c.rules.containers_dir]
        dirs.append(c.output.dir if c.standalone else c.spool.dir)
        for d in dirs:
            try:
                os.makedirs(d, mode=0o750, exist_ok=True)
            except OSError as e:
                raise AgentError("data_dir", f"cannot create {d}: {e.strerror}") from None

    def _build_engine(self) -> Any:
        if self._engine is not None:
            return self._engine
        try:
            return build_engine(self.config)
        except ImportError as e:
            raise AgentError("rules", f"the rule engine is not available: {e}") from None
        except Exception as e:  # the engine's own errors name file, line and rule
            raise AgentError("rules", f"cannot load {self.config.rules.dir}: {e}") from None

    def _build_outputs(self) -> list[Output]:
        c = self.config
        name = "jsonl" if c.standalone else "manager"
        try:
            ext = self.registry.get("output", name)
        except KeyError:
            if c.standalone:
                raise
            logger.warning("manager.url is set but no manager output is registered: writing alerts locally")
            ext = self.registry.get("output", "jsonl")
        assert ext.factory is not None
        return [ext.factory(c)]

    def _check_sources(self) -> None:
        known = set(self.registry.names("source"))
        for name in self.config.sensors.sources:
            if name not in known:
                raise ConfigError(
                    "sensors.sources",
                    f"unknown source {name!r} (known: {', '.join(sorted(known))})",
                    value=name,
                )

    def _start_sources(self) -> None:
        c = self.config
        assert self.pipeline is not None
        wanted = list(c.sensors.sources)
        record_sources = [e for e in self.registry.of("source") if e.emits == "records"]
        event_sources = [e for e in self.registry.of("source") if e.emits == "events"]
        for ext in event_sources:
            enabled = (ext.name == "replay" and bool(c.sensors.replay)) or ext.name in wanted
            if enabled:
                self._start_event_source(ext)
        if c.sensors.kernel:
            plugin_records = [e for e in record_sources if e.plugin != "builtin" and e.name in wanted]
            kernel_names = [
                n for n in wanted if any(e.name == n and e.plugin == "builtin" for e in record_sources)
            ]
            self._start_sensor(kernel_names, plugin_records)

    def _start_event_source(self, ext: Any) -> None:
        assert self.pipeline is not None
        unmet = ext.requirements(self.config)
        if unmet:
            self._unavailable(ext.name, "; ".join(unmet))
            return
        # Events that do not come from this host's kernel right now are never acted on.
        sink = functools.partial(self.pipeline.submit, act=ext.live)
        try:
            src = ext.factory(self.config)
            src.start(sink)
        except Exception as e:
            self._unavailable(ext.name, f"could not start: {e}")
            return
        self.event_sources.append(src)
        self.status[ext.name] = None
        logger.info("source %s running", ext.name)

    def _start_sensor(self, names: list[str], plugins: list[Any]) -> None:
        assert self.pipeline is not None
        c = self.config
        try:
            from vigil.agent.sensor import Sensor  # type: ignore[import-not-found,unused-ignore]
        except ImportError as e:
            self._unavailable("kernel", f"the kernel sensor is not part of this build ({e})")
            return
        extra = []
        for ext in plugins:
            try:
                extra.append(ext.factory(c))
            except Exception as e:
                self._unavailable(ext.name, f"could not be created: {e}")
        self.sensor = Sensor(
            sources=names or None,
            watch_paths=list(c.sensors.watch_paths),
            exclude_pids={os.getpid()},
            hostname=c.hostname or None,
            queue_size=c.pipeline.queue_size,
            extra_sources=extra,
        )
        try:
            self.sensor.start(self.pipeline.submit)
        except Exception as e:
            self._unavailable("kernel", f"could not start: {e}")
            self.sensor = None
            return
        self.pipeline.tracker = getattr(self.sensor, "tracker", None)
        self.status.update(self.sensor.status())  # the sensor logged each unavailable source

    def _unavailable(self, name: str, why: str) -> None:
        self.status[name] = why
        logger.warning("source %s is unavailable: %s", name, why)

    def _report_context(self) -> dict[str, Any]:
        """What IR reports take from the sensor: the tracked processes."""
        tracker = getattr(self.sensor, "tracker", None)
        return {"processes": tracker.snapshot()} if tracker is not None else {}

    def _source_stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {src.name: src.stats() for src in self.event_sources}
        if self.sensor is not None:
            out["sensor"] = self.sensor.stats()
        return out
