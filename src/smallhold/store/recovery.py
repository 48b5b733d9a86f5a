"""Finishing or undoing what a killed init, rekey or export left, under the vault's file lock.

Every open handle holds ``vault.lock`` shared; init, rekey and wipe take it exclusively. Whoever
takes it exclusively first runs :func:`recover` (opening tries to, without waiting), so a kill
at any moment leaves exactly one key working and no temporary file once the vault is next
opened. A failing init or rekey undoes itself by the same path, so a crash and an error leave
the same state.

Before a new key is made, ``vault.keyjournal.json`` names it and the key it replaces
(:func:`begin_key_change`); a new key file is written as ``<name>.pending`` and renamed into
place only after the commit, so recovery knows which key to keep and which to delete, and no
stray key is left behind (:func:`settle_key_journal`). Exports write under a hidden
``.partial`` name noted in the profile folder, so a cut-short backup (or plaintext dump) is
removed, never mistaken for a whole one (:func:`drop_export`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from smallhold.errors import VaultBusyError
from smallhold.store import sqlcipher
from smallhold.store.keys import key_file_path, key_file_ref
from smallhold.store.keysource import forget_key, pending_file
from smallhold.store.vaultfiles import (
    KeySource,
    VaultFiles,
    VaultMeta,
    fsync,
    read_meta,
    unlink,
    with_sidecars,
    write_json_atomic,
)

LOCK_WAIT_S = 10.0


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


def recover(files: VaultFiles) -> None:
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
            fsync(files.folder)
    elif files.rekey_db.exists():
        files.rekey_db.unlink()  # cut while exporting
    if files.init_db.exists() and not files.meta.exists():
        files.init_db.unlink()  # an init that never wrote its metadata
    elif files.init_db.exists() and (not files.db.exists()
                                     or sqlcipher.is_plaintext_sqlite(files.db)):
        # An init cut after its commit (vault.json written) and before its rename: the file
        # still at smallhold.db, if any, is the plaintext one of smallhold 0.1 it encrypted.
        unlink(*with_sidecars(files.db))
        os.replace(files.init_db, files.db)
        fsync(files.folder)
    unlink(*files.leftovers())
    settle_key_journal(files)
    for record in files.export_records():
        drop_export(record)


@contextlib.contextmanager
def exclusive(files: VaultFiles) -> Iterator[None]:
    fd = _lock(files, exclusive=True)
    try:
        recover(files)
        yield
    finally:
        os.close(fd)


def open_locked(files: VaultFiles) -> int:
    """Shared lock for a handle's lifetime, recovering a cut-short rekey first if possible."""
    try:
        fd = _lock(files, exclusive=True, wait=0.0)
    except VaultBusyError:
        return _lock(files, exclusive=False)
    try:
        recover(files)
        fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    return fd


def begin_key_change(files: VaultFiles, profile: str, source: KeySource, key_id: str,
                     target: Path | None, old: VaultMeta | None) -> None:
    """Write ``vault.keyjournal.json`` naming the key about to be made and the one it replaces.

    Written before the new key exists, so whatever happens next, recovery knows which key
    to delete: the new one if the vault never committed to it, else the old one.
    """
    def entry(source: str, key_id: str, key_file: str | None) -> dict[str, Any]:
        return {"key_source": source, "key_id": key_id,
                "key_file": key_file_ref(files.config_dir, key_file)}

    write_json_atomic(files.key_journal, {
        "profile": profile,
        "new": entry(source, key_id, str(target) if target is not None else None),
        "old": entry(old.key_source, old.key_id, old.key_file) if old is not None else None,
    })


def settle_key_journal(files: VaultFiles) -> None:
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
        unlink(files.key_journal)  # unreadable: keep every key rather than guess
        return
    new_file = key_file_path(files.config_dir, new.get("key_file"))
    pending = pending_file(Path(new_file)) if new_file else None
    meta = read_meta(files)
    if meta is not None and meta.key_id == new_id:
        if pending is not None and new_file is not None and pending.exists():
            os.replace(pending, new_file)
            fsync(pending.parent)
        if old is not None and str(old["key_id"]) != new_id:
            forget_key(profile, str(old["key_source"]), str(old["key_id"]),
                       key_file_path(files.config_dir, old.get("key_file")))
    else:
        forget_key(profile, new_source, new_id, str(pending) if pending else None)
    unlink(files.key_journal)
    fsync(files.folder)


def drop_export(record: Path) -> None:
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
    doomed = [path for partial in partials for path in with_sidecars(partial)]
    if out is not None and meta_out and not out.exists():
        doomed.append(Path(str(meta_out)))
    for path in doomed:
        with contextlib.suppress(OSError):  # gone, or on a disk no longer there
            path.unlink()
    unlink(record)


__all__ = [
    "LOCK_WAIT_S",
    "begin_key_change",
    "drop_export",
    "exclusive",
    "open_locked",
    "recover",
    "settle_key_journal",
]
