"""An open vault database: one connection, one lock, and the identity of this device.

Every component that keeps user data (collections, memory, sync, the trace log) borrows a
:class:`VaultHandle` and runs its statements inside :meth:`VaultHandle.transaction` (or under
:attr:`VaultHandle.lock` for reads), so threads of one process never interleave transactions
on the shared connection. How the key was found and the file opened is
:mod:`smallhold.store.vault`'s business; a handle only holds the result.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

from smallhold.store.migrations import Migration, migrate

META_SCOPE = "vault"
META_MIGRATIONS = (
    Migration(
        "0001_vault_meta",
        "CREATE TABLE vault_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
)


class VaultHandle:
    """The open, decrypted database of one profile."""

    def __init__(self, conn: sqlite3.Connection, *, path: Path | None, profile: str) -> None:
        self.conn = conn
        self.path = path
        self.profile = profile
        self.lock = threading.RLock()
        with self.lock:
            migrate(conn, META_MIGRATIONS, scope=META_SCOPE)
            self.device_id = self._device_id()

    def _device_id(self) -> str:
        """A random id for this copy of the vault, made once; sync and records carry it."""
        row = self.conn.execute("SELECT value FROM vault_meta WHERE key = 'device_id'").fetchone()
        if row is not None:
            return str(row[0])
        device = uuid.uuid4().hex
        with self.transaction() as conn:
            conn.execute("INSERT INTO vault_meta (key, value) VALUES ('device_id', ?)", (device,))
        return device

    def meta(self, key: str) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT value FROM vault_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO vault_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def migrate(self, migrations: tuple[Migration, ...] | list[Migration], scope: str) -> None:
        """Apply a component's named migrations (see :mod:`smallhold.store.migrations`)."""
        with self.lock:
            migrate(self.conn, migrations, scope=scope)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` under the lock; rolled back if the body raises.

        IMMEDIATE takes SQLite's write lock at the start, so two processes never both read
        a state and then write from it. Nested use inside one thread joins the outer one.
        """
        with self.lock:
            if self.conn.in_transaction:
                yield self.conn
                return
            saved = self.conn.isolation_level
            self.conn.isolation_level = None
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
                self.conn.execute("COMMIT")
            finally:
                self.conn.isolation_level = saved

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = ["META_SCOPE", "VaultHandle"]
