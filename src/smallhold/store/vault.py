"""The encrypted vault of a profile: create, open, unlock, lock, rekey, export and wipe it.

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

Rekey is crash-safe: the data is exported under the new key to ``smallhold.db.rekey``, the new
metadata written to ``vault.json.next``, and the rename of the database over the old one is
the commit point. Whoever opens the vault next finishes or undoes a rekey that was cut short,
so a kill at any moment leaves exactly one key working: the old one before the rename, the
new one after it. Before a new key is made, ``vault.keyjournal.json`` names it and the key it
replaces; a new key file is written as ``<name>.pending`` and renamed into place only after
the commit, so recovery knows which key to keep and which to delete, and no stray key is
left behind. Exports write under a hidden ``.partial`` name noted in the profile folder, so
a cut-short backup (or plaintext dump) is removed, never mistaken for a whole one.

The database is created only by ``init`` (under a temporary name, renamed once
``vault.json`` is written). Opening never creates it: a ``smallhold.db`` that is missing,
emptied (0 bytes) or cut short while ``vault.json`` exists is :class:`VaultCorruptError`
pointing to the ``vault export`` backups, never a fresh empty vault that hides the loss.

``vault.json`` names a key file inside the config folder relative to it (``keys/x.key``), so
a copied home opens with its own key file, not the original's.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from smallhold.errors import (
    StoreError,
    VaultBusyError,
    VaultCorruptError,
    VaultLockedError,
    VaultNotFoundError,
    WrongKeyError,
)
from smallhold.paths import DEFAULT_PROFILE, Paths, check_profile
from smallhold.store import keys, sqlcipher
from smallhold.store.handle import VaultHandle
from smallhold.store.session import (
    FOREVER,
    Session,
    clear_session,
    load_session,
    save_session,
    session_path,
)

KeySource = Literal["passphrase", "keyring", "keyfile"]
KEY_SOURCES: tuple[KeySource, ...] = ("passphrase", "keyring", "keyfile")
FORMAT = 1
DB_FILENAME = "smallhold.db"
META_FILENAME = "vault.json"
LOCK_FILENAME = "vault.lock"
LOCK_WAIT_S = 10.0
MIN_PASSPHRASE = 8
ENV_PASSPHRASE = "SMALLHOLD_PASSPHRASE"
ENV_KEY_FILE = "SMALLHOLD_KEY_FILE"
SQLITE_SIDECARS = ("-journal", "-wal", "-shm")
EXPORT_RECORD_PREFIX = "vault.export-"
PENDING_SUFFIX = ".pending"


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


@dataclass(frozen=True)
class KeySpec:
    """How to key a new vault, or the target of a rekey."""

    source: KeySource
    passphrase: str | None = None
    key_file: Path | None = None  # keyfile: where to create it (default: the config folder)


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


# -- paths, metadata, locks -----------------------------------------------------------------


def vault_files(paths: Paths, profile: str = DEFAULT_PROFILE) -> VaultFiles:
    return VaultFiles(paths.profile_dir(profile), paths.config_dir)


def default_key_file(paths: Paths, profile: str) -> Path:
    return paths.config_dir / "keys" / f"{check_profile(profile)}.key"


def _key_file_ref(files: VaultFiles, path: str | None) -> str | None:
    """How ``vault.json`` names a key file: relative to the config folder when inside it.

    A copied or moved home then opens with its own key file, not the original's; a key
    file the user keeps elsewhere (a USB stick) keeps its absolute path.
    """
    if path is None or files.config_dir is None:
        return path
    target = Path(path)
    for base in (files.config_dir, files.config_dir.resolve()):
        if target.is_absolute() and target.is_relative_to(base):
            return target.relative_to(base).as_posix()
    return path


def _key_file_path(files: VaultFiles, ref: str | None) -> str | None:
    """The absolute path, in this home, of the key file ``vault.json`` names.

    ``vault.json`` files written before relative names hold an absolute path; when it points
    into a ``keys`` folder and this home's ``keys`` folder has a file of that name, that is
    this home's key (a copied home must not go on using the original home's file).
    """
    if ref is None or files.config_dir is None:
        return ref
    path = Path(ref)
    if not path.is_absolute():
        return str(files.config_dir / path)
    local = files.config_dir / "keys" / path.name
    if path.parent.name == "keys" and local.is_file():
        return str(local)
    return ref


def _read_meta(files: VaultFiles) -> VaultMeta | None:
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
    return replace(meta, key_file=_key_file_path(files, meta.key_file))


def _meta_json(files: VaultFiles, meta: VaultMeta) -> dict[str, Any]:
    """What ``vault.json`` holds for ``meta``: its key file named relative when it can be."""
    return replace(meta, key_file=_key_file_ref(files, meta.key_file)).to_json()


def _write_json_atomic(path: Path, data: Mapping[str, Any], *, tmp: Path | None = None) -> None:
    tmp = tmp or path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    """Flush a file's data, or a folder's entries (after a rename), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _with_sidecars(db: Path) -> list[Path]:
    """A SQLite file and the rollback journal, WAL and shared memory it may have beside it."""
    return [db, *(db.with_name(db.name + suffix) for suffix in SQLITE_SIDECARS)]


