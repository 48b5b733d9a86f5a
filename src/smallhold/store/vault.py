"""The encrypted vault of a profile: create, open, unlock, lock and wipe it (the entry points).

A profile folder holds ``smallhold.db`` (SQLCipher; every byte encrypted, its WAL too),
``vault.json`` (how to find the key: the source, Argon2id parameters and salt, a key check;
no secret), and ``vault.lock``, a file lock every open handle holds shared so rekey and wipe,
which take it exclusively, never pull a file from under a running chat or server.

Key sources (:data:`KeySource`):

- ``passphrase``: Argon2id of what the user types; ``vault unlock`` keeps the derived key in a
  session file until it expires (:mod:`smallhold.store.session`); scripts set
  ``SMALLHOLD_PASSPHRASE``.
- ``keyring``: a random key in the OS keyring (Secret Service, Keychain, Credential Locker).
- ``keyfile``: a random key in a 0600 file; scripts can also name one in ``SMALLHOLD_KEY_FILE``.

A profile that has no vault yet gets a ``keyring`` vault when the OS has a keyring, else a
``keyfile`` one under the config folder (:func:`open_vault` with ``create_default``), so data is
encrypted from the first answer without a prompt; ``vault rekey --to passphrase`` raises the bar.

The database is created only by ``init`` (under a temporary name, renamed once
``vault.json`` is written). Opening never creates it: a ``smallhold.db`` that is missing,
emptied (0 bytes) or cut short while ``vault.json`` exists is :class:`VaultCorruptError`
pointing to the ``vault export`` backups, never a fresh empty vault that hides the loss.

Rekey and export are crash-safe: a kill at any moment leaves exactly one key working, no
stray key, and no half-written backup once the vault is next opened. The rest of the vault's
life is in modules of its own, each with one job; this module re-exports their public names
and stays the one to import:

- :mod:`smallhold.store.vaultfiles`: the files' names, ``vault.json``, durable writes, opening
  the database without ever creating it;
- :mod:`smallhold.store.keysource`: making a key for a :class:`KeySpec`, finding it again on
  open (the order of the sources), checking and forgetting it;
- :mod:`smallhold.store.keys`: the key primitives, and key files named relative to the config
  folder in ``vault.json`` so a copied home opens with its own key file;
- :mod:`smallhold.store.recovery`: the file lock, and finishing or undoing a cut-short init,
  rekey or export (the key journal, pending key files, export partials);
- :mod:`smallhold.store.rekey`: re-encrypting under a new key, committed by one rename;
- :mod:`smallhold.store.export`: encrypted backups and plaintext dumps.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smallhold.errors import (
    StoreError,
    VaultCorruptError,
    VaultNotFoundError,
)
from smallhold.paths import DEFAULT_PROFILE, Paths
from smallhold.store import keys, sqlcipher
from smallhold.store.export import dump_plaintext, export_vault
from smallhold.store.handle import VaultHandle
from smallhold.store.keys import default_key_file
from smallhold.store.keysource import (
    ENV_KEY_FILE,
    ENV_PASSPHRASE,
    KeySpec,
    find_key,
    forget_key,
    key_target,
    make_key,
    passphrase_key,
    verified,
)
from smallhold.store.recovery import (
    begin_key_change,
    exclusive,
    open_locked,
    recover,
    settle_key_journal,
)
from smallhold.store.rekey import rekey_vault
from smallhold.store.session import (
    FOREVER,
    Session,
    clear_session,
    load_session,
    save_session,
    session_path,
)
from smallhold.store.vaultfiles import (
    KEY_SOURCES,
    KeySource,
    VaultFiles,
    VaultMeta,
    fsync,
    meta_json,
    open_db,
    read_meta,
    unlink,
    vault_files,
    with_sidecars,
    write_json_atomic,
)


@dataclass(frozen=True)
class VaultStatus:
    profile: str
    folder: str
    exists: bool
    key_source: KeySource | None = None
    unlocked: bool = False
    how: str = ""
    session_expires_at: float | None = None
    kdf: dict[str, Any] | None = None
    kdf_outdated: bool = False
    db_bytes: int = 0
    key_file: str | None = None
    notes: list[str] = field(default_factory=list)


class Vault(VaultHandle):
    """An open vault: a :class:`VaultHandle` that also holds the profile's file lock."""

    def __init__(self, conn: Any, *, files: VaultFiles, meta: VaultMeta, profile: str,
                 key: bytes, lock_fd: int, created: bool = False) -> None:
        self.files = files
        self._key = key  # for export_vault; SQLCipher will not hand it back
        self.vault_meta = meta
        self.created = created
        self._lock_fd: int | None = lock_fd
        try:
            super().__init__(conn, path=files.db, profile=profile)
        except sqlcipher.DB_ERRORS as exc:
            conn.close()
            self._release()
            raise VaultCorruptError(
                f"{files.db} is damaged ({exc}); the key is right and nothing was changed. "
                "Restore it from a backup (`smallhold vault export` makes one).") from exc
        except BaseException:
            conn.close()
            self._release()
            raise

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()

    def integrity_problems(self) -> list[str]:
        """Pages that fail their HMAC or SQLite's quick check; empty when healthy."""
        with self.lock:
            return sqlcipher.integrity_problems(self.conn)


