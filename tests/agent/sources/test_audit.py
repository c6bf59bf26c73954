"""The audit source: record decoding, its own rules (installed, removed, stale ones cleaned), and
coexistence with another audit daemon through the multicast group."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from tests.agent.sensor_helpers import Collector, audit_rules_with, needs_root

from vigil.agent.sources import _auditnl as nl
from vigil.agent.sources import audit as audit_mod
from vigil.agent.sources.audit import AuditSource


def test_parse_record_splits_header_and_fields() -> None:
    body = b'audit(1733330000.123:456): argc=3 a0="/bin/true" a1="canary-arg" a2=77697468207370616365\x00'
    parsed = nl.parse_record(body)
    assert parsed is not None
    ts_ns, serial, fields = parsed
    assert ts_ns == 1733330000_123_000_000 and serial == 456
    assert nl.decode_argv(fields) == ["/bin/true", "canary-arg", "with space"]


def test_decode_argv_joins_split_long_arguments() -> None:
    fields = {"argc": b"2", "a0": b'"x"', "a1_len": b"6", "a1[0]": b"616263", "a1[1]": b"646566"}
    assert nl.decode_argv(fields) == ["x", "abcdef"]


def test_decode_value_handles_null_quotes_and_hex() -> None:
    assert nl.decode_value(b"(null)") is None
    assert nl.decode_value(b'"/tmp/a b"') == "/tmp/a b"
    assert nl.decode_value(b"2F746D702F6120620A") == "/tmp/a b\n"
    assert nl.decode_value(b"1234", hex_allowed=False) == "1234"


def test_decode_sockaddr_ipv4_ipv6_and_unix() -> None:
    assert nl.decode_sockaddr(b"0200001F7F0000010000000000000000") == (2, "127.0.0.1", 31)
    v6 = b"0A000009" + b"00000000" + b"00000000000000000000000000000001" + b"00000000"
    assert nl.decode_sockaddr(v6) == (10, "::1", 9)
    assert nl.decode_sockaddr(b"01002F746D702F736F636B") is None  # AF_UNIX
    assert nl.decode_sockaddr(b"zz") is None


def test_rule_payload_round_trips_through_the_parser() -> None:
    payload = nl.rule_payload(0xC000003E, [59, 322], "vigil-1-abc", exclude_pid=1)
    rule = nl.parse_rule(payload)
    assert rule.syscalls == {59, 322} and rule.key == "vigil-1-abc"
    with pytest.raises(ValueError, match="audit key"):
        nl.rule_payload(0xC000003E, [59], "")


def test_unknown_rule_set_and_mode_are_named() -> None:
    with pytest.raises(ValueError, match=r"\['files'\]"):
        AuditSource(rule_sets=("exec", "files"))
    with pytest.raises(ValueError, match="'both'"):
        AuditSource(mode="both")


@needs_root
def test_rules_are_removed_even_when_the_caller_fails(audit_ready: None) -> None:
    src = AuditSource(rule_sets=("mod",))
    with pytest.raises(RuntimeError, match="test body failed"):
        try:
            src.start(lambda r: None)
            assert audit_rules_with(src.key), "rule installed"
            raise RuntimeError("test body failed")
        finally:
            src.stop()
    assert audit_rules_with(src.key) == []


@needs_root
def test_stale_rules_of_dead_instances_are_cleaned(audit_ready: None) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale_key = f"vigil-{dead.pid}-dead00"
    ctl = nl.open_socket()
    try:
        arch, nums = nl.machine_arch()  # type: ignore[misc]
        nl.request(ctl, nl.AUDIT_ADD_RULE, nl.rule_payload(arch, [nums["delete_module"]], stale_key))
        assert audit_rules_with(stale_key)
        src = AuditSource(rule_sets=("mod",))
        try:
            src.start(lambda r: None)
            assert audit_rules_with(stale_key) == []
        finally:
            src.stop()
    finally:
        for rule, payload in nl.list_rules(ctl):
            if rule.key == stale_key:
                nl.delete_rule(ctl, payload)
        ctl.close()


OTHER_DAEMON = """
import sys, time
sys.path.insert(0, sys.argv[1])
from vigil.agent.sources.audit import AuditSource
src = AuditSource(rule_sets=("mod",), mode="unicast")
src.start(lambda r: None)
print(src.key, flush=True)
try:
    sys.stdin.read()
finally:
    src.stop()
