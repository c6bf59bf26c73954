"""Tables and indexes of the manager database (portable SQL: SQLite now, PostgreSQL later).

Duplicate events are found by the unique index on ``(event_time, hash)``, not on ``hash`` alone:
``event_time`` is the event's own time (0 when it has none), which is part of what the hash covers,
so a re-sent copy has the same key, and since agents send events roughly in time order, new keys land
at the end of the index. A unique index on the hash alone puts each new key at a random place: every
commit then rewrites hundreds of scattered index pages, which cost 3x the CPU of the whole insert.
"""

from __future__ import annotations

__all__ = ["SCHEMA", "SCHEMA_VERSION"]

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    uuid TEXT PRIMARY KEY, identifier TEXT NOT NULL UNIQUE, key_hash TEXT NOT NULL UNIQUE,
    grp TEXT NOT NULL DEFAULT '', description TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS endpoints (
    uuid TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, hostname TEXT NOT NULL DEFAULT '',
    ip TEXT NOT NULL DEFAULT '', grp TEXT NOT NULL DEFAULT '', criticality INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT '', system_info TEXT, config TEXT, command TEXT,
    last_event BIGINT NOT NULL DEFAULT 0, last_detection BIGINT NOT NULL DEFAULT 0,
    last_connection BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, hash TEXT NOT NULL, endpoint TEXT NOT NULL, ts BIGINT NOT NULL,
    event_time BIGINT NOT NULL, receipt BIGINT NOT NULL, channel TEXT NOT NULL, event_id INTEGER NOT NULL,
    criticality INTEGER NOT NULL, detection INTEGER NOT NULL, body BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS events_dedupe ON events (event_time, hash);
CREATE INDEX IF NOT EXISTS events_endpoint_ts ON events (endpoint, ts);
CREATE INDEX IF NOT EXISTS events_channel_eid ON events (channel, event_id);
CREATE TABLE IF NOT EXISTS detections (
    id INTEGER PRIMARY KEY, endpoint TEXT NOT NULL, ts BIGINT NOT NULL,
    criticality INTEGER NOT NULL, signatures TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS detections_endpoint_ts ON detections (endpoint, ts);
CREATE INDEX IF NOT EXISTS detections_criticality ON detections (criticality, ts);
CREATE TABLE IF NOT EXISTS detection_signatures (signature TEXT NOT NULL, id BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS detection_signatures_sig ON detection_signatures (signature, id);
CREATE TABLE IF NOT EXISTS reports (endpoint TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS archived_reports (
    id INTEGER PRIMARY KEY, endpoint TEXT NOT NULL, archived BIGINT NOT NULL, report TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS archived_reports_endpoint ON archived_reports (endpoint, archived);
CREATE TABLE IF NOT EXISTS iocs (
    id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, guuid TEXT NOT NULL, source TEXT NOT NULL,
    value TEXT NOT NULL, type TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS iocs_value ON iocs (value);
CREATE TABLE IF NOT EXISTS rules (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sysmon_configs (
    os TEXT NOT NULL, version TEXT NOT NULL, xml TEXT NOT NULL, config TEXT NOT NULL,
    sha256 TEXT NOT NULL, PRIMARY KEY (os, version));
CREATE TABLE IF NOT EXISTS tools (
    os TEXT NOT NULL, name TEXT NOT NULL, uuid TEXT NOT NULL, alias TEXT NOT NULL DEFAULT '',
    md5 TEXT NOT NULL, sha1 TEXT NOT NULL, sha256 TEXT NOT NULL, sha512 TEXT NOT NULL,
    binary BLOB NOT NULL, PRIMARY KEY (os, name));
"""