def _lock(files: VaultFiles, *, exclusive: bool, wait: float | None = None) -> int:
    """Take ``vault.lock`` shared or exclusive; wait up to ``wait`` seconds, then refuse."""
    wait = LOCK_WAIT_S if wait is None else wait
    files.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(files.lock, os.O_RDWR | os.O_CREAT, 0o600)
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return fd
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
        if time.monotonic() >= deadline:
            os.close(fd)
            what = ("another smallhold process is using this vault (a chat, a server, a sync?)"
                    if exclusive else "the vault is being rekeyed or wiped by another process")
            raise VaultBusyError(f"{what}: {files.folder}. Wait for it to finish, or close it, "
                                 "and try again.")
        time.sleep(0.05)


def _recover(files: VaultFiles) -> None:
    """Finish or undo whatever a killed init, rekey or export left. Hold the lock exclusively.

    Also the path every failing init and rekey takes to undo itself, so a crash and an
    error leave the same state: exactly one working key, and no temporary file.
    """
    if files.next_meta.exists():
        if files.rekey_db.exists():
            files.rekey_db.unlink()  # cut before the commit point: the old key still works
            files.next_meta.unlink()
        else:
            os.replace(files.next_meta, files.meta)  # cut after it: finish the rekey
            _fsync(files.folder)
    elif files.rekey_db.exists():
        files.rekey_db.unlink()  # cut while exporting
    if files.init_db.exists() and not files.meta.exists():
        files.init_db.unlink()  # an init that never wrote its metadata
    elif files.init_db.exists() and (not files.db.exists()
                                     or sqlcipher.is_plaintext_sqlite(files.db)):
        # An init cut after its commit (vault.json written) and before its rename: the file
        # still at smallhold.db, if any, is the plaintext one of smallhold 0.1 it encrypted.
        _unlink(*_with_sidecars(files.db))
        os.replace(files.init_db, files.db)
        _fsync(files.folder)
    _unlink(*files.leftovers())
    _settle_key_journal(files)
    for record in files.export_records():
        _drop_export(record)


@contextlib.contextmanager
def _exclusive(files: VaultFiles) -> Iterator[None]:
    fd = _lock(files, exclusive=True)
    try:
        _recover(files)
        yield
    finally:
        os.close(fd)


def _open_locked(files: VaultFiles) -> int:
    """Shared lock for a handle's lifetime, recovering a cut-short rekey first if possible."""
    try:
        fd = _lock(files, exclusive=True, wait=0.0)
    except VaultBusyError:
        return _lock(files, exclusive=False)
    try:
        _recover(files)
        fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    return fd


# -- keys -----------------------------------------------------------------------------------


def _check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise StoreError(f"the passphrase is too short: use at least {MIN_PASSPHRASE} "
                         "characters (a few random words is a good choice).")


def _pending(key_file: Path) -> Path:
    """Where a new key file is written until its vault commits to it."""
    return key_file.with_name(key_file.name + PENDING_SUFFIX)


def _key_target(paths: Paths, profile: str, spec: KeySpec, key_id: str) -> Path | None:
    """The key file a ``keyfile`` spec will create (absolute); ``None`` for other sources."""
    if spec.source != "keyfile":
        return None
    target = spec.key_file or default_key_file(paths, profile).with_name(
        f"{profile}-{key_id[:8]}.key")
    return target.expanduser().resolve()


