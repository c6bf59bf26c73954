"""The agent daemon: start, run, drain and stop; sources reported when unavailable; plug-ins; CLI."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.agent.fakes import proc_event
from vigil.agent.config import AgentConfig
from vigil.agent.config_loader import load_config
from vigil.agent.daemon import Agent
from vigil.agent.doctor import diagnose, exit_status
from vigil.agent.registry import Registry, default_registry, register_builtins
from vigil.cli import main

RULE = {
    "Name": "TestMalware",
    "Meta": {"Events": {"Linux-Sysmon/Operational": [1]}, "Criticality": 8, "Schema": "2.0.0"},
    "Matches": ["$im: Image = '/tmp/vigil-test/evil'"],
    "Condition": "$im",
}


def config_for(tmp_path: Path, *overrides: str) -> AgentConfig:
    """Standalone config under tmp_path with RULE in its rules directory, kernel sensor off."""
    rules = tmp_path / "data" / "rules"
    rules.mkdir(parents=True, exist_ok=True)
    (rules / "test.gen").write_text(json.dumps(RULE))
    return load_config(
        env={},
        overrides=[f"data_dir={tmp_path / 'data'}", "sensors.kernel=false", "stats_interval=0.2", *overrides],
    )


def write_replay(path: Path, n: int, evil_at: int | None = None) -> Path:
    with path.open("w") as f:
        for i in range(n):
            image = "/tmp/vigil-test/evil" if i == evil_at else f"/usr/bin/tool{i % 7}"
            f.write(json.dumps(proc_event(100_000 + i, image)) + "\n")
    return path


def wait_for(predicate: Any, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the agent exited with status {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- in process -------------------------------------------------------------------------------------


def test_replay_alert_reaches_the_standalone_file_and_stop_drains(tmp_path: Path) -> None:
    replay = write_replay(tmp_path / "events.jsonl", 500, evil_at=250)
    config = config_for(tmp_path, f"sensors.replay={replay}")
    agent = Agent(
        config,
        registry=default_registry(plugins=False),
    )
    agent.startup()
    try:
        assert agent.status == {"replay": None}
        alerts_file = tmp_path / "data" / "logs" / "alerts.jsonl"
        [alert] = wait_for(lambda: read_jsonl(alerts_file))
        assert agent.event_sources[0].wait(30)  # the whole file was handed over
    finally:
        assert agent.shutdown() == 0
    assert alert["Event"]["EventData"]["ProcessId"] == "100250"
    assert alert["Event"]["Detection"] == {
        "Signature": ["TestMalware"],
        "Criticality": 8,
        "Actions": ["report", "filedump"],
    }
    assert agent.pipeline is not None
    assert agent.pipeline.intake.received == 500
    assert agent.pipeline.total.received == 500  # drained: every accepted event went through
    for sub in ("dumps", "rules", "containers", "logs"):
        assert (tmp_path / "data" / sub).is_dir()


def test_unavailable_source_is_reported_and_the_rest_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    registry = Registry()
    register_builtins(registry)
    started: list[str] = []

    class Moon:
        name = "moon"

        def start(self, sink: Any) -> None:
            started.append("moon")

    registry.add(
        "source",
        "moon",
        lambda c: Moon(),
        requirements=lambda c: ["needs the moon", "needs CAP_LUNAR"],
        emits="events",
    )
    replay = write_replay(tmp_path / "events.jsonl", 10, evil_at=3)
    config = config_for(tmp_path, f"sensors.replay={replay}", "sensors.sources=moon")
    agent = Agent(config, registry=registry)
    agent.startup()
    try:
        wait_for(lambda: read_jsonl(tmp_path / "data" / "logs" / "alerts.jsonl"))
    finally:
        agent.shutdown()
    assert agent.status == {"replay": None, "moon": "needs the moon; needs CAP_LUNAR"}
    assert started == []
    assert "source moon is unavailable: needs the moon; needs CAP_LUNAR" in caplog.text
    findings = {(f.kind, f.name): f for f in diagnose(config, registry)}
    assert findings[("source", "moon")].enabled
    assert findings[("source", "moon")].reasons == ["needs the moon", "needs CAP_LUNAR"]
    assert findings[("source", "replay")].available
    assert exit_status(list(findings.values())) == 1


def test_unknown_source_or_hook_is_a_config_error(tmp_path: Path) -> None:
    agent = Agent(
        config_for(tmp_path, "sensors.sources=nope"),
        registry=default_registry(plugins=False),
    )
    assert agent.run(install_signals=False) == 2
    agent = Agent(
        config_for(tmp_path, "pipeline.hooks=nope"),
        registry=default_registry(plugins=False),
    )
    assert agent.run(install_signals=False) == 2


def _install_plugin(site: Path, body: str, entry: str) -> None:
    site.mkdir(parents=True, exist_ok=True)
    (site / "vigil_test_plugin.py").write_text(textwrap.dedent(body))
    info = site / "vigil_test_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vigil-test-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[vigil.agent.plugins]\n{entry}\n")


PLUGIN = """
    import time

    def register(registry):
        registry.add("action", "quarantine", None, help="move the image away")
        registry.add("hook", "tag", lambda config: tag, help="add a Tagged field")
        registry.add("hook", "sleepy", lambda config: sleepy, help="slow down every event")

    def tag(event):
        event["Event"]["EventData"]["Tagged"] = "by-plugin"
        return event

    def sleepy(event):
        time.sleep(0.05)
        return event

    def broken(registry):
        raise RuntimeError("plugin bug")
