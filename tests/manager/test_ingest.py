from __future__ import annotations

import hashlib

import orjson

from vigil.manager.ingest import attach_edr_data, edr_data, parse_ndjson
from vigil.manager.testing import make_event


def test_fields_hash_and_body() -> None:
    event = make_event(1, time="2021-10-04T03:47:28.7994921Z", signatures=("A", "B", "A"), criticality=7)
    event["Event"]["EdrData"] = {"Endpoint": {"UUID": "spoofed"}}
    batch = parse_ndjson(orjson.dumps(event), receipt=5)
    [row] = batch.rows
    assert (row.channel, row.event_id, row.criticality, row.signatures) == (
        "Microsoft-Windows-Sysmon/Operational",
        1,
        7,
        ("A", "B"),
    )
    assert row.ts == 1633319248_799492100
    assert b"EdrData" not in row.body and b"spoofed" not in row.body, "EdrData is the manager's to set"
    canonical = orjson.dumps(orjson.loads(row.body), option=orjson.OPT_SORT_KEYS)
    assert row.hash == hashlib.sha1(canonical).hexdigest()


def test_agent_hash_is_kept_and_key_order_does_not_matter_once_edrdata_is_removed() -> None:
    given = make_event(2, hash_="AB" * 20)
    assert parse_ndjson(orjson.dumps(given), 0).rows[0].hash == "ab" * 20
    edr = {"Endpoint": {"UUID": "x"}}
    a = {"Event": {"System": {"EventID": 1, "Channel": "c"}, "EventData": {"x": "1"}, "EdrData": edr}}
    b = {"Event": {"EdrData": edr, "EventData": {"x": "1"}, "System": {"Channel": "c", "EventID": 1}}}
    [row_a], [row_b] = parse_ndjson(orjson.dumps(a), 0).rows, parse_ndjson(orjson.dumps(b), 0).rows
    canonical = b'{"Event":{"EventData":{"x":"1"},"System":{"Channel":"c","EventID":1}}}'
    assert row_a.body == row_b.body == canonical
    assert row_a.hash == row_b.hash == hashlib.sha1(canonical).hexdigest()


def test_a_line_without_edrdata_is_stored_and_hashed_as_received() -> None:
    """The hash contract: such a line is not re-serialized; its hash is the SHA-1 of its bytes."""
    sorted_line = b'{"Event":{"EventData":{"x":"1"},"System":{"Channel":"c","EventID":1}}}'
    unsorted_line = b'{"Event":{"System":{"EventID":1,"Channel":"c"},"EventData":{"x":"1"}}}'
    for line in (sorted_line, unsorted_line):
        [row] = parse_ndjson(line + b"\n", 0).rows
        assert (row.channel, row.event_id) == ("c", 1)
        assert row.body == line and row.hash == hashlib.sha1(line).hexdigest()
    # "\r" ends the line (CRLF): not the compact form, so it is stored canonical (sorted keys).
    [crlf] = parse_ndjson(unsorted_line + b"\r\n", 0).rows
    assert crlf.body == sorted_line and crlf.hash == hashlib.sha1(sorted_line).hexdigest()
    # Blanks inside are kept as received, and EdrData can still be spliced in when read.
    spaced = b'{"Event":{"System":{"Channel":"c"} }}'
    [row] = parse_ndjson(spaced, 0).rows
    assert row.body == spaced
    assert orjson.loads(attach_edr_data(row.body, b'{"X":1}')) == {
        "Event": {"System": {"Channel": "c"}, "EdrData": {"X": 1}}
    }
    # A re-sent batch (the same bytes) gets the same hashes, so it is stored once.
    assert parse_ndjson(unsorted_line, 9).rows[0].hash == hashlib.sha1(unsorted_line).hexdigest()


def test_lines_that_are_not_the_compact_form_are_stored_canonical() -> None:
    canonical = b'{"Event":{"System":{"Channel":"c"}}}'
    for line in (
        b' {"Event":{"System":{"Channel":"c"}}}',  # leading blank
        b'{"Event": {"System": {"Channel": "c"}}}',  # blanks
        b'{"Event":{"System":{"Channel":"c"}},"Other":1}',  # another top-level key is dropped
        b'{"Event":{"System":{"Channel":"c"}} }',  # does not end in "}}"
    ):
        [row] = parse_ndjson(line, 0).rows
        assert row.body == canonical, line
        assert row.hash == hashlib.sha1(canonical).hexdigest()
    [row] = parse_ndjson(b'{"Event":{ }}', 0).rows  # empty: stored canonical, EdrData can be spliced
    assert row.body == b'{"Event":{}}'
    assert orjson.loads(attach_edr_data(row.body, b"{}")) == {"Event": {"EdrData": {}}}


def test_evtx_style_event_id_and_missing_time() -> None:
    event = {"Event": {"System": {"EventID": {"Qualifiers": "16384", "Value": "7045"}, "Channel": "System"}}}
    [row] = parse_ndjson(orjson.dumps(event), receipt=42).rows
    assert (row.event_id, row.ts) == (7045, 42)


def test_edr_data_splice_gives_valid_json() -> None:
    edr = edr_data({"uuid": "u", "ip": "1.2.3.4", "hostname": "h", "grp": "g"}, "ff", True, 10**18)
    for body in (b'{"Event":{"A":1}}', b'{"Event":{}}'):
        merged = orjson.loads(attach_edr_data(body, edr))
        assert merged["Event"]["EdrData"]["Endpoint"] == {
            "UUID": "u",
            "IP": "1.2.3.4",
            "Hostname": "h",
            "Group": "g",
        }
        assert merged["Event"]["EdrData"]["Event"] == {
            "Hash": "ff",
            "Detection": True,
            "ReceiptTime": "2001-09-09T01:46:40Z",
        }