def _make_key(paths: Paths, profile: str, spec: KeySpec, key_id: str, target: Path | None
              ) -> tuple[bytes, keys.KdfParams | None]:
    """A new key for ``spec``, stored where the spec says; returns the key and KDF params.

    A key file is written as ``<target>.pending``: it becomes ``target`` only once the vault
    is committed to it (:func:`_settle_key_journal`), so a kill before that leaves no file
    that looks like a vault's key.
    """
    if spec.source == "passphrase":
        if spec.passphrase is None:
            raise StoreError("a passphrase vault needs a passphrase.")
        _check_passphrase(spec.passphrase)
        params = keys.KdfParams.fresh()
        return keys.derive_key(spec.passphrase, params), params
    key = keys.random_key()
    if spec.source == "keyring":
        if not keys.keyring_usable():
            raise StoreError("this system has no usable OS keyring (no Secret Service, "
                             "Keychain or Credential Locker); use a passphrase or a key file.")
        keys.keyring_store(keys.keyring_entry(profile, key_id), key)
        return key, None
    assert target is not None
    if target.exists():
        raise StoreError(f"the key file {target} already exists; choose another path or remove "
                         "it if it belongs to a vault you wiped.")
    keys.write_key_file(_pending(target), key)
    return key, None


def _forget_key(profile: str, source: str, key_id: str, key_file: str | None) -> None:
    """Remove a key that is no longer needed (after a rekey or wipe, or never committed)."""
    if source == "keyring":
        keys.keyring_delete(keys.keyring_entry(profile, key_id))
    elif source == "keyfile" and key_file:
        _unlink(Path(key_file))


def _begin_key_change(files: VaultFiles, profile: str, source: KeySource, key_id: str,
                      target: Path | None, old: VaultMeta | None) -> None:
    """Write ``vault.keyjournal.json`` naming the key about to be made and the one it replaces.

    Written before the new key exists, so whatever happens next, recovery knows which key
    to delete: the new one if the vault never committed to it, else the old one.
    """
    def entry(source: str, key_id: str, key_file: str | None) -> dict[str, Any]:
        return {"key_source": source, "key_id": key_id,
                "key_file": _key_file_ref(files, key_file)}

    _write_json_atomic(files.key_journal, {
        "profile": profile,
        "new": entry(source, key_id, str(target) if target is not None else None),
        "old": entry(old.key_source, old.key_id, old.key_file) if old is not None else None,
    })


def _settle_key_journal(files: VaultFiles) -> None:
    """Finish a key change the vault committed to, or undo one it did not; drop the journal.

    Committed means ``vault.json`` names the new key: its pending key file is put in place
    and the old key is forgotten. Otherwise the new key (its pending file or keyring entry)
    is deleted, and the key file's final name, which was never written, is not touched.
    """
    try:
        data = json.loads(files.key_journal.read_text(encoding="utf-8"))
        profile, new, old = str(data["profile"]), data["new"], data.get("old")
        new_source, new_id = str(new["key_source"]), str(new["key_id"])
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError):
        _unlink(files.key_journal)  # unreadable: keep every key rather than guess
        return
    new_file = _key_file_path(files, new.get("key_file"))
    pending = _pending(Path(new_file)) if new_file else None
    meta = _read_meta(files)
    if meta is not None and meta.key_id == new_id:
        if pending is not None and new_file is not None and pending.exists():
            os.replace(pending, new_file)
            _fsync(pending.parent)
        if old is not None and str(old["key_id"]) != new_id:
            _forget_key(profile, str(old["key_source"]), str(old["key_id"]),
                        _key_file_path(files, old.get("key_file")))
    else:
        _forget_key(profile, new_source, new_id, str(pending) if pending else None)
    _unlink(files.key_journal)
    _fsync(files.folder)


def _find_key(paths: Paths, profile: str, meta: VaultMeta, *, passphrase: str | None,
              key_file: Path | None, env: Mapping[str, str]) -> tuple[bytes, str]:
    """The key, and in words where it came from; raises when nothing offers one."""
    if passphrase is not None:
        return _passphrase_key(meta, passphrase), "passphrase"
    if key_file is not None:
        return keys.read_key_file(key_file), f"key file {key_file}"
    if meta.key_source == "passphrase" and env.get(ENV_PASSPHRASE):
        return _passphrase_key(meta, env[ENV_PASSPHRASE]), ENV_PASSPHRASE
    if env.get(ENV_KEY_FILE):
        path = Path(env[ENV_KEY_FILE]).expanduser()
        return keys.read_key_file(path), f"{ENV_KEY_FILE} ({path})"
    if meta.key_source == "keyring":
        return keys.keyring_load(keys.keyring_entry(profile, meta.key_id)), "OS keyring"
    if meta.key_source == "keyfile" and meta.key_file:
        return keys.read_key_file(Path(meta.key_file)), f"key file {meta.key_file}"
    session = load_session(session_path(paths.runtime_dir, profile), meta.vault_id)
    if session is not None:
        return session.key, "unlocked session"
    raise VaultLockedError(
        f"the vault of profile {profile!r} is locked. Run `smallhold vault unlock` (it asks "
        f"for the passphrase), or set {ENV_PASSPHRASE} for scripts."
    )


