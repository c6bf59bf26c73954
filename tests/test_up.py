"""``vigil up`` as a real process: first run, the running pair, Ctrl-C, a second run, bad input.

Ports are picked free by the test (never 1519/1520, which a responder's ``make run`` may hold).
``vigil up`` is started in its own session so that "Ctrl-C" is what a terminal does: SIGINT to the
whole process group (``vigil up`` and both children), which the test created.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from vigil.client import AdminClient, pinned_ssl_context
from vigil.engine import Engine
from vigil.rules import default_rules_path
from vigil.up import LocalDeployment, UpError

START_TIMEOUT = 120.0
KEY_LINE = re.compile(r"admin key \(shown once, keep it\): (\S+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_ports() -> tuple[int, int]:
    while True:
        a, b = _free_port(), _free_port()
        if a != b and not {a, b} & {1519, 1520}:
            return a, b


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class UpProcess:
    """``vigil up`` in its own process group, its stdout collected line by line."""

    def __init__(self, data: Path, admin_port: int, endpoint_port: int, log: Path) -> None:
        self.data, self.admin_port, self.endpoint_port = data, admin_port, endpoint_port
        self.lines: list[str] = []
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vigil", "up", "--data", str(data),
             "--admin-port", str(admin_port), "--endpoint-port", str(endpoint_port)],
            stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_banner(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if any(line.strip().startswith("stop:") for line in self.lines):
                return self.output
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no banner (exit status {self.proc.poll()}); stdout:\n{self.output}")

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = orjson.loads((self.data / "up.json").read_bytes())
        return state

    def interrupt(self, sig: int = signal.SIGINT, timeout: float = 60.0) -> int:
        """Send ``sig`` to the group, as a terminal's Ctrl-C does; returns the exit status."""
        os.killpg(self.proc.pid, sig)
        status = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return status

    def kill(self) -> None:
        """Teardown: kill what is left of this run (``vigil up`` and the children it started)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if (self.data / "up.json").is_file():
            state = self.state()
            for name in ("manager_pid", "agent_pid"):
                pid = state.get(name)
                if pid and _alive(pid) and str(self.data) in Path(f"/proc/{pid}/cmdline").read_text():
                    os.kill(pid, signal.SIGKILL)
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


@pytest.fixture
def up_run(tmp_path: Path) -> Iterator[Any]:
    """A factory for ``vigil up`` runs on one data dir; every run is killed at teardown if still alive."""
    runs: list[UpProcess] = []
    ports = free_ports()

    def start() -> UpProcess:
        run = UpProcess(tmp_path / "data", *ports, tmp_path / "up.log")
        runs.append(run)
        return run

    try:
        yield start
    finally:
        for run in runs:
            run.kill()
            remove_audit_rules_of(run)


def remove_audit_rules_of(run: UpProcess) -> None:
    """Whatever a test asserted, leave no audit rule of an agent this test started."""
    if os.geteuid() != 0 or not (run.data / "up.json").is_file():
        return
    from vigil.agent.sources import _auditnl as nl

    pid = run.state().get("agent_pid")
    sock = nl.open_socket()
    try:
        for rule, payload in nl.list_rules(sock):
            if rule.key.startswith(f"vigil-{pid}-"):
                nl.delete_rule(sock, payload)
    finally:
        sock.close()


def _admin(run: UpProcess, key: str) -> AdminClient:
    cert = run.data / "manager" / "tls" / "cert.pem"
    return AdminClient(f"https://127.0.0.1:{run.admin_port}", key, verify=pinned_ssl_context(cert))


def _vigil_audit_keys(pid: int) -> list[str]:
    from vigil.agent.sources import _auditnl as nl

    sock = nl.open_socket()
    try:
        return [rule.key for rule, _ in nl.list_rules(sock) if rule.key.startswith(f"vigil-{pid}-")]
    finally:
        sock.close()


def test_first_run_serves_console_and_rules_then_ctrl_c_stops_everything(up_run: Any) -> None:
    run = up_run()
    banner = run.wait_banner()
    console = f"https://127.0.0.1:{run.admin_port}/ui/"
    assert f"console:       {console}" in banner
    assert "stop:          Ctrl-C" in banner
    match = KEY_LINE.search(banner)
    assert match, banner
    key = match.group(1)

    cert = run.data / "manager" / "tls" / "cert.pem"
    page = httpx.get(console, verify=pinned_ssl_context(cert), timeout=10)
    assert page.status_code == 200
    assert "<html" in page.text.lower()

    expected = Engine()
    expected.load_path(default_rules_path())
    names = {r.name for r in expected.rules}
    assert len(names) >= 40
    with _admin(run, key) as admin:
        assert {r["Name"] for r in admin.rules()} == names

    state = run.state()
    manager_pid, agent_pid = state["manager_pid"], state["agent_pid"]
    assert _alive(manager_pid) and _alive(agent_pid)
    if os.geteuid() == 0:  # the banner waits for the agent's READY: its sensors are in place by now
        assert _vigil_audit_keys(agent_pid), "the banner came before the agent installed its audit rules"

    assert run.interrupt(signal.SIGINT) == 0, run.output
    assert not _alive(manager_pid), "the manager outlived vigil up"
    assert not _alive(agent_pid), "the agent outlived vigil up"
    if os.geteuid() == 0:
        assert _vigil_audit_keys(agent_pid) == [], "the agent left its audit rules behind"


def test_second_run_reuses_the_config_and_prints_no_key(up_run: Any) -> None:
    first = up_run()
    key = KEY_LINE.search(first.wait_banner())
    assert key
    manager_toml = (first.data / "manager" / "manager.toml").read_bytes()
    agent_toml = (first.data / "agent" / "agent.toml").read_bytes()
    cert = (first.data / "manager" / "tls" / "cert.pem").read_bytes()
    assert first.interrupt(signal.SIGTERM) == 0

    second = up_run()
    banner = second.wait_banner()
    assert KEY_LINE.search(banner) is None
    assert "admin key: shown at the first run" in banner
    assert "loaded" not in banner  # the manager keeps its rules; they are not reloaded
    assert (second.data / "manager" / "manager.toml").read_bytes() == manager_toml
    assert (second.data / "agent" / "agent.toml").read_bytes() == agent_toml
    assert (second.data / "manager" / "tls" / "cert.pem").read_bytes() == cert
    with _admin(second, key.group(1)) as admin:  # the first run's key still works: same database
        assert len(admin.rules()) >= 40
        assert len(admin.endpoints()) == 1  # the local agent was not enrolled a second time
    assert second.interrupt(signal.SIGINT) == 0


def test_data_that_is_a_file_is_refused_clearly(tmp_path: Path) -> None:
    data = tmp_path / "not-a-dir"
    data.write_text("hello")
    admin_port, endpoint_port = free_ports()
    result = subprocess.run(
        [sys.executable, "-m", "vigil", "up", "--data", str(data),
         "--admin-port", str(admin_port), "--endpoint-port", str(endpoint_port)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert str(data) in result.stderr
    assert "not a directory" in result.stderr
    assert "Traceback" not in result.stderr
    assert data.read_text() == "hello"  # nothing else is lost


def test_a_busy_port_is_named(tmp_path: Path) -> None:
    admin_port, endpoint_port = free_ports()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", endpoint_port))
        holder.listen()
        result = subprocess.run(
            [sys.executable, "-m", "vigil", "up", "--data", str(tmp_path / "data"),
             "--admin-port", str(admin_port), "--endpoint-port", str(endpoint_port)],
            check=False, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{endpoint_port} (--endpoint-port)" in result.stderr
    assert "Traceback" not in result.stderr
    assert "vigil is up" not in result.stdout
    assert not (tmp_path / "data").exists()  # checked before anything was created: no key is lost


def test_a_first_run_that_did_not_complete_is_forgotten_so_the_next_prints_a_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("mine")
    deployment = LocalDeployment(data, admin_port=1, endpoint_port=2)
    first = deployment.initialize()
    assert first.admin_key and deployment.initialized()
    deployment.forget_first_run()  # what `vigil up` does when start-up fails after initialising
    assert not deployment.initialized()
    assert sorted(p.name for p in data.iterdir()) == ["notes.txt"]  # nothing else is lost
    again = LocalDeployment(data, admin_port=1, endpoint_port=2).initialize()
    assert again.admin_key and again.admin_key != first.admin_key


def test_a_half_made_data_dir_is_refused_and_left_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "manager").mkdir(parents=True)
    (data / "manager" / "vigil.db").write_bytes(b"precious")
    with pytest.raises(UpError, match="partial vigil up setup"):
        LocalDeployment(data).initialize()
    assert (data / "manager" / "vigil.db").read_bytes() == b"precious"
