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

import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

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

        if self.initialized():
            config = ManagerConfig.load(self.manager_dir)
            return InitResult(None, public_key_fingerprint(config.cert_path.read_bytes()))
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

    def load_default_rules(self, admin_key: str) -> int:
        """Give the manager the default rule set (first run), through its admin API like any client."""
        from vigil.client import AdminClient, pinned_ssl_context
        from vigil.rules import default_rule_files

        decoder = json.JSONDecoder()
        rules: list[dict[str, Any]] = []
        for path in default_rule_files():
            text, pos = path.read_text(), 0
            while True:
                while pos < len(text) and text[pos].isspace():
                    pos += 1
                if pos >= len(text):
                    break
                rule, pos = decoder.raw_decode(text, pos)
                rules.append(rule)
        cert = self.manager_dir / "tls" / "cert.pem"
        with AdminClient(self.admin_url, admin_key, verify=pinned_ssl_context(cert)) as client:
            client.add_rules(rules, update=True)
        return len(rules)

    # -- running ---------------------------------------------------------------------------------

    def start_manager(self, timeout: float = 60.0) -> None:
        command = _vigil_command(
            "manager", "run", "--data", str(self.manager_dir),
            "--admin-port", str(self.admin_port), "--endpoint-port", str(self.endpoint_port), "--host", self.host,
        )  # fmt: skip
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.children["manager"] = child
        assert child.stdout is not None
        if not self._wait_for_line(child, child.stdout, b"ready", timeout):
            raise UpError(f"the manager did not start within {timeout:.0f}s (exit status {child.poll()})")
        threading.Thread(target=self._pump, args=(child.stdout,), daemon=True).start()

    def start_agent(self) -> None:
        command = _vigil_command("agent", "run", "--config", str(self.agent_config))
        self.children["agent"] = subprocess.Popen(command, stdin=subprocess.DEVNULL)

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
        (self.data_dir / "up.json").write_text(json.dumps(state, indent=2) + "\n")