def _passphrase_key(meta: VaultMeta, passphrase: str) -> bytes:
    if meta.kdf is None:
        raise WrongKeyError(f"this vault opens with its {meta.key_source}, not a passphrase. "
                            "Leave the passphrase out.")
    return keys.derive_key(passphrase, meta.kdf)


def _verified(meta: VaultMeta, key: bytes, how: str, profile: str) -> bytes:
    if not keys.key_matches(key, meta.key_check):
        noun = "passphrase" if "passphrase" in how.lower() else f"key ({how})"
        raise WrongKeyError(f"the {noun} does not open the vault of profile {profile!r}; "
                            "nothing was changed. Check it and try again.")
    return key


RESTORE_HINT = ("Nothing was created in its place. Restore smallhold.db from a backup "
                "(`smallhold vault export` makes one), or `smallhold vault wipe` to start an "
                "empty vault.")


def _connect(files: VaultFiles, key: bytes) -> Any:
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
        "move the database aside (rename it) to start a new vault.")


# -- public operations ----------------------------------------------------------------------


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
    with _exclusive(files):
        if files.meta.exists():
            raise StoreError(f"profile {profile!r} already has a vault ({files.folder}); use "
                             "`smallhold vault rekey` to change its key.")
        orphan = _orphan_db(files)
        if orphan is not None:
            raise orphan
        legacy = files.db.exists()
        key_id = uuid.uuid4().hex
        target = _key_target(paths, profile, spec, key_id)
        _begin_key_change(files, profile, spec.source, key_id, target, old=None)
        try:
            key, kdf = _make_key(paths, profile, spec, key_id, target)
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
            _fsync(files.init_db)
            _write_json_atomic(files.meta, _meta_json(files, meta))  # the commit point
            if legacy:
                _unlink(*_with_sidecars(files.db))
            os.replace(files.init_db, files.db)
            _fsync(files.folder)
            _settle_key_journal(files)  # the key file takes its name; the journal goes
        except BaseException:
            _recover(files)  # before the commit: as if never begun; after: finished
            raise
    return _open_with_key(files, meta, key, profile, created=True)


