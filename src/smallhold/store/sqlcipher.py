"""Encrypted SQLite connections: SQLCipher 4 (``sqlcipher3-binary``) with ``sqlite-vec`` loaded.

This is the only module that imports the SQLCipher binding. Everything else takes the
connection it returns, typed as :class:`sqlite3.Connection`: the binding is a fork of the
standard module with the same API, but it ships no type information, so the cast here gives
the rest of the store real signatures. Its exception classes are its own, not the standard
module's, hence :data:`DB_ERRORS` and :data:`Row` for callers.

The key is 32 raw bytes handed to SQLCipher as ``x'…'``, so SQLCipher's own PBKDF2 is skipped:
the key is already the output of Argon2id (or random, for keyring and key-file vaults).
SQLCipher cannot tell a wrong key from a damaged file (both read as "file is not a
database"); the vault keeps a key check beside the file to say which it is.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, cast

import sqlcipher3
import sqlite_vec

KEY_BYTES = 32
BUSY_TIMEOUT_S = 10.0
# SQLite's page cache holds pages decrypted; the default 2 MiB would make every vector search
# decrypt the whole vec0 table again. Pages are only allocated as they are used.
DEFAULT_CACHE_MIB = 256

DatabaseError: type[Exception] = sqlcipher3.DatabaseError
OperationalError: type[Exception] = sqlcipher3.OperationalError
IntegrityError: type[Exception] = sqlcipher3.IntegrityError
DB_ERRORS: tuple[type[Exception], ...] = (sqlcipher3.Error, sqlite3.Error)
Row: Any = sqlcipher3.Row


class NotADatabase(Exception):
    """The file did not decrypt to a database: a wrong key, or a damaged or foreign file."""


class EmptyDatabase(Exception):
    """An existing database file holds no pages (it was emptied): SQLite would start afresh."""


def connect(path: Path | str, key: bytes, *, create: bool = True,
            cache_mib: int = DEFAULT_CACHE_MIB) -> sqlite3.Connection:
    """Open ``path`` with ``key``, checked by reading the schema before anything writes.

    WAL journal (encrypted like the main file), foreign keys on, secure_delete so freed pages
    are zeroed, a busy timeout so a second process waits, and ``check_same_thread=False``:
    callers that share it between threads hold their own lock around each transaction.
    Raises :class:`NotADatabase` when the file does not decrypt; the file is left untouched.

    With ``create=False`` the file must be an existing database: SQLite creates a missing
    file on open and reads an empty (0-byte) one as a new database, which would turn an
    emptied vault into a fresh empty one. So the file is opened read-write without
    creation (``mode=rw``), and one with no pages raises :class:`EmptyDatabase` before
    anything is written to it; a missing one raises :class:`FileNotFoundError`.
    """
    if len(key) != KEY_BYTES:
        raise ValueError(f"a vault key is {KEY_BYTES} bytes, got {len(key)}")
    target = Path(path)
    if not create and not target.exists():
        raise FileNotFoundError(str(target))
    name = f"{target.absolute().as_uri()}?mode=rw" if not create else str(target)
    try:
        conn = cast(sqlite3.Connection, sqlcipher3.connect(
            name, timeout=BUSY_TIMEOUT_S, check_same_thread=False, uri=not create))
    except sqlcipher3.OperationalError as exc:
        if not create and not target.exists():  # removed since the check above
            raise FileNotFoundError(str(target)) from exc
        raise
    try:
        # SQLCipher logs decryption failures to stderr by default; we report them ourselves.
        conn.execute("PRAGMA cipher_log_level = NONE")
        conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlcipher3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise NotADatabase(str(exc)) from exc
            raise
        if not create and conn.execute("PRAGMA page_count").fetchone()[0] == 0:
            raise EmptyDatabase(str(target))
        conn.execute("PRAGMA journal_mode = WAL").fetchone()
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute(f"PRAGMA cache_size = {-int(cache_mib) * 1024}")
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        load_vector_extension(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def load_vector_extension(conn: sqlite3.Connection) -> None:
    """Load ``sqlite-vec`` into ``conn``; extension loading is switched off again after."""
    conn.enable_load_extension(True)
    try:
        sqlite_vec.load(conn)
    finally:
        conn.enable_load_extension(False)


def export_copy(conn: sqlite3.Connection, target: Path, key: bytes) -> None:
    """Write the whole database to ``target`` encrypted with ``key`` (``sqlcipher_export``).

    ``target`` must not exist. Used for rekey (write a copy, then rename over) and backups.
    """
    if target.exists():
        raise FileExistsError(str(target))
    conn.execute("ATTACH DATABASE ? AS rekey_target KEY ?", (str(target), f"x'{key.hex()}'"))
    try:
        conn.execute("SELECT sqlcipher_export('rekey_target')").fetchone()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute(f"PRAGMA rekey_target.user_version = {int(version)}")
    finally:
        conn.execute("DETACH DATABASE rekey_target")


def encrypt_plaintext(source: Path, target: Path, key: bytes) -> None:
    """Copy the plain SQLite database ``source`` into a new encrypted ``target``.

    For databases written before the vault existed; ``source`` is only read.
    """
    if target.exists():
        raise FileExistsError(str(target))
    conn = cast(sqlite3.Connection, sqlcipher3.connect(str(source)))
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        conn.execute("ATTACH DATABASE ? AS rekey_target KEY ?", (str(target), f"x'{key.hex()}'"))
        conn.execute("SELECT sqlcipher_export('rekey_target')").fetchone()
        conn.execute("DETACH DATABASE rekey_target")
    finally:
        conn.close()


def is_plaintext_sqlite(path: Path) -> bool:
    """True for an unencrypted SQLite file (its 16-byte magic header is readable)."""
    try:
        with path.open("rb") as handle:
            return handle.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def cipher_version(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA cipher_version").fetchone()
    return str(row[0]) if row else "unknown"


def integrity_problems(conn: sqlite3.Connection) -> list[str]:
    """Pages whose HMAC fails (``cipher_integrity_check``) plus SQLite's own quick check."""
    problems = [str(row[0]) for row in conn.execute("PRAGMA cipher_integrity_check")]
    quick = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
    return problems + [line for line in quick if line != "ok"]


__all__ = [
    "BUSY_TIMEOUT_S",
    "DB_ERRORS",
    "KEY_BYTES",
    "DatabaseError",
    "EmptyDatabase",
    "IntegrityError",
    "NotADatabase",
    "OperationalError",
    "Row",
    "cipher_version",
    "connect",
    "encrypt_plaintext",
    "export_copy",
    "integrity_problems",
    "is_plaintext_sqlite",
    "load_vector_extension",
]
