"""``vigil up``: a working EDR on this host with one command.

On first use the data directory gets a manager (TLS certificate, SQLite database, first admin user)
and an agent enrolled to it with the certificate pinned; the manager is given vigil's default rule
set, which the agent also loads at start so it detects from the first second. Then both run as child
processes (so a crash of one is reported, not hidden), and the first SIGINT/SIGTERM stops the agent
first, then the manager, each with a deadline.

Layout: ``<data>/manager/`` (manager data dir), ``<data>/agent/`` (agent data dir and
``agent.toml``), ``<data>/up.json`` (ports and endpoint identity, no secrets).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import tomli_w

logger = logging.getLogger(__name__)

__all__ = ["LocalDeployment", "UpError"]


class UpError(Exception):
    """vigil up could not initialise or start a part; the message says which and why."""


@dataclass
class InitResult:
    admin_key: str | None  # only on the first run: it is stored hashed and cannot be shown again
    fingerprint: str


def _vigil_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "vigil", *args]


#: Children run in their own process group (``process_group=0``). A terminal's Ctrl-C signals the
#: whole foreground group: if the children were in it they would get SIGINT directly and then
#: ``vigil up``'s SIGTERM as well, which the agent rightly reads as "stop now, skip the drain" (and
#: so it left its audit rules behind). In their own group only ``vigil up`` hears Ctrl-C and stops
#: them in order, once each.
_OWN_GROUP = 0


class LocalDeployment:
    def __init__(
        self,
        data_dir: Path,
        *,
        admin_port: int = 1520,
        endpoint_port: int = 1519,
        host: str = "127.0.0.1",
        agent: bool = True,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.manager_dir = self.data_dir / "manager"
        self.agent_dir = self.data_dir / "agent"
        self.agent_config = self.agent_dir / "agent.toml"
        self.admin_port = admin_port
        self.endpoint_port = endpoint_port
        self.host = host
        self.with_agent = agent
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = threading.Event()
        self._notify: socket.socket | None = None

    @property
    def admin_url(self) -> str:
        return f"https://{self.host}:{self.admin_port}"

    @property
    def endpoint_url(self) -> str:
        return f"https://{self.host}:{self.endpoint_port}"

    # -- initialisation --------------------------------------------------------------------------

    def initialized(self) -> bool:
        return (self.manager_dir / "manager.toml").is_file() and self.agent_config.is_file()

    def initialize(self) -> InitResult:
        """Create manager and agent configuration on first use; later runs reuse them."""
        from vigil.manager.api.admin import create_endpoint, create_user
        from vigil.manager.config import CONFIG_FILE, ManagerConfig
        from vigil.manager.state import Manager
        from vigil.manager.tls import generate_self_signed, public_key_fingerprint

        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise UpError(f"--data {self.data_dir} is not a directory")
        if self.initialized():
            config = ManagerConfig.load(self.manager_dir)
            self._point_agent_at(self.endpoint_url)
            return InitResult(None, public_key_fingerprint(config.cert_path.read_bytes()))
        if self.manager_dir.exists() or self.agent_dir.exists():
            raise UpError(
                f"{self.data_dir} holds a partial vigil up setup (manager.toml or agent.toml is missing);"
                " move it away or choose another --data"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self.manager_dir.mkdir(exist_ok=True)
        config = ManagerConfig(
            data_dir=self.manager_dir,
            admin_host=self.host,
            admin_port=self.admin_port,
            endpoint_host=self.host,
            endpoint_port=self.endpoint_port,
        )
        config.cert_path.parent.mkdir(parents=True, exist_ok=True)
        generate_self_signed(config.cert_path, config.key_path, ("localhost", self.host))
        fingerprint = public_key_fingerprint(config.cert_path.read_bytes())
        manager = Manager.open(config)
        try:
            user = create_user(manager, "admin")
            endpoint = create_endpoint(manager)
        finally:
            manager.close()
        (self.manager_dir / CONFIG_FILE).write_text(config.to_toml())
        self._write_agent_config(endpoint["uuid"], endpoint["key"], fingerprint)
        return InitResult(str(user["key"]), fingerprint)

    def _write_agent_config(self, uuid: str, key: str, fingerprint: str) -> None:
        from vigil.rules import default_rule_files, default_watch_paths

        rules_dir = self.agent_dir / "rules"
        rules_dir.mkdir(parents=True, exist_ok=True)
        # The agent starts with the default rules; the manager's set replaces them at the first sync.
        (rules_dir / "database.gen").write_bytes(
            b"".join(p.read_bytes() + b"\n" for p in default_rule_files())
        )
        config = {
            "data_dir": str(self.agent_dir),
            "reporting": {"enable": True},
            "sensors": {"watch_paths": default_watch_paths()},
            "rules": {"dir": str(rules_dir), "update_interval": 10.0},
            "manager": {
                "url": self.endpoint_url,
                "uuid": uuid,
                "key": key,
                "fingerprint": fingerprint,
            },
        }
        self.agent_config.write_bytes(tomli_w.dumps(config).encode())
        self.agent_config.chmod(0o600)

    def _point_agent_at(self, url: str) -> None:
        """Later runs may use other ports: keep the agent's manager URL in step (nothing else changes)."""
        import tomllib

        config = tomllib.loads(self.agent_config.read_text())
        if config.get("manager", {}).get("url") == url:
            return
        config.setdefault("manager", {})["url"] = url
        self.agent_config.write_bytes(tomli_w.dumps(config).encode())
        self.agent_config.chmod(0o600)

    def load_default_rules(self, admin_key: str) -> int:
        """Give the manager the default rule set (first run), through its admin API like any client."""
        from vigil.client import AdminClient, ClientError, pinned_ssl_context
        from vigil.rules import default_rule_files
        from vigil.rules.catalog import read_rule_objects

        rules = [rule for path in default_rule_files() for _, rule in read_rule_objects(path)]
        cert = self.manager_dir / "tls" / "cert.pem"
        try:
            with AdminClient(self.admin_url, admin_key, verify=pinned_ssl_context(cert)) as client:
                client.add_rules(rules, update=True)
        except ClientError as exc:
            raise UpError(f"could not load the default rules into the manager: {exc}") from exc
        return len(rules)

    def forget_first_run(self) -> None:
        """Remove what a first run that did not complete created, so the next run starts afresh.

        Otherwise the admin key (printed only in the banner) would be lost and the default rules
        never loaded. Only ``manager/``, ``agent/`` and ``up.json`` go: ``initialize`` refuses a data
        dir that already had either, so these were made by this run.
        """
        import shutil

        for path in (self.manager_dir, self.agent_dir):
            if path.is_dir():
                shutil.rmtree(path)
        (self.data_dir / "up.json").unlink(missing_ok=True)

    # -- running ---------------------------------------------------------------------------------

    def check_ports(self) -> None:
        """Fail early, naming the port, when a listener cannot bind (another ``vigil up``?)."""
        for flag, port in (("--admin-port", self.admin_port), ("--endpoint-port", self.endpoint_port)):
            with socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
                try:
                    probe.bind((self.host, port))
                except OSError as exc:
                    raise UpError(
                        f"cannot listen on {self.host}:{port} ({flag}): {exc.strerror}; another vigil up"
                        f" or `make run` may hold it: stop it or choose another {flag}"
                    ) from exc

    def start_manager(self, timeout: float = 60.0) -> None:
        self.check_ports()
        command = _vigil_command(
            "manager", "run", "--data", str(self.manager_dir),
            "--admin-port", str(self.admin_port), "--endpoint-port", str(self.endpoint_port), "--host", self.host,
        )  # fmt: skip
        child = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            process_group=_OWN_GROUP,
        )
        self.children["manager"] = child
        assert child.stdout is not None
        if not self._wait_for_line(child, child.stdout, b"ready", timeout):
            if child.poll() is not None:
                raise UpError(f"the manager exited with status {child.returncode} while starting (see above)")
            raise UpError(f"the manager did not start within {timeout:.0f}s")
        threading.Thread(target=self._pump, args=(child.stdout,), daemon=True).start()

    def start_agent(self, timeout: float = 90.0) -> None:
        """Start the agent and wait until it says READY (sensors, rules and link started).

        The agent speaks systemd's notify protocol; ``vigil up`` plays systemd's part on a private
        abstract socket, so the banner (and a ``vigil simulate`` right after it) comes only once
        the agent is actually watching.
        """
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        name = f"vigil-up-{os.getpid()}-{secrets.token_hex(4)}"
        notify.bind("\0" + name)
        self._notify = notify
        ready = threading.Event()
        threading.Thread(target=self._read_notify, args=(notify, ready), daemon=True).start()
        command = _vigil_command("agent", "run", "--config", str(self.agent_config))
        env = {**os.environ, "NOTIFY_SOCKET": "@" + name}
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, process_group=_OWN_GROUP, env=env)
        self.children["agent"] = child
        deadline = time.monotonic() + timeout
        while not ready.wait(0.2):
            if child.poll() is not None:
                raise UpError(f"the agent exited with status {child.returncode} before it was ready")
            if time.monotonic() > deadline or self._stopping.is_set():
                raise UpError(f"the agent was not ready within {timeout:.0f}s")

    @staticmethod
    def _read_notify(sock: socket.socket, ready: threading.Event) -> None:
        while True:
            try:
                message = sock.recv(4096)
            except OSError:
                return
            if not message:
                return  # shut down by stop()
            if b"READY=1" in message.split(b"\n"):
                ready.set()

    @staticmethod
    def _wait_for_line(
        child: subprocess.Popen[bytes], stream: IO[bytes], wanted: bytes, timeout: float
    ) -> bool:
        deadline = time.monotonic() + timeout
        selector = selectors.DefaultSelector()
        selector.register(stream, selectors.EVENT_READ)
        try:
            while time.monotonic() < deadline:
                if child.poll() is not None:
                    return False
                if selector.select(timeout=0.2):
                    line = stream.readline()
                    if line.strip().split(b" ")[0] == wanted:
                        return True
                    if line:
                        sys.stdout.buffer.write(line)
                        sys.stdout.flush()
            return False
        finally:
            selector.close()

    @staticmethod
    def _pump(stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            sys.stdout.buffer.write(line)
            sys.stdout.flush()

    def wait(self) -> int:
        """Block until a signal or a child exits; returns the exit status for ``vigil up``."""
        while not self._stopping.is_set():
            for name, child in self.children.items():
                status = child.poll()
                if status is not None:
                    print(f"vigil up: the {name} exited with status {status}; stopping", file=sys.stderr)
                    return status or 1
            self._stopping.wait(0.5)
        return 0

    def request_stop(self, *_: object) -> None:
        self._stopping.set()

    def stop(self, deadline: float = 20.0) -> None:
        try:
            self._stop_children(deadline)
        finally:
            if self._notify is not None:
                with contextlib.suppress(OSError):
                    self._notify.shutdown(socket.SHUT_RDWR)
                self._notify.close()

    def _stop_children(self, deadline: float) -> None:
        for name in ("agent", "manager"):
            child = self.children.get(name)
            if child is None or child.poll() is not None:
                continue
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=deadline)
            except subprocess.TimeoutExpired:
                print(
                    f"vigil up: the {name} did not stop within {deadline:.0f}s; killing it", file=sys.stderr
                )
                child.kill()
                child.wait()

    def write_state(self, fingerprint: str) -> None:
        state = {
            "admin_url": self.admin_url,
            "console_url": f"{self.admin_url}/ui/",
            "endpoint_url": self.endpoint_url,
            "fingerprint": fingerprint,
            "pid": os.getpid(),
        }
        state.update({f"{name}_pid": child.pid for name, child in self.children.items()})
        (self.data_dir / "up.json").write_text(json.dumps(state, indent=2) + "\n")
