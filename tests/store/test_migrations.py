from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from smallhold.errors import SmallholdError
from smallhold.store import sqlcipher
from smallhold.store.migrations import Migration, applied_migrations, migrate


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlcipher.connect(tmp_path / "smallhold.db", os.urandom(sqlcipher.KEY_BYTES))
    yield connection
    connection.close()


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows}


STEPS = [
    Migration("0001_notes", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"),
    Migration(
        "0002_tags_and_trigger",
        """
        CREATE TABLE tags (note_id INTEGER REFERENCES notes(id), tag TEXT);
        -- a trigger body holds semicolons: the splitter must keep it whole
        CREATE TRIGGER notes_gone AFTER DELETE ON notes BEGIN
            DELETE FROM tags WHERE note_id = old.id;
        END;
        INSERT INTO notes (body) VALUES ('a; b');
        """,
    ),
    Migration("0003_python", lambda c: c.execute("ALTER TABLE notes ADD COLUMN pinned INTEGER")),
]


def test_applies_in_order_and_is_idempotent(conn: sqlite3.Connection) -> None:
    ticks = iter(range(100))
    assert migrate(conn, STEPS, clock=lambda: float(next(ticks))) == [m.name for m in STEPS]
    assert applied_migrations(conn) == [m.name for m in STEPS]
    assert {"notes", "tags", "_migrations"} <= _tables(conn)
    assert conn.execute("SELECT body FROM notes").fetchall() == [("a; b",)]
    assert conn.execute("SELECT applied_at FROM _migrations ORDER BY rowid").fetchall() == [
        (0.0,), (1.0,), (2.0,)
    ]

    assert migrate(conn, STEPS) == []
    assert conn.execute("SELECT count(*) FROM notes").fetchone() == (1,)


def test_new_migrations_are_appended(conn: sqlite3.Connection) -> None:
    assert migrate(conn, STEPS[:1]) == ["0001_notes"]
    assert migrate(conn, STEPS) == ["0002_tags_and_trigger", "0003_python"]


def test_failed_migration_rolls_back_alone(conn: sqlite3.Connection) -> None:
    broken = [*STEPS[:1], Migration("0002_bad", "CREATE TABLE half (x); SELECT * FROM nowhere;")]
    with pytest.raises(sqlcipher.OperationalError):
        migrate(conn, broken)
    assert applied_migrations(conn) == ["0001_notes"]
    assert "half" not in _tables(conn)
    assert not conn.in_transaction


def test_unknown_applied_migration_is_refused(conn: sqlite3.Connection) -> None:
    migrate(conn, [*STEPS, Migration("0004_from_the_future", "CREATE TABLE later (x);")])
    with pytest.raises(SmallholdError) as info:
        migrate(conn, STEPS)
    message = str(info.value)
    assert "0004_from_the_future" in message
    assert "smallhold.db" in message and "Upgrade" in message


def test_scopes_are_independent(conn: sqlite3.Connection) -> None:
    migrate(conn, STEPS[:1], scope="vault")
    other = [Migration("0001_rows", "CREATE TABLE rows_ (x);")]
    assert migrate(conn, other, scope="trace") == ["0001_rows"]
    assert applied_migrations(conn, "vault") == ["0001_notes"]
    assert applied_migrations(conn, "trace") == ["0001_rows"]


def test_duplicate_names_are_a_programming_error(conn: sqlite3.Connection) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        migrate(conn, [STEPS[0], STEPS[0]])


def test_encrypted_connection_settings(tmp_path: Path) -> None:
    path = tmp_path / "smallhold.db"
    conn = sqlcipher.connect(path, os.urandom(sqlcipher.KEY_BYTES))
    try:
        assert path.exists()
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert conn.execute("PRAGMA secure_delete").fetchone() == (1,)
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
        assert conn.execute("SELECT vec_version()").fetchone()[0].startswith("v")
        assert sqlcipher.cipher_version(conn).startswith("4.")
    finally:
        conn.close()