def _orphan_db(files: VaultFiles) -> VaultCorruptError | None:
    """The error for an encrypted ``smallhold.db`` without its ``vault.json``, if that is so.

    Such a file must not be overwritten by a new vault: its data is intact, only the
    description of its key is gone. A plaintext file from smallhold 0.1 is not an orphan:
    ``init`` encrypts it.
    """
    if not files.db.exists() or sqlcipher.is_plaintext_sqlite(files.db):
        return None
    return VaultCorruptError(
        f"{files.db} exists but vault.json does not, so its key source is unknown. Restore "
        "vault.json from a backup (`smallhold vault export` writes one beside each copy), or "
        "move the file aside (rename it) to start a new vault.")


def vault_exists(paths: Paths, profile: str = DEFAULT_PROFILE) -> bool:
    files = vault_files(paths, profile)
    return files.meta.exists() or files.next_meta.exists()


def init_vault(paths: Paths, profile: str, spec: KeySpec, *, clock: Callable[[], float] = time.time
               ) -> Vault:
    """Create the vault of ``profile`` keyed as ``spec`` says; an existing one is refused.

    A plain SQLite ``smallhold.db`` from before the vault (the trace log of smallhold 0.1) is
    encrypted into the new vault and the plaintext file removed.

    The database is written as ``smallhold.db.init`` and ``vault.json`` written after it is
    the commit point; this is the only place a vault database is created.
    """
    files = vault_files(paths, profile)
    with exclusive(files):
        if files.meta.exists():
            raise StoreError(f"profile {profile!r} already has a vault ({files.folder}); use "
                             "`smallhold vault rekey` to change its key.")
        orphan = _orphan_db(files)
        if orphan is not None:
            raise orphan
        legacy = files.db.exists()
        key_id = uuid.uuid4().hex
        target = key_target(paths, profile, spec, key_id)
        begin_key_change(files, profile, spec.source, key_id, target, old=None)
        try:
            key, kdf = make_key(paths, profile, spec, key_id, target)
            meta = VaultMeta(vault_id=uuid.uuid4().hex, key_source=spec.source,
                             key_check=keys.key_check(key), key_id=key_id, created_at=clock(),
                             kdf=kdf, key_file=str(target) if target is not None else None)
            if legacy:
                for sidecar in files.sidecars():
                    if sidecar.exists() and sidecar.stat().st_size:
                        raise StoreError(f"{files.db} is open in another process (its WAL is "
                                         "not empty); close other smallhold processes and retry.")
                sqlcipher.encrypt_plaintext(files.db, files.init_db, key)
            else:
                sqlcipher.connect(files.init_db, key).close()
            fsync(files.init_db)
            write_json_atomic(files.meta, meta_json(files, meta))  # the commit point
            if legacy:
                unlink(*with_sidecars(files.db))
            os.replace(files.init_db, files.db)
            fsync(files.folder)
            settle_key_journal(files)  # the key file takes its name; the journal goes
        except BaseException:
            recover(files)  # before the commit: as if never begun; after: finished
            raise
    return _open_with_key(files, meta, key, profile, created=True)