def _open_with_key(files: VaultFiles, meta: VaultMeta, key: bytes, profile: str, *,
                   created: bool = False) -> Vault:
    fd = _open_locked(files)
    try:
        conn = _connect(files, key)
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
    """Open the vault of ``profile``, finding its key (see the module docstring for the order).

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
    fd = _open_locked(files)  # finishes a cut-short rekey, so the metadata read next is current
    try:
        meta = _read_meta(files)
        if meta is None:
            raise VaultNotFoundError(f"profile {profile!r} has no vault yet; create one with "
                                     "`smallhold vault init`.")
        key, how = _find_key(paths, profile, meta, passphrase=passphrase, key_file=key_file,
                             env=environ)
        key = _verified(meta, key, how, profile)
        conn = _connect(files, key)
    except BaseException:
        os.close(fd)
        raise
    return Vault(conn, files=files, meta=meta, profile=profile, key=key, lock_fd=fd)


def unlock_vault(paths: Paths, profile: str, passphrase: str, *, seconds: float,
                 clock: Callable[[], float] = time.time) -> Session:
    """Check the passphrase and keep the derived key for ``seconds`` (0 = until lock/logout)."""
    files = vault_files(paths, profile)
    meta = _read_meta(files)
    if meta is None:
        raise VaultNotFoundError(f"profile {profile!r} has no vault; `smallhold vault init`.")
    if meta.key_source != "passphrase":
        raise StoreError(f"this vault opens with its {meta.key_source}; it has no passphrase to "
                         "unlock. `smallhold vault rekey --to passphrase` gives it one.")
    key = _verified(meta, _passphrase_key(meta, passphrase), "passphrase", profile)
    with _open_with_key(files, meta, key, profile):
        pass  # proves the file decrypts before we promise a session
    session = Session(meta.vault_id, key, FOREVER if seconds == FOREVER else clock() + seconds)
    save_session(session_path(paths.runtime_dir, profile), session)
    return session


def lock_vault(paths: Paths, profile: str = DEFAULT_PROFILE) -> bool:
    """Forget the unlocked session; True when one was open."""
    return clear_session(session_path(paths.runtime_dir, profile))


def rekey_vault(
    paths: Paths,
    profile: str,
    target: KeySpec,
    *,
    passphrase: str | None = None,
    key_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    on_stage: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> VaultMeta:
    """Re-encrypt the vault under a new key from ``target``; atomic (see the module docstring).

    ``on_stage`` hears "exported", "verified", "prepared", "committed" and "done" as each step
    completes (progress for the CLI; tests kill the process there).
    """
    stage = on_stage or (lambda name: None)
    files = vault_files(paths, profile)
    environ = os.environ if env is None else env
    with _exclusive(files):
        meta = _read_meta(files)
        if meta is None:
            raise VaultNotFoundError(f"profile {profile!r} has no vault; `smallhold vault init`.")
        key, how = _find_key(paths, profile, meta, passphrase=passphrase, key_file=key_file,
                             env=environ)
        old_key = _verified(meta, key, how, profile)
        key_id = uuid.uuid4().hex
        new_file = _key_target(paths, profile, target, key_id)
        _begin_key_change(files, profile, target.source, key_id, new_file, old=meta)
        try:
            conn = _connect(files, old_key)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                new_key, kdf = _make_key(paths, profile, target, key_id, new_file)
                sqlcipher.export_copy(conn, files.rekey_db, new_key)
            finally:
                conn.close()
            _fsync(files.rekey_db)
            stage("exported")
            check = sqlcipher.connect(files.rekey_db, new_key, create=False)
            try:
                problems = sqlcipher.integrity_problems(check)
            finally:
                check.close()
            if problems:
                raise VaultCorruptError(f"the re-encrypted copy failed its check ({problems[0]}); "
                                        "the vault is unchanged under its old key.")
            stage("verified")
            new_meta = VaultMeta(vault_id=meta.vault_id, key_source=target.source,
                                 key_check=keys.key_check(new_key), key_id=key_id,
                                 created_at=meta.created_at, kdf=kdf,
                                 key_file=str(new_file) if new_file is not None else None,
                                 rekeyed_at=clock())
            _write_json_atomic(files.next_meta, _meta_json(files, new_meta))
            stage("prepared")
            _unlink(*files.sidecars())
            os.replace(files.rekey_db, files.db)  # the commit point
            _fsync(files.folder)
            stage("committed")
            os.replace(files.next_meta, files.meta)
            _fsync(files.folder)
            _settle_key_journal(files)  # the new key file takes its name; the old key goes
            path = session_path(paths.runtime_dir, profile)
            session = load_session(path, meta.vault_id)
            if target.source == "passphrase" and session is not None:
                save_session(path, replace(session, key=new_key))  # stay unlocked, as before
            else:
                clear_session(path)
            stage("done")
        except BaseException:
            _recover(files)  # before the commit: the old key, as before; after: the new one
            raise
    return new_meta


def _export_to(files: VaultFiles, out: Path, meta_out: Path | None
               ) -> contextlib.AbstractContextManager[tuple[Path, Path | None]]:
    """Hidden partial names for an export to ``out`` (and ``meta_out``), noted in the profile.

    The export writes the partials and renames them into place as its last step, so ``out``
    never exists half-written: a backup that looks whole is whole. The note
    (``vault.export-<id>.json``) lets the vault's recovery delete what a killed export left,
    wherever it was writing; a plaintext dump's partial file holds user data in the clear.
    """
    out = out.absolute()
    meta_out = meta_out.absolute() if meta_out is not None else None
    for path in (out, meta_out):
        if path is not None and path.exists():
            raise StoreError(f"{path} already exists; choose another name.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder {out.parent} ({exc.strerror or exc}); "
                         "choose another place for the export.") from exc
    token = uuid.uuid4().hex[:12]
    partial = out.with_name(f".{out.name}.{token}.partial")
    partial_meta = (meta_out.with_name(f".{meta_out.name}.{token}.partial")
                    if meta_out is not None else None)
    record = files.folder / f"{EXPORT_RECORD_PREFIX}{token}.json"
    _write_json_atomic(record, {
        "partials": [str(p) for p in (partial, partial_meta) if p is not None],
        "out": str(out), "meta_out": str(meta_out) if meta_out is not None else None})
    return _export_guard(record, partial, partial_meta)


@contextlib.contextmanager
def _export_guard(record: Path, partial: Path, partial_meta: Path | None
                  ) -> Iterator[tuple[Path, Path | None]]:
    try:
        yield partial, partial_meta
    except OSError as exc:
        raise StoreError(f"cannot write the export ({exc.strerror or exc}); check that the "
                         "folder is writable and has room, then try again.") from exc
    except sqlcipher.DB_ERRORS as exc:
        raise StoreError(f"cannot write the export ({exc}); check that the folder is writable "
                         "and has room, then try again.") from exc
    finally:
        _drop_export(record)


def _drop_export(record: Path) -> None:
    """Delete what the export ``record`` names and did not finish, then the record.

    Partials (and SQLite's journal beside them) always go; the metadata copy goes too when
    its database never took its name, as the export did not happen.
    """
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        partials = [Path(str(p)) for p in data["partials"]]
        out, meta_out = Path(str(data["out"])), data.get("meta_out")
    except (OSError, ValueError, KeyError, TypeError):
        partials, out, meta_out = [], None, None
    doomed = [path for partial in partials for path in _with_sidecars(partial)]
    if out is not None and meta_out and not out.exists():
        doomed.append(Path(str(meta_out)))
    for path in doomed:
        with contextlib.suppress(OSError):  # gone, or on a disk no longer there
            path.unlink()
    _unlink(record)


def _publish(partial: Path, final: Path) -> None:
    """Give a finished export file its name; never over a file that appeared meanwhile."""
    if final.exists():
        raise StoreError(f"{final} already exists; choose another name.")
    os.replace(partial, final)
    _fsync(final.parent)


def export_vault(vault: Vault, out: Path) -> list[Path]:
    """An encrypted backup: the database under the same key, and its metadata beside it.

    Restoring is copying both files into a profile folder as ``smallhold.db`` and
    ``vault.json``; the same passphrase, keyring entry or key file opens it. The metadata
    copy takes its name first and the database last, so a backup whose database exists is
    complete (:func:`_export_to`).
    """
    meta_out = out.with_name(out.name + ".vault.json")
    with _export_to(vault.files, out, meta_out) as (partial, partial_meta):
        with vault.lock:
            sqlcipher.export_copy(vault.conn, partial, vault._key)
        _fsync(partial)
        assert partial_meta is not None
        _write_json_atomic(meta_out, _meta_json(vault.files, vault.vault_meta), tmp=partial_meta)
        _publish(partial, out)
    return [out, meta_out]


def dump_plaintext(vault: Vault, out: Path) -> int:
    """Every row of every ordinary table as JSON lines (blobs in base64): the user's own copy.

    This writes the user's data unencrypted, on purpose; the CLI asks before calling it.
    Returns the number of rows written. Written under a hidden partial name first, like
    :func:`export_vault`, so a killed dump leaves no plaintext behind once the vault is
    next opened.
    """
    count = 0
    with _export_to(vault.files, out, None) as (partial, _):
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with vault.lock, os.fdopen(fd, "w", encoding="utf-8") as handle:
            tables = [str(row[1]) for row in vault.conn.execute("PRAGMA main.table_list")
                      if row[2] == "table" and not str(row[1]).startswith("sqlite_")]
            for table in sorted(tables):
                cursor = vault.conn.execute(f'SELECT * FROM "{table}"')
                names = [d[0] for d in cursor.description]
                for row in cursor:
                    values = {n: _jsonable(v) for n, v in zip(names, row, strict=True)}
                    handle.write(json.dumps({"table": table, "row": values}, ensure_ascii=False))
                    handle.write("\n")
                    count += 1
            handle.flush()
            os.fsync(handle.fileno())
        _publish(partial, out)
    return count


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    return value


def wipe_vault(paths: Paths, profile: str = DEFAULT_PROFILE) -> list[str]:
    """Delete the vault, its key (keyring entry or key file) and session; returns what went.

    With the key gone the ciphertext is unreadable wherever copies of it remain (backups,
    SSD blocks the file system does not overwrite): deleting the key is what erases the data.
    """
    files = vault_files(paths, profile)
    removed: list[str] = []
    with _exclusive(files):
        meta = _read_meta(files)
        if meta is not None:
            _forget_key(profile, meta.key_source, meta.key_id, meta.key_file)
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
    meta = _read_meta(files)
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
