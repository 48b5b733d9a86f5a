"""Opening the one SQLite database of a profile.

Plain ``sqlite3`` for now; a later change swaps in SQLCipher behind :func:`open_database`,
so callers take the connection it returns and never call ``sqlite3.connect`` themselves.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from smallhold.errors import SmallholdError
from smallhold.paths import DEFAULT_PROFILE, Paths

DB_FILENAME = "smallhold.db"
BUSY_TIMEOUT_S = 10.0


def profile_db_path(paths: Paths, profile: str = DEFAULT_PROFILE) -> Path:
    """``<profile_dir>/smallhold.db``; nothing is created."""
    return paths.profile_dir(profile) / DB_FILENAME


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path``, ready for several threads.

    WAL journal, foreign keys on, a busy timeout so a second process waits instead of
    failing, and ``check_same_thread=False``: callers that share the connection between
    threads hold their own lock around each transaction.

    A file that exists but is not a SQLite database raises
    :class:`~smallhold.errors.SmallholdError` and is left exactly as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    except sqlite3.Error as exc:
        raise SmallholdError(
            f"cannot open the database {path} ({exc}). Check that the folder is writable "
            "and that the path is a file, not a directory."
        ) from exc
    try:
        # Read the header before any pragma can write: a foreign file fails here untouched.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        conn.execute("PRAGMA journal_mode = WAL").fetchone()
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise SmallholdError(
                f"the database {path} is locked by another process; close other smallhold "
                "processes using this profile and try again."
            ) from exc
        raise SmallholdError(
            f"{path} is not a SQLite database ({exc}); nothing in it was changed. "
            "Move the file aside (for example rename it to smallhold.db.bak) and run "
            "again to start a new database, or restore it from a backup."
        ) from exc
    return conn


__all__ = ["BUSY_TIMEOUT_S", "DB_FILENAME", "open_database", "profile_db_path"]
