"""The SQLite store: dedupe, group commit isolation, reports that survive reopening, search order."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from vigil.manager.errors import Conflict, NotFound, StoreError
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


def test_an_event_without_its_own_time_is_deduplicated_by_hash(store: SQLiteStore) -> None:
    untimed = EventRow("cd" * 20, 1_000, "chan", 1, 0, (), b'{"Event":{}}', timed=False)
    resent = untimed._replace(ts=2_000)  # received again later: another receipt time, same event
    assert store.ingest(EP, [untimed], {}).stored == 1
    again = store.ingest(EP, [resent], {})
    assert (again.stored, again.duplicates) == (0, 1)
    assert [r["ts"] for r in store.search(SearchQuery(EP, 0, 10_000))] == [1_000]


def test_same_hash_with_another_event_time_is_another_event(store: SQLiteStore) -> None:
    """The dedupe key is (own time, hash): a re-sent event has both; a colliding hash does not."""
    first = store.ingest(EP, [row(1, 10)], {})
    other = store.ingest(EP, [row(1, 10)._replace(ts=11)], {})
    assert (first.stored, other.stored) == (1, 1)


def test_dedupe_across_one_group_commit(store: SQLiteStore) -> None:
    """Overlapping batches that land in the same transaction store each event once, and every
    caller gets its answer only after that transaction committed."""
    running, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection, after: list[object]) -> None:
        running.set()
        release.wait(30)

    held = threading.Thread(target=store._writer.call, args=(hold,))
    held.start()  # the writer is busy: the ingests below queue up and are grouped together
    assert running.wait(30)
    results: list[tuple[int, int]] = []

    def ingest(k: int) -> None:
        outcome = store.ingest(EP, [row(n, n * 10) for n in range(k, k + 10)], {})
        results.append((outcome.stored, outcome.duplicates))

    callers = [threading.Thread(target=ingest, args=(k,)) for k in (0, 5, 10, 0)]
    for caller in callers:
        caller.start()
    deadline = 200
    while store._writer._queue.qsize() < len(callers) and deadline:
        threading.Event().wait(0.01)
        deadline -= 1
    assert store._writer._queue.qsize() == len(callers), "all four ingests wait in one queue"
    assert not results, "nobody is answered before the commit"
    release.set()
    for thread in (held, *callers):
        thread.join(30)
    assert len(results) == 4
    assert sum(stored for stored, _ in results) == 20, "40 events sent, 20 distinct"
    assert sum(dupes for _, dupes in results) == 20
    assert (0, 10) in results, "the second copy of batch 0 is all duplicates, whatever the order"
    stored = [r["ts"] for r in store.search(SearchQuery(EP, 0, 10**6, limit=100))]
    assert stored == [n * 10 for n in range(20)], "events 0-19 once each"


def test_a_schema_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE events (
            id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE, endpoint TEXT NOT NULL, ts BIGINT NOT NULL,
            receipt BIGINT NOT NULL, channel TEXT NOT NULL, event_id INTEGER NOT NULL,
            criticality INTEGER NOT NULL, detection INTEGER NOT NULL, body BLOB NOT NULL);
        CREATE INDEX events_endpoint_ts ON events (endpoint, ts);
        CREATE INDEX events_channel_eid ON events (channel, event_id);
        """
    )
    old.execute(
        "INSERT INTO events VALUES (7, ?, ?, 10, 99, 'chan', 1, 0, 0, ?)",
        (f"{1:040x}", EP, b'{"Event":{"EventData":{"N":"1"}}}'),
    )
    old.commit()
    old.close()
    store = SQLiteStore(path, sync_full=False)
    try:
        again = store.ingest(EP, [row(1, 10), row(2, 20)], {})
        assert (again.stored, again.duplicates) == (1, 1), "the old row still dedupes"
        found = store.search(SearchQuery(EP, 0, 100))
        assert (found[0]["ts"], found[0]["receipt"]) == (10, 99)
    finally:
        store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone() == ("2",)
    assert conn.execute("SELECT id FROM events WHERE ts = 10").fetchone() == (7,), "ids kept"
    assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'events_v1'").fetchone() == (0,)
    conn.close()


def test_a_database_of_an_unknown_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '9')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema 9"):
        SQLiteStore(path, sync_full=False)