"""


def _daemon_pid() -> int:
    ctl = nl.open_socket()
    try:
        return nl.get_status(ctl).pid
    finally:
        ctl.close()


def _multicast_sees_exec(collector: Collector) -> AuditSource:
    src = AuditSource(rule_sets=("exec",))
    tag = f"mc-{os.getpid()}"
    try:
        src.start(collector)
        assert src.mode == "multicast"
        subprocess.run(["/bin/true", tag], check=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not [r for r in collector.events if tag in r.get("argv", [])]:
            time.sleep(0.02)
    finally:
        src.stop()
    assert [r["argv"] for r in collector.events if tag in r.get("argv", [])] == [["/bin/true", tag]]
    assert audit_rules_with(src.key) == []
    return src


@needs_root
def test_coexists_with_another_audit_daemon_via_multicast(audit_ready: None, collector: Collector) -> None:
    owner = _daemon_pid()
    if owner and os.path.exists(f"/proc/{owner}"):
        # another daemon (auditd, another vigil) already holds the role: read beside it
        _multicast_sees_exec(collector)
        assert _daemon_pid() == owner, "its daemon role is untouched"
        return
    src_dir = os.path.join(os.path.dirname(__file__), "..", "..", "..", "src")
    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_DAEMON, src_dir],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None
        other_key = other.stdout.readline().strip()
        assert _daemon_pid() == other.pid, "the other process holds the audit daemon role"
        _multicast_sees_exec(collector)
        assert audit_rules_with(other_key), "the other daemon's rules are untouched"
        assert _daemon_pid() == other.pid
    finally:
        assert other.stdin is not None
        other.stdin.close()
        other.wait(10)
        other.stdout.close()  # type: ignore[union-attr]
    assert audit_rules_with(other_key) == []


@needs_root
def test_losing_the_daemon_race_falls_back_to_multicast(
    audit_ready: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_set = nl.set_status

    def someone_else_registered(sock, mask, **kw):  # type: ignore[no-untyped-def]
        if mask == nl.AUDIT_STATUS_PID and kw.get("pid"):
            raise nl.AuditError(17, "audit request 1001 refused: File exists")
        return real_set(sock, mask, **kw)

    monkeypatch.setattr(nl, "set_status", someone_else_registered)
    # the faked status has the backlog already raised, so the test changes no global audit state
    backlog = audit_mod._BACKLOG
    monkeypatch.setattr(nl, "get_status", lambda s: nl.AuditStatus(0, 1, 1, 0, 0, backlog, 0, 0))
    src = AuditSource(rule_sets=("mod",))
    try:
        src.start(lambda r: None)
        assert src.mode == "multicast"
    finally:
        src.stop()
    assert audit_rules_with(src.key) == []


def test_header_and_fields_split_without_regexes() -> None:
    body = b'audit(1733330000.123:456): arch=c000003e syscall=59 success=yes comm="true" exe="/usr/bin/true" key=(null)\x00'
    head = nl.parse_header(body)
    assert head is not None
    ts_ns, serial, start = head
    assert (ts_ns, serial) == (1733330000_123_000_000, 456)
    fields = nl.split_fields(body[start:])
    assert fields == {
        b"arch": b"c000003e",
        b"syscall": b"59",
        b"success": b"yes",
        b"comm": b'"true"',
        b"exe": b'"/usr/bin/true"',
        b"key": b"(null)",
    }
    assert nl.parse_header(b"type=SYSCALL msg=audit(1.2:3)") is None
    assert nl.parse_header(b"audit(x.2:3): a=b") is None
    assert nl.decode_argv({b"argc": b"2", b"a0": b'"ls"', b"a1": b"2D6C61"}) == ["ls", "-la"]


@needs_root
def test_backlog_limit_is_raised_for_bursts_and_restored_on_stop(audit_ready: None) -> None:
    ctl = nl.open_socket()
    try:
        original = nl.get_status(ctl).backlog_limit
        nl.set_status(ctl, nl.AUDIT_STATUS_BACKLOG_LIMIT, backlog_limit=1024)
        try:
            src = AuditSource(rule_sets=("mod",))
            src.start(lambda r: None)
            try:
                assert nl.get_status(ctl).backlog_limit == audit_mod._BACKLOG
            finally:
                src.stop()
            assert nl.get_status(ctl).backlog_limit == 1024
        finally:
            nl.set_status(ctl, nl.AUDIT_STATUS_BACKLOG_LIMIT, backlog_limit=original)
    finally:
        ctl.close()
