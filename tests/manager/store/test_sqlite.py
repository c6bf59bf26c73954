"""The SQLite store: dedupe, group commit isolation, reports that survive reopening, search order."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from vigil.manager.errors import Conflict, NotFound
from vigil.manager.scoring import RuleInfo
from vigil.manager.store import EventRow, SearchQuery, SQLiteStore

EP = "3a6eecd2-d8bd-4ca6-8fcd-e48b130086a4"


def row(n: int, ts: int, sigs: tuple[str, ...] = (), crit: int = 0) -> EventRow:
    body = b'{"Event":{"EventData":{"N":"%d"}}}' % n
    return EventRow(f"{n:040x}", ts, "chan", 1, crit, sigs, body)


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = SQLiteStore(tmp_path / "m.db", sync_full=False)
    s.create_endpoint({"uuid": EP, "key_hash": "k" * 64})
    yield s
    s.close()


def test_duplicates_are_stored_once(store: SQLiteStore) -> None:
    first = store.ingest(EP, [row(1, 10), row(2, 20)], {})
    again = store.ingest(EP, [row(2, 20), row(3, 30)], {})
    assert (first.stored, first.duplicates) == (2, 0)
    assert (again.stored, again.duplicates) == (1, 1)
    found = store.search(SearchQuery(EP, 0, 100))
    assert [r["ts"] for r in found] == [10, 20, 30]


def test_search_order_limit_skip_and_detections(store: SQLiteStore) -> None:
    store.ingest(EP, [row(i, i * 10, ("S",) if i % 2 else ()) for i in range(10)], {})
    assert [r["ts"] for r in store.search(SearchQuery(EP, 0, 1000, limit=3))] == [0, 10, 20]
    assert [r["ts"] for r in store.search(SearchQuery(EP, 0, 1000, limit=3, descending=True))] == [90, 80, 70]
    assert [r["ts"] for r in store.search(SearchQuery(EP, 0, 1000, limit=2, skip=3))] == [30, 40]
    assert [r["ts"] for r in store.search(SearchQuery(EP, 15, 55, detections_only=True))] == [30, 50]
    assert store.get_endpoint(EP)["last_detection"] == 90  # type: ignore[index]


def test_concurrent_ingests_of_one_endpoint_all_reach_the_report(store: SQLiteStore) -> None:
    def ingest(worker: int) -> None:
        for batch in range(20):
            base = worker * 100_000 + batch * 100
            store.ingest(EP, [row(base + i, base + i, ("Sig",)) for i in range(5)], {})

    threads = [threading.Thread(target=ingest, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.report_states()[EP].alerts == 8 * 20 * 5


def test_reports_survive_reopening(tmp_path: Path) -> None:
    rules = {"Known": RuleInfo(7, ("T1003",), ("credential-access",))}
    store = SQLiteStore(tmp_path / "m.db", sync_full=False)
    store.create_endpoint({"uuid": EP, "key_hash": "k" * 64})
    store.ingest(EP, [row(1, 5, ("Known", "Other"))], rules)
    before = store.report_states()[EP].to_json()
    store.close()
    reopened = SQLiteStore(tmp_path / "m.db", sync_full=False)
    try:
        state = reopened.report_states()[EP]
        assert state.to_json() == before
        assert state.sum_rule_crit == 7 and state.techniques == ["T1003"]
        assert reopened.archive_report(EP, {"score": 1}, 99) is True
        assert EP not in reopened.report_states()
        assert reopened.archived_reports(EP, 0, 100, 10) == [{"archived": 99, "report": {"score": 1}}]
    finally:
        reopened.close()


def test_a_failing_write_does_not_undo_the_others(store: SQLiteStore) -> None:
    store.create_user({"uuid": "u1", "identifier": "alice", "key_hash": "h1"})
    errors: list[Exception] = []

    def create(n: int) -> None:
        try:
            store.create_user(
                {"uuid": f"x{n}", "identifier": "bob" if n % 2 else f"user{n}", "key_hash": f"k{n}"}
            )
        except Conflict as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = {u["identifier"] for u in store.list_users()}
    assert names == {"alice", "bob", *(f"user{n}" for n in range(0, 20, 2))}
    assert len(errors) == 9, "every duplicate 'bob' but the first is refused"
    with pytest.raises(NotFound):
        store.update_user("missing", {"grp": "x"})


def test_commands_are_handed_out_once_and_completed_once(store: SQLiteStore) -> None:
    store.update_endpoint(EP, {"command": {"uuid": "c1", "name": "ls", "sent": False, "completed": False}})
    taken = store.take_command(EP, 10**18)
    assert taken is not None and taken["sent"] is True and taken["sent-time"].startswith("2001-09-09")
    assert store.take_command(EP, 10**18) is None
    assert store.complete_command(EP, {"uuid": "other", "stdout": "x"}) is False, "uuid must match"
    assert store.complete_command(EP, {"uuid": "c1", "stdout": "eA=="}) is True
    assert store.complete_command(EP, {"uuid": "c1", "stdout": "again"}) is False
    assert store.get_endpoint(EP)["command"]["stdout"] == "eA=="  # type: ignore[index]


def test_touches_are_batched_and_visible(store: SQLiteStore) -> None:
    store.touch_endpoint(EP, "10.0.0.1", 1234)
    endpoint = store.get_endpoint(EP)
    assert endpoint is not None and (endpoint["ip"], endpoint["last_connection"]) == ("10.0.0.1", 1234)
