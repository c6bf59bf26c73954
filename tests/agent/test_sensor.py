"""The sensor end to end on the real kernel: processes, connects and module loads we cause ourselves."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.sensor_helpers import Collector, audit_rules_with, needs_root
from vigil.agent.sensor import Sensor

PY = os.path.realpath(sys.executable)
TRUE = os.path.realpath("/bin/true")
SH = os.path.realpath("/bin/sh")


def _file_hashes(path: str) -> str:
    raw = Path(path).read_bytes()
    return (
        f"SHA1={hashlib.sha1(raw).hexdigest().upper()},MD5={hashlib.md5(raw).hexdigest().upper()},"
        f"SHA256={hashlib.sha256(raw).hexdigest().upper()}"
    )


@pytest.fixture
def sensor(audit_ready: None, collector: Collector) -> Iterator[Sensor]:
    """proc_connector + audit; this test process is the 'agent' but is not excluded here."""
    s = Sensor(sources=["proc_connector", "audit"], exclude_pids={1_999_999_999})
    key = None
    try:
        s.start(collector)
        assert s.status() == {"proc_connector": None, "audit": None}
        key = s.sources["audit"].key  # type: ignore[attr-defined]
        assert audit_rules_with(key), "the audit source installed its rules"
        yield s
    finally:
        s.stop()
        if key is not None:
            assert audit_rules_with(key) == [], "audit rules removed on stop"


def ed(e: dict) -> dict:  # type: ignore[type-arg]
    return e["Event"]["EventData"]  # type: ignore[no-any-return]


def eid(e: dict) -> int:  # type: ignore[type-arg]
    return int(e["Event"]["System"]["EventID"])


@needs_root
def test_process_create_and_terminate_have_sysmon_fields(
    sensor: Sensor, collector: Collector, tmp_path: Path
) -> None:
    marker = f"vigil-marker-{os.getpid()}"
    sh = subprocess.Popen([SH, "-c", f"sleep 0.1; /bin/true {marker} 'with space'"], cwd=tmp_path)
    assert sh.wait(10) == 0
    creates = collector.wait_for(lambda e: eid(e) == 1 and marker in ed(e).get("CommandLine", ""), count=2)
    assert len(creates) == 2, [
        (ed(e)["Image"], ed(e)["CommandLine"]) for e in collector.events if eid(e) == 1
    ][-8:]
    true_ev = next(e for e in creates if ed(e)["Image"] == TRUE)
    sh_ev = next(e for e in creates if ed(e)["Image"] == SH)
    d = ed(true_ev)
    assert d["CommandLine"] == f"/bin/true {marker} with space"
    assert d["CurrentDirectory"] == str(tmp_path)
    assert d["User"] == "root"
    assert d["ParentImage"] == SH
    assert d["ParentProcessId"] == str(sh.pid)
    assert d["ParentProcessGuid"] == ed(sh_ev)["ProcessGuid"]
    assert d["ParentCommandLine"] == f"{SH} -c sleep 0.1; /bin/true {marker} 'with space'"
    assert d["Hashes"] == _file_hashes(TRUE)
    assert d["Ancestors"].endswith(f"|{PY}|{SH}"), d["Ancestors"]
    assert ed(sh_ev)["ProcessId"] == str(sh.pid)
    assert ed(sh_ev)["Ancestors"].endswith(f"|{PY}")
    system = true_ev["Event"]["System"]
    assert system["Channel"] == "Linux-Sysmon/Operational"
    assert system["Provider"]["Name"] == "Linux-Sysmon"
    assert system["TimeCreated"]["SystemTime"].endswith("Z")
    guid = d["ProcessGuid"]
    terms = collector.wait_for(lambda e: eid(e) == 5 and ed(e)["ProcessGuid"] == guid)
    assert len(terms) == 1
    assert ed(terms[0])["Image"] == TRUE
    assert ed(terms[0])["ProcessId"] == d["ProcessId"]
    # ProcessTerminate comes after ProcessCreate of the same process
    assert collector.events.index(terms[0]) > collector.events.index(true_ev)


@needs_root
def test_short_lived_processes_never_miss_their_command_line(sensor: Sensor, collector: Collector) -> None:
    tag = f"short-{os.getpid()}"
    n = 60
    procs = [subprocess.Popen([TRUE, tag, str(i)]) for i in range(n)]
    for p in procs:
        p.wait()
    creates = collector.wait_for(lambda e: eid(e) == 1 and tag in ed(e)["CommandLine"], count=n)
    assert sorted(ed(e)["CommandLine"] for e in creates) == sorted(f"{TRUE} {tag} {i}" for i in range(n))
    assert {ed(e)["ProcessId"] for e in creates} == {str(p.pid) for p in procs}
    assert all(ed(e)["Image"] == TRUE for e in creates)


CONNECT = """
import socket, sys, time
s = socket.socket()  # blocking: the audited connect() returns the final result
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    print("connected", flush=True)
except OSError as e:
    print("failed", e.errno, flush=True)
