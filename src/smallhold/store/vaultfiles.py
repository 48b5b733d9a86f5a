"""The files of a profile's vault: their names, ``vault.json``, and how they reach the disk.

Everything else in the vault's life (opening, rekey, export, crash recovery) reads and writes
the same few files, so their names, the metadata format and the durable-write helpers live
here, below all of them: ``smallhold.db`` (SQLCipher), ``vault.json`` (how to find the key,
no secret), ``vault.lock``, and the temporary names a cut-short init, rekey or export leaves.

The database is opened only through :func:`open_db`, which never creates it: a
``smallhold.db`` that is missing, emptied (0 bytes) or cut short while ``vault.json`` exists
is :class:`VaultCorruptError` pointing to the ``vault export`` backups, never a fresh empty
vault that hides the loss.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from smallhold.errors import StoreError, VaultCorruptError
from smallhold.paths import DEFAULT_PROFILE, Paths
from smallhold.store import keys, sqlcipher

KeySource = Literal["passphrase", "keyring", "keyfile"]
KEY_SOURCES: tuple[KeySource, ...] = ("passphrase", "keyring", "keyfile")
FORMAT = 1
DB_FILENAME = "smallhold.db"
META_FILENAME = "vault.json"
LOCK_FILENAME = "vault.lock"
SQLITE_SIDECARS = ("-journal", "-wal", "-shm")
EXPORT_RECORD_PREFIX = "vault.export-"


@dataclass(frozen=True)
class VaultFiles:
    """The files of one profile's vault; nothing is created by naming them.

    ``config_dir`` is the home's config folder: key files inside it are named relative to
    it in ``vault.json``.
    """

    folder: Path
    config_dir: Path | None = None

    @property
    def db(self) -> Path:
        return self.folder / DB_FILENAME

    @property
    def meta(self) -> Path:
        return self.folder / META_FILENAME

    @property
    def lock(self) -> Path:
        return self.folder / LOCK_FILENAME

    @property
    def init_db(self) -> Path:
        return self.folder / f"{DB_FILENAME}.init"

    @property
    def rekey_db(self) -> Path:
        return self.folder / f"{DB_FILENAME}.rekey"

    @property
    def next_meta(self) -> Path:
        return self.folder / f"{META_FILENAME}.next"

    @property
    def key_journal(self) -> Path:
        return self.folder / "vault.keyjournal.json"

    def sidecars(self) -> list[Path]:
        return [self.db.with_name(self.db.name + suffix) for suffix in ("-wal", "-shm")]

    def export_records(self) -> list[Path]:
        """Notes of exports in progress, each naming the partial files it may leave."""
        return sorted(self.folder.glob(f"{EXPORT_RECORD_PREFIX}*.json"))

    def leftovers(self) -> list[Path]:
        """Files only a process killed mid-init, mid-rekey or mid-write leaves behind.

        SQLite's own files beside the temporary databases (``-journal`` of the attached
        export target, ``-wal``/``-shm`` of the check connection) and the temporary names
        of atomic JSON writes. Never the live database's ``-wal``: it holds committed data.
        """
        temp_dbs = [self.init_db, self.rekey_db]
        found = [db.with_name(db.name + s) for db in temp_dbs for s in SQLITE_SIDECARS]
        found += self.folder.glob(f".{META_FILENAME}*.tmp")
        found += self.folder.glob(f".{self.key_journal.name}*.tmp")
        found += self.folder.glob(f".{EXPORT_RECORD_PREFIX}*.tmp")
        return [path for path in found if path.exists()]


@dataclass(frozen=True)
class VaultMeta:
    """``vault.json``: enough to find and check the key, nothing that reveals it."""

    vault_id: str
    key_source: KeySource
    key_check: str
    key_id: str
    created_at: float
    kdf: keys.KdfParams | None = None
    key_file: str | None = None
    rekeyed_at: float | None = None
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kdf"] = self.kdf.to_json() if self.kdf is not None else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VaultMeta:
        if int(data.get("format", 0)) > FORMAT:
            raise StoreError("this vault was made by a newer smallhold (vault format "
                             f"{data.get('format')}); upgrade smallhold to open it.")
        source = data["key_source"]
        if source not in KEY_SOURCES:
            raise StoreError(f"unknown key source {source!r} in vault.json")
        kdf = data.get("kdf")
        return cls(
            vault_id=str(data["vault_id"]), key_source=source, key_check=str(data["key_check"]),
            key_id=str(data["key_id"]), created_at=float(data["created_at"]),
            kdf=keys.KdfParams.from_json(kdf) if kdf else None,
            key_file=data.get("key_file"), rekeyed_at=data.get("rekeyed_at"),
            format=int(data.get("format", FORMAT)),
        )


def vault_files(paths: Paths, profile: str = DEFAULT_PROFILE) -> VaultFiles:
    return VaultFiles(paths.profile_dir(profile), paths.config_dir)


def read_meta(files: VaultFiles) -> VaultMeta | None:
    try:
        text = files.meta.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        meta = VaultMeta.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise VaultCorruptError(
            f"{files.meta} is damaged ({exc}); it says how to find the vault's key. Restore it "
            "from a backup (vault export writes one beside each copy)."
        ) from exc
    return replace(meta, key_file=keys.key_file_path(files.config_dir, meta.key_file))


def meta_json(files: VaultFiles, meta: VaultMeta) -> dict[str, Any]:
    """What ``vault.json`` holds for ``meta``: its key file named relative when it can be."""
    return replace(meta, key_file=keys.key_file_ref(files.config_dir, meta.key_file)).to_json()


def write_json_atomic(path: Path, data: Mapping[str, Any], *, tmp: Path | None = None) -> None:
    tmp = tmp or path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync(path.parent)


def fsync(path: Path) -> None:
    """Flush a file's data, or a folder's entries (after a rename), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def with_sidecars(db: Path) -> list[Path]:
    """A SQLite file and the rollback journal, WAL and shared memory it may have beside it."""
    return [db, *(db.with_name(db.name + suffix) for suffix in SQLITE_SIDECARS)]


