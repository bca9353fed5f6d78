"""The SQLite file of :class:`~kybernetes.storage.sqlite.SQLiteStore`: its schema, the statements the store runs, opening it.

One table, ``kv``, holds the whole history. Every write (create, update, delete) appends one row,
and the row's ``INTEGER PRIMARY KEY`` *is* the global revision::

    id               revision of this write (= the object's mod_revision)
    name             the key
    created          1 if this write created the key
    deleted          1 if this write deleted the key (a tombstone; value is NULL)
    create_revision  revision at which the current incarnation of the key was created
    prev_revision    the row this write replaced (0 for a create of a never-seen or forgotten key,
                     the tombstone's id for a re-create)
    value            the bytes after the write

The live value of a key is its newest row, unless that row is a tombstone. A snapshot "at revision
R" is the newest row per key with ``id <= R``. ``UNIQUE(name, prev_revision)`` means no two writes can
ever build on the same predecessor, so a compare-and-swap that lost a race could never slip in even
if the in-process check below had a bug; ``(name, id)`` serves the "newest row of a key" lookups.
A ``meta`` table persists the compaction point. ``AUTOINCREMENT`` makes SQLite remember the highest
id ever used, so revisions never go backwards even after compaction removed the newest rows.

The writer connection runs in WAL mode with ``synchronous=FULL`` and incremental auto-vacuum;
:func:`load_state` reads back the revision and the compaction point and cursor kept in ``meta``.
"""

from __future__ import annotations

import os
import sqlite3

from kybernetes.storage.interface import (
    StoreError,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS kv_name_prev ON kv (name, prev_revision);
CREATE INDEX IF NOT EXISTS kv_name_id ON kv (name, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

# Newest row of one key.
SQL_LATEST = "SELECT id, deleted, value, create_revision FROM kv WHERE name = ? ORDER BY id DESC LIMIT 1"

SQL_INSERT = (
    "INSERT INTO kv (id, name, created, deleted, create_revision, prev_revision, value) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)

# Live keys in a name range at a revision. Scanning the (name, id) index keeps the output in name
# order, so LIMIT stops the scan early; NOT EXISTS keeps only the newest row per key at the revision.
SQL_LIST = """
SELECT k.name, k.value, k.create_revision, k.id FROM kv AS k
WHERE k.name >= ? AND k.name < ? AND k.name > ? AND k.id <= ? AND k.deleted = 0
  AND NOT EXISTS (SELECT 1 FROM kv AS n WHERE n.name = k.name AND n.id > k.id AND n.id <= ?)
ORDER BY k.name
LIMIT ?
"""

SQL_COUNT = """
SELECT COUNT(*) FROM kv AS k
WHERE k.name >= ? AND k.name < ? AND k.deleted = 0
  AND NOT EXISTS (SELECT 1 FROM kv AS n WHERE n.name = k.name AND n.id > k.id)
"""

# History for watch replay. The replaced row supplies prev_value; for a create it is either absent
# or a tombstone (whose value is NULL), and the created flag makes prev_value None anyway.
SQL_HISTORY = """
SELECT k.id, k.name, k.created, k.deleted, k.create_revision, k.value, p.value
FROM kv AS k LEFT JOIN kv AS p ON p.id = k.prev_revision
WHERE k.id > ? AND k.name >= ? AND k.name < ?
ORDER BY k.id
LIMIT ?
"""

# Beyond every string SQLite will hold as a key: the upper bound for the empty prefix.
_MAX_KEY = "\U0010ffff" * 4


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    while prefix and prefix[-1] == "\U0010ffff":
        prefix = prefix[:-1]
    if not prefix:
        return _MAX_KEY
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)

# ---------------------------------------------------------------------------------------------
# File setup


def open_writer_connection(path: str, journal_size_limit: int) -> sqlite3.Connection:
    """Open (creating it and its schema if needed) the file's one write connection, in WAL mode."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        # auto_vacuum only takes effect before the first table exists; on old files it is a no-op.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{path}: cannot switch SQLite to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA journal_size_limit = {int(journal_size_limit)}")
        conn.execute("PRAGMA busy_timeout = 1000")
        conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def load_state(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """(current revision, compaction point, compaction cursor) as stored in the file."""
    max_id = conn.execute("SELECT COALESCE(MAX(id), 0) FROM kv").fetchone()[0]
    seq_row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'kv'").fetchone()
    compacted = get_meta(conn, "compact_rev")
    done = get_meta(conn, "compact_done")
    rev = max(int(max_id), int(seq_row[0]) if seq_row else 0, compacted)
    return rev, compacted, done


def get_meta(conn: sqlite3.Connection, key: str) -> int:
    """An integer kept in ``meta`` (0 if never set)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else 0


def set_meta(conn: sqlite3.Connection, key: str, value: int) -> None:
    """Set an integer in ``meta`` (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


__all__ = [
    "SQL_COUNT",
    "SQL_HISTORY",
    "SQL_INSERT",
    "SQL_LATEST",
    "SQL_LIST",
    "get_meta",
    "load_state",
    "open_writer_connection",
    "prefix_end",
    "set_meta",
]


def rename_prefixes(conn: sqlite3.Connection, renames: list[tuple[str, str]], layout: int) -> int:
    """Move every row (history included, revisions unchanged) from each old key prefix to its new
    one, in one transaction, unless the file's ``key_layout`` is already ``layout``. Returns how
    many rows moved. (kybernetes kept keys as /registry/<group or core>/<plural>/ before it used
    kube-apiserver's layout.)"""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if get_meta(conn, "key_layout") >= layout:
            conn.execute("COMMIT")
            return 0
        moved = 0
        for old, new in renames:
            if old == new:
                continue
            cur = conn.execute(
                "UPDATE kv SET name = ? || substr(name, ?) WHERE name >= ? AND name < ?",
                (new, len(old) + 1, old, prefix_end(old)),
            )
            moved += cur.rowcount
        set_meta(conn, "key_layout", layout)
        conn.execute("COMMIT")
        return moved
    except BaseException:
        conn.execute("ROLLBACK")
        raise
