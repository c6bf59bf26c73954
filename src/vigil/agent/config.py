"""The agent's configuration: one frozen dataclass per section, defaults and help text in one place.

The sections mirror WHIDS' agent config (``whids-reference.md`` §4.1) adapted to Linux. Every field
is declared with :func:`setting`, which carries its default, its help text, how to parse it from a
string (environment, command line) and how to check it. Loading, merging (defaults < file <
environment < command line) and rendering (default TOML, the reference doc) live in
:mod:`vigil.agent.config_loader` and :mod:`vigil.agent.config_docs` and read only these declarations.
"""

from __future__ import annotations

import dataclasses
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACTION_NAMES",
    "BANDS",
    "ActionsConfig",
    "AgentConfig",
    "CanariesConfig",
    "CanaryGroup",
    "ConfigError",
    "DumpConfig",
    "ManagerConfig",
    "OutputConfig",
    "PipelineConfig",
    "ReportingConfig",
    "RulesConfig",
    "SensorsConfig",
    "SpoolConfig",
    "band_of",
    "setting",
]

#: Built-in response actions (plug-ins may add more through the registry).
ACTION_NAMES = ("kill", "blacklist", "memdump", "filedump", "report", "brief")

#: Criticality bands of WHIDS: name -> inclusive range of criticality.
BANDS: dict[str, range] = {
    "low": range(1, 5),
    "medium": range(5, 8),
    "high": range(8, 10),
    "critical": range(10, 11),
}

LOG_LEVELS = ("debug", "info", "warning", "error")

Check = Callable[[Any], str | None]


class ConfigError(ValueError):
    """A configuration value is wrong: ``key`` (dotted), ``value`` and where it came from."""

    def __init__(self, key: str, message: str, *, value: object = None, origin: str = "") -> None:
        self.key = key
        self.value = value
        self.origin = origin
        self.reason = message
        where = f" ({origin})" if origin else ""
        super().__init__(f"{key}: {message}{where}")


def setting(default: Any, help: str, *, check: Check | None = None, kind: str = "") -> Any:
    """Declare a config field: default, help text, optional check and value kind.

    ``kind`` refines the annotation: ``"duration"`` (seconds, also ``"30s"``, ``"5m"``, ``"5h"``),
    ``"path"`` (a file-system path; empty means "under data_dir"), ``"actions"`` (action names).
    """
    meta = {"help": help, "check": check, "kind": kind}
    if isinstance(default, list):
        default = tuple(default)
    return field(default=default, metadata=meta)


def _section(help: str) -> dict[str, Any]:
    return {"help": help, "check": None, "kind": "section"}


# -- checks: each returns an error message ("expected ..., got ...") or None -------------------------


def positive_int(v: Any) -> str | None:
    return None if v > 0 else f"expected a positive integer, got {v!r}"


def non_negative(v: Any) -> str | None:
    return None if v >= 0 else f"expected a number >= 0, got {v!r}"


def positive(v: Any) -> str | None:
    return None if v > 0 else f"expected a number > 0, got {v!r}"


