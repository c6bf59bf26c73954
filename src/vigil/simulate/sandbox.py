"""The sandbox every simulation runs in: its own temp directory, its own processes, a record of
the events the agent should see, and cleanup that runs even when a step fails.

A simulation never touches real system configuration. It acts on files under its temp directory
(plus the few extra paths it registers, all named ``vigil-sim-*``), runs programs with argument
lists (never a shell string built from input), kills only the process groups it started, and sends
network traffic only to closed loopback ports or inside network namespaces it creates.

What it records (``Sandbox.expected``) are the events a vigil agent would produce for the
activity, in the Sysmon-for-Linux shape. Tests feed them to the engine to prove each scenario
exercises the rules it declares; a live agent sees the real thing.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "SIM_PREFIX",
    "ExpectedEvent",
    "Sandbox",
    "ScenarioSkipped",
    "resolve_program",
]

SIM_PREFIX = "vigil-sim-"
SYSMON_CHANNEL = "Linux-Sysmon/Operational"
DEFAULT_TIMEOUT = 15.0
DIR_SETTLE_S = 0.3


class ScenarioSkipped(Exception):
    """The scenario cannot run here (missing tool, not root); the message says why."""


@dataclass(frozen=True, slots=True)
class ExpectedEvent:
    """One event the activity should produce, as Sysmon-for-Linux EventData."""

    event_id: int
    data: dict[str, str]
    channel: str = SYSMON_CHANNEL

    def to_event(self, computer: str | None = None) -> dict[str, Any]:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
        return {
            "Event": {
                "System": {
                    "Channel": self.channel,
                    "EventID": self.event_id,
                    "Computer": computer or socket.gethostname(),
                    "TimeCreated": {"SystemTime": now},
                },
                "EventData": dict(self.data),
            }
        }


def resolve_program(program: str) -> str:
    """Absolute, symlink-free path of a program, as the kernel reports an exec's image."""
    path = program if "/" in program else shutil.which(program)
    if path is None:
        raise ScenarioSkipped(f"{program} is not installed")
    return os.path.realpath(path)


@dataclass
class Sandbox:
    """Context manager: temp directory, program runner, expected-event record, cleanup."""

    root: Path = field(init=False)
    expected: list[ExpectedEvent] = field(default_factory=list, init=False)
    skipped_rules: dict[str, str] = field(default_factory=dict, init=False)
    _extra: list[Path] = field(default_factory=list, init=False)
    _held: list[socket.socket] = field(default_factory=list, init=False)
    _self_image: str = field(init=False)

    def __enter__(self) -> Sandbox:
        self.root = Path(tempfile.mkdtemp(prefix=SIM_PREFIX, dir="/tmp"))
        self._self_image = os.path.realpath(sys.executable)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()

    # -- cleanup ---------------------------------------------------------------------------
    def register(self, path: Path) -> Path:
        """Remove ``path`` at cleanup too (for the few things that must live outside the root)."""
        if SIM_PREFIX not in path.name:
            raise ValueError(f"refusing to register {path}: simulation paths are named {SIM_PREFIX}*")
        self._extra.append(path)
        return path

    @property
    def owned_paths(self) -> list[Path]:
        """Everything this sandbox may have created outside the system: its root and registered paths."""
        return [self.root, *self._extra]

    def cleanup(self) -> None:
        for sock in self._held:
            sock.close()
        for path in [*self._extra, self.root]:
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
            except OSError as exc:
                logger.warning("simulation cleanup could not remove %s: %s", path, exc)

    # -- network ---------------------------------------------------------------------------
    def closed_port(self) -> int:
        """A TCP port on 127.0.0.1 that refuses connections until cleanup.

        The port stays bound (never listening) by this sandbox, so no other process can start
        listening on it while a step aims a reverse-shell or download command at it.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._held.append(sock)
        return int(sock.getsockname()[1])

    # -- files -----------------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        """A path inside the sandbox; missing parent directories are created first."""
        p = self.root.joinpath(*parts)
        if not p.parent.is_dir():
            p.parent.mkdir(parents=True)
            # A recursive file watcher marks a new directory only after it sees it appear; a file
            # created in the same instant would go unseen, so give the watcher a moment.
            time.sleep(DIR_SETTLE_S)
        return p

    def write_file(self, path: Path, content: str = "", *, image: str | None = None) -> Path:
        """Create a file (recorded as a FileCreate by ``image``, default this Python)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        self.expect_file(path, image=image)
        return path

    def copy_program(self, program: str, name: str, directory: Path | None = None) -> Path:
        """Copy an installed program to ``directory/name`` (default the sandbox root), executable."""
        target = (directory or self.root) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(resolve_program(program), target)
        target.chmod(0o755)
        self.expect_file(target)
        return target

    # -- processes -------------------------------------------------------------------------
    def run(
        self,
        argv: list[str],
        *,
        executable: str | None = None,
        env: dict[str, str] | None = None,
        children: Sequence[tuple[str, str]] = (),
        timeout: float = DEFAULT_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in its own process group and record its ProcessCreate.

        ``children`` lists ``(image, command_line)`` of processes the program itself starts, so their
        events (with this program as parent) are expected too. Output is captured and discarded.
        """
        image = resolve_program(executable or argv[0])
        proc = subprocess.Popen(
            argv,
            executable=executable,
            env=env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # our own process group, created above
            out, err = proc.communicate()
            logger.warning("simulation step timed out and was killed: %s", argv[0])
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        command_line = " ".join(argv)
        self.expect_process(image, command_line)
        for child_image, child_cmd in children:
            self.expect_process(resolve_program(child_image), child_cmd, parent=(image, command_line))
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    # -- expected events -------------------------------------------------------------------
    def expect_process(self, image: str, command_line: str, parent: tuple[str, str] | None = None) -> None:
        parent_image, parent_cmd = parent or (self._self_image, " ".join(sys.argv))
        self.expected.append(
            ExpectedEvent(
                1,
                {
                    "Image": image,
                    "CommandLine": command_line,
                    "CurrentDirectory": str(self.root),
                    "User": _user(),
                    "ParentImage": parent_image,
                    "ParentCommandLine": parent_cmd,
                    "Ancestors": parent_image,
                },
            )
        )

    def expect_file(self, path: Path, *, image: str | None = None) -> None:
        data = {"Image": image or self._self_image, "TargetFilename": str(path), "User": _user()}
        self.expected.append(ExpectedEvent(11, data))

    def expect_connect(self, image: str, ip: str, port: int) -> None:
        data = {
            "Image": resolve_program(image),
            "User": _user(),
            "Protocol": "tcp",
            "Initiated": "true",
            "DestinationIp": ip,
            "DestinationPort": str(port),
        }
        self.expected.append(ExpectedEvent(3, data))

    def expect_dns(self, image: str, name: str) -> None:
        self.expected.append(
            ExpectedEvent(22, {"Image": resolve_program(image), "QueryName": name, "User": _user()})
        )

    def skip_rules(self, rules: list[str], reason: str) -> None:
        """A step could not run here: its rules are not exercised (reported, not hidden)."""
        for rule in rules:
            self.skipped_rules[rule] = reason


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())