def _open_with_key(files: VaultFiles, meta: VaultMeta, key: bytes, profile: str, *,
                   created: bool = False) -> Vault:
    fd = open_locked(files)
    try:
        conn = open_db(files, key)
    except BaseException:
        os.close(fd)
        raise
    return Vault(conn, files=files, meta=meta, profile=profile, key=key, lock_fd=fd,
                 created=created)


def open_vault(
    paths: Paths,
    profile: str = DEFAULT_PROFILE,
    *,
    passphrase: str | None = None,
    key_file: Path | None = None,
    create_default: bool = False,
    env: Mapping[str, str] | None = None,
) -> Vault:
    """Open the vault of ``profile``, finding its key (the order: :func:`.keysource.find_key`).

    ``create_default`` makes a keyring (or key-file) vault when the profile has none, for apps
    that must store something on first use; otherwise a missing vault is
    :class:`VaultNotFoundError`. Wrong keys raise :class:`WrongKeyError`, a damaged file
    :class:`VaultCorruptError`; neither changes anything on disk.
    """
    environ = os.environ if env is None else env
    files = vault_files(paths, profile)
    if not vault_exists(paths, profile):
        orphan = _orphan_db(files)
        if orphan is not None:
            raise orphan
        if not create_default:
            raise VaultNotFoundError(
                f"profile {profile!r} has no vault yet; create one with `smallhold vault init`.")
        source: KeySource = "keyring" if keys.keyring_usable() else "keyfile"
        try:
            return init_vault(paths, profile, KeySpec(
                source, key_file=default_key_file(paths, profile) if source == "keyfile"
                else None))
        except StoreError:
            if not vault_exists(paths, profile):  # a real failure, not a race with another
                raise
    fd = open_locked(files)  # finishes a cut-short rekey, so the metadata read next is current
    try:
        meta = read_meta(files)
        if meta is None:
            raise VaultNotFoundError(f"profile {profile!r} has no vault yet; create one with "
                                     "`smallhold vault init`.")
        key, how = find_key(paths, profile, meta, passphrase=passphrase, key_file=key_file,
                            env=environ)
        key = verified(meta, key, how, profile)
        conn = open_db(files, key)
    except BaseException:
        os.close(fd)
        raise
    return Vault(conn, files=files, meta=meta, profile=profile, key=key, lock_fd=fd)


def unlock_vault(paths: Paths, profile: str, passphrase: str, *, seconds: float,
                 clock: Callable[[], float] = time.time) -> Session:
    """Check the passphrase and keep the derived key for ``seconds`` (0 = until lock/logout)."""
    files = vault_files(paths, profile)
    if vault_exists(paths, profile):
        os.close(open_locked(files))  # finishes a cut-short rekey, so the metadata is current
    meta = read_meta(files)
    if meta is None:
        raise VaultNotFoundError(f"profile {profile!r} has no vault; `smallhold vault init`.")
    if meta.key_source != "passphrase":
        raise StoreError(f"this vault opens with its {meta.key_source}; it has no passphrase to "
                         "unlock. `smallhold vault rekey --to passphrase` gives it one.")
    key = verified(meta, passphrase_key(meta, passphrase), "passphrase", profile)
    with _open_with_key(files, meta, key, profile):
        pass  # proves the file decrypts before we promise a session
    session = Session(meta.vault_id, key, FOREVER if seconds == FOREVER else clock() + seconds)
    save_session(session_path(paths.runtime_dir, profile), session)
    return session


