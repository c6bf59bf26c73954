"""The sandbox: where simulations may act, what they record, and how they are stopped."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from vigil.simulate import Sandbox
from vigil.simulate.sandbox import SIM_PREFIX, resolve_program


def test_root_is_private_under_tmp_and_removed() -> None:
    with Sandbox() as sb:
        root = sb.root
        assert root.parent == Path("/tmp") and root.name.startswith(SIM_PREFIX)
        assert (root.stat().st_mode & 0o777) == 0o700
        sb.write_file(sb.path("a", "b", "c.txt"), "x")
    assert not root.exists()


def test_register_refuses_paths_not_named_like_the_simulation() -> None:
    with Sandbox() as sb, pytest.raises(ValueError, match="refusing to register /etc/passwd"):
        sb.register(Path("/etc/passwd"))
    assert Path("/etc/passwd").exists()


def test_run_records_the_real_image_command_line_and_parent() -> None:
    with Sandbox() as sb:
        done = sb.run(["sh", "-c", "echo hi"], children=[("echo", "echo hi")])
        assert done.returncode == 0 and done.stdout == "hi\n"
        parent, child = [e.data for e in sb.expected]
    assert parent["Image"] == os.path.realpath("/bin/sh") == resolve_program("sh")
    assert parent["CommandLine"] == "sh -c echo hi"
    assert child["ParentImage"] == parent["Image"] and child["ParentCommandLine"] == "sh -c echo hi"
    assert child["Image"] == resolve_program("echo")


def test_run_kills_its_process_group_on_timeout() -> None:
    with Sandbox() as sb:
        pidfile = sb.path("pid")
        start = time.monotonic()
        sb.run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], timeout=0.5)
        assert time.monotonic() - start < 10
        grandchild = int(pidfile.read_text())
    for _ in range(50):  # the grandchild was in our process group: it is gone too
        if (
            not Path(f"/proc/{grandchild}").exists()
            or "Z" in Path(f"/proc/{grandchild}/stat").read_text().split()[2]
        ):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the sleep started by the timed-out step is still running")


def test_missing_program_is_a_skip_with_its_name() -> None:
    from vigil.simulate import ScenarioSkipped

    with Sandbox() as sb, pytest.raises(ScenarioSkipped, match="vigil-no-such-tool is not installed"):
        sb.run(["vigil-no-such-tool"])


def test_closed_port_refuses_connections_and_cannot_be_taken_until_cleanup() -> None:
    import socket

    with Sandbox() as sb:
        port = sb.closed_port()
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))  # nobody can listen there while the steps run
    with socket.socket() as after:
        after.bind(("127.0.0.1", port))  # released at cleanup


def test_expected_event_has_the_sysmon_shape() -> None:
    with Sandbox() as sb:
        sb.run(["true"])
        event = sb.expected[0].to_event(computer="host-1")
    system = event["Event"]["System"]
    assert system["Channel"] == "Linux-Sysmon/Operational" and system["EventID"] == 1
    assert system["Computer"] == "host-1" and system["TimeCreated"]["SystemTime"].endswith("Z")
    assert event["Event"]["EventData"]["CommandLine"] == "true"