time.sleep(1.5)  # keep the socket while the sensor looks it up (loaded machines are slow)
"""

LISTEN = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 18080)); s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept(); c.close()
"""


@needs_root
def test_network_connects_in_own_netns(sensor: Sensor, collector: Collector, netns: str) -> None:
    server = subprocess.Popen(
        ["ip", "netns", "exec", netns, PY, "-c", LISTEN], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        ok = subprocess.run(
            ["ip", "netns", "exec", netns, PY, "-c", CONNECT, "18080"],
            capture_output=True,
            text=True,
            check=True,
        )
        refused = subprocess.run(
            ["ip", "netns", "exec", netns, PY, "-c", CONNECT, "19"],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        server.kill()
        server.wait()
        server.stdout.close()  # type: ignore[union-attr]
    assert ok.stdout.strip() == "connected"
    assert refused.stdout.strip() == "failed 111"
    good = collector.wait_for(lambda e: eid(e) == 3 and ed(e)["DestinationPort"] == "18080")
    bad = collector.wait_for(lambda e: eid(e) == 3 and ed(e)["DestinationPort"] == "19")
    assert len(good) == 1 and len(bad) == 1
    g, b = ed(good[0]), ed(bad[0])
    assert g["DestinationIp"] == "127.0.0.1" and g["Initiated"] == "true"
    assert g["ConnectStatus"] == "success"
    assert g["Protocol"] == "tcp" and g["SourceIp"] == "127.0.0.1" and g["SourcePort"].isdigit()
    assert g["Image"] == PY and g["User"] == "root"
    assert b["ConnectStatus"] == "ECONNREFUSED"
    assert b["ProcessGuid"] != g["ProcessGuid"]


MODULE = (
    "import ctypes; libc = ctypes.CDLL(None, use_errno=True); "
    "r = libc.syscall(313, -1, b'', 0); print(r, ctypes.get_errno())"  # finit_module(-1, "", 0)
)


@needs_root
def test_kernel_module_load_attempt_gives_driver_load(sensor: Sensor, collector: Collector) -> None:
    p = subprocess.run([PY, "-c", MODULE], capture_output=True, text=True, check=True)
    found = collector.wait_for(
        lambda e: eid(e) == 6 and ed(e)["Image"] == PY and ed(e)["Syscall"] == "finit_module"
    )
    mine = found
    assert mine, found
    d = ed(mine[-1])
    assert d["Status"] in ("ENOSYS", "EBADF", "success")  # ENOSYS on kernels without modules
    assert d["Signed"] == "false"
    assert p.stdout.split()[0] == "-1"


@needs_root
def test_agent_and_its_children_are_never_reported(audit_ready: None, collector: Collector) -> None:
    s = Sensor(sources=["proc_connector", "audit"])  # default: exclude this process (the agent)
    try:
        s.start(collector)
        tag = f"self-{os.getpid()}"
        subprocess.run([SH, "-c", f"/bin/true {tag}"], check=True)
        time.sleep(0.5)
    finally:
        s.stop()
    assert collector.find(lambda e: tag in str(e)) == []
    assert s.stats()["excluded"] >= 2


@needs_root
def test_child_forked_right_after_its_parents_exec_names_the_new_parent_image(
    sensor: Sensor, collector: Collector, tmp_path: Path
) -> None:
    """The parent execs a binary the sensor has never seen (its hash takes a while: 24 MiB) and
    forks its child at once; the child's ParentImage must be the parent's new image, not the
    image before the exec (this test process)."""
    parent = tmp_path / "vigil-new-service"
    parent.write_bytes(Path(SH).read_bytes() + b"\0" * (24 << 20))  # trailing bytes: still runs
    parent.chmod(0o755)
    marker = f"vigil-fork-race-{os.getpid()}"
    # the child's binary is hashed already, as on any host: only the parent's exec waits
    subprocess.run([TRUE, f"{marker}-warm-up"], check=True)
    assert collector.wait_for(lambda e: eid(e) == 1 and ed(e)["CommandLine"] == f"{TRUE} {marker}-warm-up")
    proc = subprocess.Popen([str(parent), "-c", f"{TRUE} {marker}; true"], cwd=tmp_path)
    assert proc.wait(10) == 0
    children = collector.wait_for(
        lambda e: eid(e) == 1 and ed(e)["CommandLine"] == f"{TRUE} {marker}", timeout=20
    )
    assert len(children) == 1
    child = ed(children[0])
    assert child["ParentProcessId"] == str(proc.pid)
    assert child["ParentImage"] == str(parent)
    assert child["ParentCommandLine"] == f"{parent} -c {TRUE} {marker}; true"
    parents = collector.find(lambda e: eid(e) == 1 and ed(e)["ProcessId"] == str(proc.pid))
    assert [ed(e)["Image"] for e in parents] == [str(parent)]
    assert child["ParentProcessGuid"] == ed(parents[0])["ProcessGuid"]
    assert child["Ancestors"].endswith(f"|{PY}|{parent}"), child["Ancestors"]
    # the parent's ProcessCreate went first, as it happened
    assert collector.events.index(parents[0]) < collector.events.index(children[0])