"""


def test_plugins_load_from_the_entry_point_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    _install_plugin(site, PLUGIN, "test = vigil_test_plugin:register\nbad = vigil_test_plugin:broken")
    monkeypatch.syspath_prepend(str(site))
    registry = default_registry()
    assert registry.get("action", "quarantine").plugin == "plugin test (vigil_test_plugin:register)"
    assert registry.get("action", "kill").plugin == "builtin"
    assert registry.errors == [
        "plug-in bad (vigil_test_plugin:broken) failed to load: RuntimeError: plugin bug"
    ]

    # a plug-in action is a valid config value, a plug-in hook runs in the pipeline
    replay = write_replay(tmp_path / "events.jsonl", 5, evil_at=2)
    config = load_config(
        env={},
        overrides=[
            f"data_dir={tmp_path / 'data'}",
            "sensors.kernel=false",
            f"sensors.replay={replay}",
            "actions.high=quarantine",
            "pipeline.hooks=tag",
        ],
        known_actions=registry.names("action"),
    )
    (tmp_path / "data" / "rules").mkdir(parents=True)
    (tmp_path / "data" / "rules" / "test.gen").write_text(json.dumps(RULE))
    agent = Agent(config, registry=registry)
    agent.startup()
    try:
        [alert] = wait_for(lambda: read_jsonl(tmp_path / "data" / "logs" / "alerts.jsonl"))
    finally:
        agent.shutdown()
    assert alert["Event"]["EventData"]["Tagged"] == "by-plugin"
    assert alert["Event"]["Detection"]["Actions"] == ["quarantine"]


def test_cli_rejects_invalid_config_naming_key_and_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[actions]\ncritical = ["report", "nuke"]\n')
    assert main(["agent", "run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration: actions.critical: unknown action 'nuke'" in err
    assert str(path) in err
    assert main(["agent", "doctor", "--set", "spool.max_mb=-3"]) == 2
    assert "spool.max_mb: expected a positive integer, got -3 (command line)" in capsys.readouterr().err


def test_cli_config_default_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agent", "config", "--default"]) == 0
    default = capsys.readouterr().out
    assert "criticality_threshold = 5" in default
    path = tmp_path / "agent.toml"
    path.write_text(default)
    assert main(["agent", "config", "--show", "--config", str(path), "--set", "log_all=true"]) == 0
    shown = capsys.readouterr().out
    assert "log_all = true" in shown
    assert 'dir = "/var/lib/vigil/dumps"' in shown


def test_cli_doctor_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["agent", "doctor", "--json", "--set", f"data_dir={tmp_path}", "--set", "sensors.kernel=false"])
    findings = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_name = {(f["kind"], f["name"]): f for f in findings}
    assert by_name[("output", "jsonl")] == {
        "kind": "output",
        "name": "jsonl",
        "enabled": True,
        "available": True,
        "reasons": [],
        "help": "standalone alerts.jsonl and events.jsonl in output.dir, rotated",
        "plugin": "builtin",
    }
    assert by_name[("action", "report")]["reasons"][-1] == "reporting.enable = false"
    assert by_name[("action", "report")]["enabled"] is False
    assert rc == exit_status_from(findings)


def exit_status_from(findings: list[dict[str, Any]]) -> int:
    return 1 if any(f["enabled"] and not f["available"] for f in findings) else 0


# -- a real `vigil agent run` process ---------------------------------------------------------------


def start_agent(
    tmp_path: Path, config_text: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    config = tmp_path / "agent.toml"
    config.write_text(config_text)
    log = tmp_path / "agent.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vigil", "-v", "agent", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **(env or {})},
        )
    return proc, log


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_vigil_agent_run_standalone_detects_and_drains_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "rules").mkdir(parents=True)
    (data / "rules" / "test.gen").write_text(json.dumps(RULE))
    replay = write_replay(tmp_path / "events.jsonl", 3000, evil_at=1500)
    proc, log = start_agent(
        tmp_path,
        f'data_dir = "{data}"\nstats_interval = 0.2\n[sensors]\nkernel = false\nreplay = "{replay}"\n',
    )
    try:
        alerts = wait_for(lambda: read_jsonl(data / "logs" / "alerts.jsonl"), timeout=60, proc=proc)
        wait_for(lambda: "done, 3000 events emitted" in log.read_text(), timeout=60, proc=proc)
        wait_for(lambda: " stats {" in log.read_text(), timeout=30, proc=proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        stop(proc)
    [alert] = alerts
    assert alert["Event"]["EventData"]["Image"] == "/tmp/vigil-test/evil"
    assert alert["Event"]["Detection"]["Signature"] == ["TestMalware"]
    assert alert["Event"]["Detection"]["Criticality"] == 8
    assert alert["Event"]["Detection"]["Actions"] == ["report", "filedump"]
    text = log.read_text()
    assert "SIGTERM: stopping" in text
    final = json.loads(text.split("final stats ", 1)[1].splitlines()[0])
    assert final["stages"]["intake"]["received"] == 3000
    assert final["stages"]["intake"]["dropped"] == 0
    assert final["stages"]["pipeline"]["received"] == 3000
    assert final["stages"]["detect"]["emitted"] == 1
    assert final["sources"]["replay"] == {"received": 3000, "emitted": 3000, "dropped": 0}


def test_second_sigterm_forces_exit(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _install_plugin(site, PLUGIN, "test = vigil_test_plugin:register")
    data = tmp_path / "data"
    replay = write_replay(tmp_path / "events.jsonl", 2000)
    proc, log = start_agent(
        tmp_path,
        f'data_dir = "{data}"\ndrain_timeout = 120\n[pipeline]\nhooks = ["sleepy"]\n'
        # queued mode: the replay runs ahead of the slow hook, so there is a backlog to drain
        # (inline, the replay waits for each event and there is nothing left to drain)
        "inline = false\n"
        f'[sensors]\nkernel = false\nreplay = "{replay}"\n',
        env={"PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )
    try:
        wait_for(lambda: "agent running" in log.read_text(), timeout=30, proc=proc)
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "SIGTERM: stopping" in log.read_text(), timeout=10, proc=proc)
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM
        assert time.monotonic() - t < 5
    finally:
        stop(proc)
    assert "SIGTERM again: exiting now without draining" in log.read_text()


AUDIT_LOCK = "/run/vigil-audit-tests.lock"  # shared with the sensor tests: audit state is global


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: kernel sources (CI runs as root)")
def test_real_process_raises_an_alert_in_the_standalone_file(tmp_path: Path) -> None:
    import fcntl
    import shutil

    binary = tmp_path / f"vigil-test-{os.getpid()}-{time.monotonic_ns()}"
    shutil.copy("/bin/true", binary)
    data = tmp_path / "data"
    (data / "rules").mkdir(parents=True)
    rule = {
        "Name": "TestBinaryRan",
        "Meta": {"Events": {"Linux-Sysmon/Operational": [1]}, "Criticality": 6, "Schema": "2.0.0"},
        "Matches": [f"$im: Image = '{binary}'"],
        "Condition": "$im",
    }
    (data / "rules" / "test.gen").write_text(json.dumps(rule))
    with open(AUDIT_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # "files" cannot run without watch paths: it is reported and the other sources run
        proc, log = start_agent(
            tmp_path,
            f'data_dir = "{data}"\nstats_interval = 1\n[actions]\nmedium = ["filedump"]\n'
            '[sensors]\nsources = ["proc_connector", "audit", "fanotify_exec", "files"]\n',
        )
        try:
            wait_for(lambda: "agent running" in log.read_text(), timeout=30, proc=proc)
            subprocess.run([str(binary), "first-arg", "second arg"], cwd=tmp_path, check=True)
            [alert] = wait_for(lambda: read_jsonl(data / "logs" / "alerts.jsonl"), timeout=20, proc=proc)
            # filedump ran on the test's own process: its image is in the dump directory
            wait_for(lambda: list((data / "dumps").rglob(f"*_{binary.name}.bin*")), timeout=20, proc=proc)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            stop(proc)
            fcntl.flock(lock, fcntl.LOCK_UN)
    ev = alert["Event"]["EventData"]
    assert ev["Image"] == str(binary)
    assert ev["CommandLine"] == f"{binary} first-arg second arg"
    assert ev["CurrentDirectory"] == str(tmp_path)
    assert ev["User"] == "root"
    assert alert["Event"]["Detection"] == {
        "Signature": ["TestBinaryRan"],
        "Criticality": 6,
        "Actions": ["filedump"],
    }
    if shutil.which("auditctl"):  # the agent removed the audit rules it installed
        rules = subprocess.run(["auditctl", "-l"], capture_output=True, text=True, check=False).stdout
        assert f"vigil-{proc.pid}-" not in rules
    text = log.read_text()
    assert "agent stopped" in text
    running = text.split("agent running", 1)[1].splitlines()[0]
    assert running.endswith("sources proc_connector, audit, fanotify_exec")
    assert "source files is unavailable: " in text


@pytest.mark.root
@pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: fanotify canaries and kernel sources (CI runs as root)"
)
def test_canary_opened_by_a_process_raises_an_alert_naming_it(tmp_path: Path) -> None:
    import fcntl

    # Any process on the machine may touch a decoy (a tmp cleaner, a file walker): on this shared
    # machine the test configures NO action at all, so the agent only reports.
    decoys = tmp_path / "decoys"
    data = tmp_path / "data"
    config = (
        f'data_dir = "{data}"\n'
        "[actions]\nlow = []\nmedium = []\nhigh = []\ncritical = []\n"
        "[canaries]\nenable = true\nactions = []\n"
        f'[[canaries.groups]]\ndirectories = ["{decoys}"]\nfiles = ["passwords.txt"]\n'
    )
    with open(AUDIT_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc, log = start_agent(tmp_path, config)
        try:
            wait_for(lambda: "agent running" in log.read_text(), timeout=30, proc=proc)
            assert (decoys / "passwords.txt").is_file()
            script = f"open({str(decoys / 'passwords.txt')!r}, 'rb').read(1)"
            thief = subprocess.run([sys.executable, "-c", script], check=True)
            assert thief.returncode == 0

            def thief_alerts() -> list[dict[str, Any]]:
                return [
                    a
                    for a in read_jsonl(data / "logs" / "alerts.jsonl")
                    if a["Event"]["System"]["Channel"] == "Vigil/Operational"
                    and a["Event"]["EventData"]["TargetFilename"] == str(decoys / "passwords.txt")
                    and a["Event"]["EventData"]["CommandLine"].endswith(script)
                ]

            [alert] = wait_for(thief_alerts, timeout=20, proc=proc)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            stop(proc)
            fcntl.flock(lock, fcntl.LOCK_UN)
    assert alert["Event"]["EventData"]["Image"] == os.path.realpath(sys.executable)
    assert alert["Event"]["Detection"] == {"Signature": ["Builtin:CanaryAccessed"], "Criticality": 10}
    assert "sent signal" not in log.read_text()  # nothing was acted on
    assert not decoys.exists()  # decoys removed at stop, as WHIDS


def test_systemd_is_told_ready_and_stopping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(address)
        listener.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        agent = Agent(config_for(tmp_path), registry=default_registry(plugins=False))
        agent.startup()
        assert listener.recv(4096) == b"READY=1\nSTATUS=running"
        assert agent.shutdown() == 0
        assert listener.recv(4096) == b"STOPPING=1"


def test_public_api() -> None:
    import vigil.agent

    assert sorted(vigil.agent.__all__) == [
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
    for name in vigil.agent.__all__:
        assert getattr(vigil.agent, name) is not None


def test_restart_in_process_with_a_new_config_and_refuse_a_bad_one(tmp_path: Path) -> None:
    import threading

    first = write_replay(tmp_path / "first.jsonl", 20, evil_at=1)
    second = write_replay(tmp_path / "second.jsonl", 20, evil_at=2)
    alerts_file = tmp_path / "data" / "logs" / "alerts.jsonl"
    config = config_for(tmp_path, f"sensors.replay={first}")
    agent = Agent(config, registry=default_registry(plugins=False))
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(agent.run(install_signals=False)))
    thread.start()
    try:
        wait_for(lambda: len(read_jsonl(alerts_file)) == 1)
        better = config_for(tmp_path, f"sensors.replay={second}", "criticality_threshold=8")
        agent.request_restart(better)
        wait_for(lambda: len(read_jsonl(alerts_file)) == 2)
        assert agent.config is better
        agent.request_restart(config_for(tmp_path, "sensors.sources=nope"))
        # refused: the agent starts again with the previous config (its replay runs once more)
        wait_for(lambda: len(read_jsonl(alerts_file)) == 3)
        assert agent.config is better
        wait_for(lambda: agent.status == {"replay": None})
    finally:
        agent.request_stop()
        thread.join(timeout=30)
    assert codes == [0]
    pids = [a["Event"]["EventData"]["ProcessId"] for a in read_jsonl(alerts_file)]
    assert pids == ["100001", "100002", "100002"]


def test_sighup_reloads_the_config_file_and_keeps_running_on_a_bad_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "rules").mkdir(parents=True)
    (data / "rules" / "test.gen").write_text(json.dumps(RULE))
    first = write_replay(tmp_path / "first.jsonl", 10, evil_at=1)
    second = write_replay(tmp_path / "second.jsonl", 10, evil_at=2)
    alerts = data / "logs" / "alerts.jsonl"
    proc, log = start_agent(tmp_path, f'data_dir = "{data}"\n[sensors]\nkernel = false\nreplay = "{first}"\n')
    config = tmp_path / "agent.toml"
    try:
        wait_for(lambda: len(read_jsonl(alerts)) == 1, proc=proc)
        config.write_text(f'data_dir = "{data}"\n[sensors]\nkernel = false\nreplay = "{second}"\n')
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(read_jsonl(alerts)) == 2, proc=proc)
        config.write_text(f'data_dir = "{data}"\n[spool]\nmax_mb = -3\n')
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: configuration refused" in log.read_text(), proc=proc)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        stop(proc)
    assert [a["Event"]["EventData"]["ProcessId"] for a in read_jsonl(alerts)] == ["100001", "100002"]
    text = log.read_text()
    assert "spool.max_mb: expected a positive integer, got -3" in text
    assert text.count("agent running") == 2


def test_agent_stops_with_status_2_when_neither_config_starts_any_more(tmp_path: Path) -> None:
    import threading

    agent = Agent(config_for(tmp_path), registry=default_registry(plugins=False))
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(agent.run(install_signals=False)))
    thread.start()
    try:
        wait_for(lambda: agent.pipeline is not None and agent.pipeline._accepting)
        (tmp_path / "data" / "rules" / "broken.gen").write_text('{"Name": "Broken"')  # the old config breaks
        agent.request_restart(config_for(tmp_path, "sensors.sources=nope"))
        thread.join(timeout=30)
    finally:
        agent.request_stop()
        thread.join(timeout=30)
    assert codes == [2]