def one_of(*choices: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in choices else f"expected one of {', '.join(choices)}, got {v!r}"

    return check


def criticality(v: Any) -> str | None:
    return None if 0 <= v <= 10 else f"expected a criticality between 0 and 10, got {v!r}"


def http_url(v: Any) -> str | None:
    if v == "" or re.match(r"^https?://[^/\s]+(/\S*)?$", v):
        return None
    return f"expected an http:// or https:// URL, got {v!r}"


def uuid_or_empty(v: Any) -> str | None:
    if v == "":
        return None
    try:
        uuid.UUID(v)
    except ValueError:
        return f"expected a UUID such as 03e31275-2277-d8e0-bb5f-480fac7ee4ef, got {v!r}"
    return None


def sha256_or_empty(v: Any) -> str | None:
    if v == "" or re.fullmatch(r"[0-9a-fA-F]{64}", v.replace(":", "")):
        return None
    return f"expected a hex SHA-256 fingerprint (64 hex digits), got {v!r}"


def absolute_or_empty(v: Any) -> str | None:
    return None if v == "" or os.path.isabs(v) else f"expected an absolute path, got {v!r}"


def absolute(v: Any) -> str | None:
    return None if os.path.isabs(v) else f"expected an absolute path, got {v!r}"


# -- sections -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineConfig:
    queue_size: int = setting(
        65536,
        "Events the queue between sources and the pipeline thread holds; beyond it events are dropped "
        "and counted.",
        check=positive_int,
    )
    batch_size: int = setting(
        512, "Events the pipeline thread takes from the queue at once.", check=positive_int
    )
    inline: bool = setting(
        True,
        "Detect and write each event in the thread that produced it (one thread wakeup less per "
        "event; alerts are written at once, other events within a second); false queues events "
        "to the pipeline thread.",
    )
    hooks: tuple[str, ...] = setting(
        [], "Registered enrichment hooks to run before detection, in this order (see `vigil agent doctor`)."
    )


@dataclass(frozen=True)
class SensorsConfig:
    kernel: bool = setting(True, "Run the kernel sensor (process, network, file and module events).")
    sources: tuple[str, ...] = setting(
        [], "Kernel sources to start; empty starts every source available on this host."
    )
    watch_paths: tuple[str, ...] = setting(
        [], "Directories whose file creations and deletions are reported (FileCreate, FileDelete)."
    )
    replay: str = setting(
        "",
        "A JSON-lines file of events to replay through the pipeline at start (tests, demos, "
        "re-analysis); empty disables the replay source.",
        kind="path",
    )


@dataclass(frozen=True)
class ActionsConfig:
    low: tuple[str, ...] = setting([], "Actions added to detections of criticality 1-4.", kind="actions")
    medium: tuple[str, ...] = setting(
        ["brief", "filedump"], "Actions added to detections of criticality 5-7.", kind="actions"
    )
    high: tuple[str, ...] = setting(
        ["report", "filedump"], "Actions added to detections of criticality 8-9.", kind="actions"
    )
    critical: tuple[str, ...] = setting(
        ["report", "filedump", "memdump"], "Actions added to detections of criticality 10.", kind="actions"
    )
    max_per_process: int = setting(
        4, "Most action runs per process (all actions together), as WHIDS' max-dumps.", check=positive_int
    )
    act_on_untracked: bool = setting(False, "Also act on processes the tracker does not know.")
    workers: int = setting(2, "Actions that run at the same time.", check=positive_int)


@dataclass(frozen=True)
class DumpConfig:
    dir: str = setting("", "Where artifacts go; empty: data_dir/dumps.", kind="path")
    compression: bool = setting(True, "Gzip artifacts (a .sha256 file is kept next to each).")


@dataclass(frozen=True)
class ReportingConfig:
    enable: bool = setting(False, "Allow the report and brief actions.")
    timeout: float = setting(
        60.0, "Timeout of each report command, in seconds.", check=positive, kind="duration"
    )
    osquery_tables: tuple[str, ...] = setting(
        [
            "processes",
            "process_open_sockets",
            "listening_ports",
            "kernel_modules",
            "crontab",
            "systemd_units",
        ],
        "osquery tables added to full reports when osqueryi is installed.",
    )


@dataclass(frozen=True)
class CanaryGroup:
    directories: tuple[str, ...] = setting([], "Directories that hold decoy files (created if missing).")
    files: tuple[str, ...] = setting([], "Decoy file names created in each directory.")
    delete: bool = setting(True, "Remove the files and the directories the agent created on stop.")


@dataclass(frozen=True)
class CanariesConfig:
    enable: bool = setting(False, "Create decoy files and alert on any process that touches them.")
    actions: tuple[str, ...] = setting(
        ["kill", "memdump", "filedump", "blacklist", "report"],
        "Actions of the built-in canary rules.",
        kind="actions",
    )
    whitelist: tuple[str, ...] = setting([], "Images (absolute paths) allowed to touch canaries.")
    groups: tuple[CanaryGroup, ...] = setting(
        [CanaryGroup(directories=("/root", "/srv"), files=("readme.pdf", "readme.docx", "readme.txt"))],
        "Groups of decoys ([[canaries.groups]] tables).",
    )


@dataclass(frozen=True)
class RulesConfig:
    dir: str = setting(
        "",
        "Rules loaded at start: Gene (.gen/.gene) and Sigma (.yml/.yaml) files; the manager's sets are"
        " synced here (database.gen, manager-sigma.yml); empty: data_dir/rules.",
        kind="path",
    )
    containers_dir: str = setting(
        "",
        "IoC containers (NAME.cont or NAME.cont.gz, one value per line); empty: data_dir/containers.",
        kind="path",
    )
    update_interval: float = setting(
        60.0,
        "How often rules and IoCs are pulled from the manager, in seconds.",
        check=positive,
        kind="duration",
    )


@dataclass(frozen=True)
class ManagerConfig:
    url: str = setting(
        "", "Manager endpoint API, e.g. https://manager:1519; empty: standalone.", check=http_url
    )
    uuid: str = setting("", "This endpoint's UUID, given at enrolment.", check=uuid_or_empty)
    key: str = setting("", "This endpoint's key, given at enrolment.")
    server_key: str = setting("", "Expected answer of GET /key (server authentication); empty: not checked.")
    fingerprint: str = setting(
        "",
        "Pinned SHA-256 of the manager certificate's public key (hex); empty: not pinned.",
        check=sha256_or_empty,
    )
    tls_verify: bool = setting(True, "Verify the manager's TLS certificate.")
    ca_file: str = setting(
        "", "CA bundle to verify the manager with; empty: system CAs.", check=absolute_or_empty
    )
    timeout: float = setting(
        30.0, "Timeout of one request to the manager, in seconds.", check=positive, kind="duration"
    )
    max_upload_mb: int = setting(100, "Artifacts larger than this are not uploaded.", check=positive_int)


@dataclass(frozen=True)
class SpoolConfig:
    dir: str = setting(
        "", "Durable queue between pipeline and forwarder; empty: data_dir/spool.", kind="path"
    )
    max_mb: int = setting(
        1024, "Size cap of the spool; the oldest events are evicted (and counted) beyond.", check=positive_int
    )


@dataclass(frozen=True)
class OutputConfig:
    dir: str = setting("", "Standalone alert and event files; empty: data_dir/logs.", kind="path")
    rotate_mb: int = setting(100, "Rotate a file when it grows past this size.", check=positive_int)
    rotate_interval: float = setting(
        5 * 3600.0,
        "Rotate a file at least this often, in seconds (WHIDS: 5h).",
        check=positive,
        kind="duration",
    )
    keep: int = setting(10, "Rotated files kept per stream; older ones are deleted.", check=positive_int)
    compress: bool = setting(True, "Gzip rotated files.")


@dataclass(frozen=True)
class AgentConfig:
    data_dir: str = setting(
        "/var/lib/vigil",
        "Root of the agent's state; empty paths below default to directories in it.",
        check=absolute,
        kind="path",
    )
    log_level: str = setting("info", "Agent log level.", check=one_of(*LOG_LEVELS))
    log_file: str = setting(
        "", "Agent log file; empty: standard error (the journal under systemd).", kind="path"
    )
    hostname: str = setting("", "Name reported in events (System.Computer); empty: the host name.")
    criticality_threshold: int = setting(
        5, "Detections at or above this criticality are alerts: reported and acted on.", check=criticality
    )
    en_filters: bool = setting(True, "Also report events that match filter rules (without a Detection).")
    log_all: bool = setting(False, "Report every event, not only alerts (debugging, full telemetry).")
    endpoint: bool = setting(True, "This host is the source of the events: run actions on it.")
    stats_interval: float = setting(
        30.0, "How often the per-stage counters are logged, in seconds.", check=positive, kind="duration"
    )
    drain_timeout: float = setting(
        10.0,
        "On stop, how long queued events may take to drain, in seconds.",
        check=non_negative,
        kind="duration",
    )
    pipeline: PipelineConfig = field(
        default_factory=PipelineConfig, metadata=_section("Queue and hooks between sources and detection.")
    )
    sensors: SensorsConfig = field(default_factory=SensorsConfig, metadata=_section("Event sources."))
    actions: ActionsConfig = field(
        default_factory=ActionsConfig,
        metadata=_section("Default actions per criticality band and action limits."),
    )
    dump: DumpConfig = field(default_factory=DumpConfig, metadata=_section("Artifacts written by actions."))
    reporting: ReportingConfig = field(
        default_factory=ReportingConfig, metadata=_section("Incident-response reports.")
    )
    canaries: CanariesConfig = field(default_factory=CanariesConfig, metadata=_section("Decoy files."))
    rules: RulesConfig = field(default_factory=RulesConfig, metadata=_section("Rules and IoC containers."))
    manager: ManagerConfig = field(
        default_factory=ManagerConfig, metadata=_section("Connection to the manager (none: standalone mode).")
    )
    spool: SpoolConfig = field(
        default_factory=SpoolConfig, metadata=_section("Durable queue towards the manager.")
    )
    output: OutputConfig = field(default_factory=OutputConfig, metadata=_section("Standalone output files."))

    @property
    def standalone(self) -> bool:
        return self.manager.url == ""

    def default_actions(self) -> dict[int, list[str]]:
        """Criticality (1..10) -> default actions of its band, the engine's ``default_actions``."""
        out: dict[int, list[str]] = {}
        for band, crits in BANDS.items():
            for c in crits:
                out[c] = list(getattr(self.actions, band))
        return out

    def path(self, value: str, default_name: str) -> str:
        """``value`` resolved against data_dir; empty -> ``data_dir/<default_name>``."""
        return os.path.join(self.data_dir, value or default_name)

    def resolved(self) -> AgentConfig:
        """A copy with every empty path filled under data_dir (relative ones made absolute)."""
        return dataclasses.replace(
            self,
            dump=dataclasses.replace(self.dump, dir=self.path(self.dump.dir, "dumps")),
            rules=dataclasses.replace(
                self.rules,
                dir=self.path(self.rules.dir, "rules"),
                containers_dir=self.path(self.rules.containers_dir, "containers"),
            ),
            spool=dataclasses.replace(self.spool, dir=self.path(self.spool.dir, "spool")),
            output=dataclasses.replace(self.output, dir=self.path(self.output.dir, "logs")),
        )


def band_of(crit: int) -> str | None:
    """The band name of a criticality, or None for 0."""
    for name, crits in BANDS.items():
        if crit in crits:
            return name
    return None