def lock_vault(paths: Paths, profile: str = DEFAULT_PROFILE) -> bool:
    """Forget the unlocked session; True when one was open."""
    return clear_session(session_path(paths.runtime_dir, profile))


def wipe_vault(paths: Paths, profile: str = DEFAULT_PROFILE) -> list[str]:
    """Delete the vault, its key (keyring entry or key file) and session; returns what went.

    With the key gone the ciphertext is unreadable wherever copies of it remain (backups,
    SSD blocks the file system does not overwrite): deleting the key is what erases the data.
    """
    files = vault_files(paths, profile)
    removed: list[str] = []
    with exclusive(files):
        meta = read_meta(files)
        if meta is not None:
            forget_key(profile, meta.key_source, meta.key_id, meta.key_file)
            removed.append(f"key ({meta.key_source})")
        if lock_vault(paths, profile):
            removed.append("unlocked session")
        for path in [files.db, *files.sidecars(), files.meta]:
            if path.exists():
                path.unlink()
                removed.append(str(path))
    return removed


def vault_status(paths: Paths, profile: str = DEFAULT_PROFILE,
                 clock: Callable[[], float] = time.time) -> VaultStatus:
    files = vault_files(paths, profile)
    meta = read_meta(files)
    if meta is None:
        orphan = _orphan_db(files)
        return VaultStatus(profile=profile, folder=str(files.folder), exists=False,
                           notes=[str(orphan)] if orphan is not None else [])
    notes: list[str] = []
    if not files.db.exists() or files.db.stat().st_size == 0:
        what = "missing" if not files.db.exists() else "empty (0 bytes)"
        notes.append(f"DAMAGED: {files.db} is {what} but vault.json says the vault exists; "
                     "restore it from a `smallhold vault export` backup.")
    session = load_session(session_path(paths.runtime_dir, profile), meta.vault_id, clock())
    unlocked, how, expires = False, "", None
    if meta.key_source == "passphrase":
        unlocked = session is not None
        how = "unlocked session" if unlocked else "locked"
        expires = session.expires_at if session is not None else None
    else:
        unlocked, how = True, f"opens with its {meta.key_source}"
    outdated = meta.kdf is not None and meta.kdf.weaker_than(keys.CURRENT_KDF)
    if outdated:
        notes.append("the passphrase's Argon2id settings are weaker than today's defaults; "
                     "`smallhold vault rekey` re-derives the key with them.")
    if meta.key_source == "passphrase" and not str(paths.runtime_dir).startswith("/run/"):
        notes.append(f"unlocked sessions are kept in {paths.runtime_dir}, which may be on "
                     "disk (XDG_RUNTIME_DIR is not set).")
    size = sum(p.stat().st_size for p in [files.db, *files.sidecars()] if p.exists())
    return VaultStatus(
        profile=profile, folder=str(files.folder), exists=True, key_source=meta.key_source,
        unlocked=unlocked, how=how, session_expires_at=expires,
        kdf=meta.kdf.to_json() | {"salt": "…"} if meta.kdf else None, kdf_outdated=outdated,
        db_bytes=size, key_file=meta.key_file, notes=notes,
    )


__all__ = [
    "ENV_KEY_FILE",
    "ENV_PASSPHRASE",
    "KEY_SOURCES",
    "KeySource",
    "KeySpec",
    "Vault",
    "VaultFiles",
    "VaultMeta",
    "VaultStatus",
    "default_key_file",
    "dump_plaintext",
    "export_vault",
    "init_vault",
    "lock_vault",
    "open_vault",
    "rekey_vault",
    "unlock_vault",
    "vault_exists",
    "vault_files",
    "vault_status",
    "wipe_vault",
]
