"""Named, forward-only schema migrations for one SQLite connection.

A migration is a name and either a SQL script or a function of the connection. The names
already applied live in a ``_migrations`` table; :func:`migrate` applies the missing ones in
the order given, each in its own transaction, so a failure leaves the database at the last
good step. Old migrations are never edited: a schema change is a new name at the end.

One profile database holds the tables of several components (trace log, vault, ...), each
with its own list of migrations, so every list runs under a ``scope``: a name unknown to
this code is refused only within the scope being migrated.

The connection is a parameter (nothing here opens files), so the SQLCipher connection of a
later store works the same way.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from smallhold.errors import SchemaTooNewError

MIGRATIONS_TABLE = "_migrations"
DEFAULT_SCOPE = "main"


@dataclass(frozen=True)
class Migration:
    """One schema step. A callable ``apply`` runs inside the transaction and must not commit."""

    name: str
    apply: str | Callable[[sqlite3.Connection], None]


def applied_migrations(conn: sqlite3.Connection, scope: str = DEFAULT_SCOPE) -> list[str]:
    """Names recorded in ``_migrations`` for ``scope``, oldest first; empty when fresh."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,)
    ).fetchone()
    if exists is None:
        return []
    rows = conn.execute(
        f"SELECT name FROM {MIGRATIONS_TABLE} WHERE scope = ? ORDER BY applied_at, rowid",
        (scope,),
    ).fetchall()
    return [str(row[0]) for row in rows]


def migrate(
    conn: sqlite3.Connection,
    migrations: Sequence[Migration],
    *,
    scope: str = DEFAULT_SCOPE,
    clock: Callable[[], float] = time.time,
) -> list[str]:
    """Apply the migrations the database lacks, in order; return the names applied now.

    Raises :class:`~smallhold.errors.SchemaTooNewError` when the database records a migration
    this code does not know (it was written by a newer smallhold): nothing is applied then.
    """
    names = [m.name for m in migrations]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate migration names in {names}")
    _check_known(conn, scope, names)
    done: list[str] = []
    saved = conn.isolation_level
    # Manual transactions: the sqlite3 module never opens one around DDL by itself.
    conn.isolation_level = None
    try:
        _create_table(conn)
        for migration in migrations:
            if _apply_one(conn, scope, migration, clock):
                done.append(migration.name)
    finally:
        conn.isolation_level = saved
    return done


def _create_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
        "(scope TEXT NOT NULL, name TEXT NOT NULL, applied_at REAL NOT NULL, "
        "PRIMARY KEY (scope, name))"
    )


def _apply_one(
    conn: sqlite3.Connection, scope: str, migration: Migration, clock: Callable[[], float]
) -> bool:
    # IMMEDIATE takes the write lock first, so two processes opening the same fresh
    # database cannot both apply a step: the second one waits, then sees it recorded.
    conn.execute("BEGIN IMMEDIATE")
    try:
        seen = conn.execute(
            f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE scope = ? AND name = ?",
            (scope, migration.name),
        ).fetchone()
        if seen is not None:
            conn.execute("ROLLBACK")
            return False
        if isinstance(migration.apply, str):
            for statement in _statements(migration.apply):
                conn.execute(statement)
        else:
            migration.apply(conn)
        conn.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} (scope, name, applied_at) VALUES (?, ?, ?)",
            (scope, migration.name, clock()),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return True


def _statements(script: str) -> Iterator[str]:
    """Split a script into statements; ``sqlite3.complete_statement`` knows strings and triggers.

    ``executescript`` would commit our open transaction first, so it cannot be used here.
    """
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                yield buffer
            buffer = ""
    if buffer.strip(" \t\r\n;"):
        yield buffer


def _check_known(conn: sqlite3.Connection, scope: str, names: Sequence[str]) -> None:
    known = set(names)
    unknown = [name for name in applied_migrations(conn, scope) if name not in known]
    if unknown:
        raise SchemaTooNewError(
            f"the database {_describe(conn)} has {scope} schema migrations this version of "
            f"smallhold does not know ({', '.join(unknown)}); a newer smallhold wrote it. "
            "Upgrade smallhold (pip install -U smallhold), or use another profile."
        )


def _describe(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT file FROM pragma_database_list WHERE name = 'main'").fetchone()
    return str(row[0]) if row and row[0] else "(in memory)"


__all__ = ["DEFAULT_SCOPE", "MIGRATIONS_TABLE", "Migration", "applied_migrations", "migrate"]