RESTORE_HINT = ("Nothing was created in its place. Restore smallhold.db from a backup "
                "(`smallhold vault export` makes one), or `smallhold vault wipe` to start an "
                "empty vault.")


def open_db(files: VaultFiles, key: bytes) -> Any:
    """The vault's database, opened: never created, never read as new when it is empty."""
    try:
        return sqlcipher.connect(files.db, key, create=False)
    except FileNotFoundError as exc:
        raise VaultCorruptError(
            f"the vault database {files.db} is missing but vault.json says the vault exists. "
            f"{RESTORE_HINT}") from exc
    except sqlcipher.EmptyDatabase as exc:
        raise VaultCorruptError(
            f"the vault database {files.db} is damaged: it is empty (0 bytes) but vault.json "
            f"says the vault exists, so its data is gone from this file. {RESTORE_HINT}"
        ) from exc
    except sqlcipher.NotADatabase as exc:
        raise VaultCorruptError(
            f"the key is right but {files.db} does not decrypt: the file is damaged. Nothing "
            "was changed. Restore it from a backup (`smallhold vault export` makes one).") from exc
    except sqlcipher.DB_ERRORS as exc:
        raise VaultCorruptError(
            f"cannot open {files.db} ({exc}): it is damaged or cut short, or unreadable. "
            "Nothing was changed. Restore it from a backup (`smallhold vault export` makes "
            "one).") from exc


__all__ = [
    "DB_FILENAME",
    "EXPORT_RECORD_PREFIX",
    "FORMAT",
    "KEY_SOURCES",
    "LOCK_FILENAME",
    "META_FILENAME",
    "RESTORE_HINT",
    "SQLITE_SIDECARS",
    "KeySource",
    "VaultFiles",
    "VaultMeta",
    "fsync",
    "meta_json",
    "open_db",
    "read_meta",
    "unlink",
    "vault_files",
    "with_sidecars",
    "write_json_atomic",
]
