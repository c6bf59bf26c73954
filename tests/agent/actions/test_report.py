"""IR report: processes with ancestry and hashes, shared objects, kernel modules, sockets, commands."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.agent.actions._inventory import kernel_modules
from vigil.agent.actions.errors import InvalidInput
from vigil.agent.actions.report import ReportCommand, ReportOptions, build_report, run_command

from .conftest import ProcessInfo, needs_root, unique_copy


@pytest.fixture
def test_process(tmp_path: Path):
    binary = unique_copy("/bin/sleep", tmp_path / "suspicious")
    proc = subprocess.Popen([str(binary), "60"], cwd=tmp_path)
    try:
        yield proc, binary
    finally:
        proc.kill()
        proc.wait()


@needs_root
def test_report_describes_a_test_process(test_process, tmp_path: Path) -> None:
    proc, binary = test_process
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        tracked = ProcessInfo(pid=proc.pid, ppid=os.getpid(), guid="{test-guid}", image=str(binary))
        dns = [{"QueryName": "c2.example.test", "QueryResults": "10.9.9.9", "ProcessId": str(proc.pid)}]
        report = build_report(
            brief=True, processes=[tracked], dns=dns, last_files={"{test-guid}": ["/etc/shadow"]}
        )
    finally:
        listener.close()
    rec = report["processes"]["{test-guid}"]
    assert rec["pid"] == proc.pid and rec["image"] == str(binary)
    assert rec["command-line"] == f"{binary} 60" and rec["cwd"] == str(tmp_path)
    assert rec["parent-image"] == os.readlink(f"/proc/{os.getpid()}/exe")
    assert rec["ancestors"][-1] == rec["parent-image"]
    assert rec["hashes"]["sha256"] == hashlib.sha256(binary.read_bytes()).hexdigest()
    assert any("libc" in m for m in rec["modules"])
    assert rec["last-accessed"] == ["/etc/shadow"]
    assert report["dns"] == dns
    mine = [c for c in report["connections"] if c["local-port"] == port and c["protocol"] == "tcp"]
    assert mine and mine[0]["state"] == "LISTEN" and mine[0]["pid"] == os.getpid()
    libc = [m for m in report["modules"] if "libc.so" in m["image"]]
    assert libc and len(libc[0]["hashes"]["sha256"]) == 64 and libc[0]["load-count"] >= 1
    assert report["commands"] == [], "brief runs no commands"
    assert report["start-timestamp"] <= report["stop-timestamp"]


def test_kernel_modules_absent_is_said(tmp_path: Path) -> None:
    out = kernel_modules(str(tmp_path / "modules"))
    assert out == {
        "available": False,
        "reason": f"{tmp_path}/modules is absent: this kernel has no loadable module support",
    }


def test_kernel_modules_parsed(tmp_path: Path) -> None:
    fake = tmp_path / "modules"
    fake.write_text(
        "nf_tables 270336 3 nft_ct,nft_reject, Live 0x0000000000000000\nveth 36864 0 - Live 0x0\n"
    )
    out = kernel_modules(str(fake))
    assert out["available"] is True
    assert out["modules"][0] == {
        "name": "nf_tables",
        "size": 270336,
        "refcount": "3",
        "used-by": ["nft_ct", "nft_reject"],
        "state": "Live",
    }
    assert out["modules"][1]["used-by"] == []


def test_full_report_runs_configured_commands() -> None:
    opts = ReportOptions(
        commands=[
            ReportCommand(sys.executable, ("-c", "print('{\"a\": 1}')"), "json", expect_json=True),
            ReportCommand(sys.executable, ("-c", "print('plain')"), "text"),
            ReportCommand("vigil-no-such-command-xyz", (), "missing"),
            ReportCommand(sys.executable, ("-c", "import time; time.sleep(5)"), "slow", timeout=0.2),
        ],
        osquery_tables=(),
    )
    report = build_report(options=opts)
    by_desc = {c.get("description"): c for c in report["commands"]}
    assert by_desc["json"]["stdout"] == {"a": 1} and by_desc["json"]["error"] == ""
    assert by_desc["text"]["stdout"] == "plain\n"
    assert by_desc["missing"]["error"] == "vigil-no-such-command-xyz: not installed"
    assert by_desc["slow"]["error"] == "timed out after 0.2s"
    if not any(c["name"] == "osqueryi" and c.get("stdout") is not None for c in report["commands"]):
        assert any(c.get("error") == "osqueryi: not installed" for c in report["commands"])


def test_bad_json_output_is_reported() -> None:
    entry = run_command(ReportCommand(sys.executable, ("-c", "print('nope')"), expect_json=True), 5)
    assert entry["stdout"] == "nope\n" and entry["error"].startswith("output is not JSON")


def test_bad_command_config_is_named() -> None:
    with pytest.raises(InvalidInput, match="args must be a list of strings"):
        ReportCommand("ls", "-la")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="non-empty string"):
        ReportCommand("")
    with pytest.raises(InvalidInput, match="not an osquery table name"):
        ReportOptions(osquery_tables=("processes; drop",))
