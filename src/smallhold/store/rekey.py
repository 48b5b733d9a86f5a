"""Rekey: re-encrypt a vault under a new key, so that a kill at any moment leaves one key working.

The data is exported under the new key to ``smallhold.db.rekey``, the new metadata written to
``vault.json.next``, and the rename of the database over the old one is the commit point.
Whoever opens the vault next finishes or undoes a rekey that was cut short
(:func:`smallhold.store.recovery.recover`), so a kill at any moment leaves exactly one key
working: the old one before the rename, the new one after it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from smallhold.errors import VaultCorruptError, VaultNotFoundError
from smallhold.paths import Paths
from smallhold.store import keys, sqlcipher
from smallhold.store.keysource import KeySpec, find_key, key_target, make_key, verified
from smallhold.store.recovery import begin_key_change, exclusive, recover, settle_key_journal
from smallhold.store.session import clear_session, load_session, save_session, session_path
from smallhold.store.vaultfiles import (
    VaultMeta,
    fsync,
    meta_json,
    open_db,
    read_meta,
    unlink,
    vault_files,
    write_json_atomic,
)


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
    with exclusive(files):
        meta = read_meta(files)
        if meta is None:
            raise VaultNotFoundError(f"profile {profile!r} has no vault; `smallhold vault init`.")
        key, how = find_key(paths, profile, meta, passphrase=passphrase, key_file=key_file,
                            env=environ)
        old_key = verified(meta, key, how, profile)
        key_id = uuid.uuid4().hex
        new_file = key_target(paths, profile, target, key_id)
        begin_key_change(files, profile, target.source, key_id, new_file, old=meta)
        try:
            conn = open_db(files, old_key)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                new_key, kdf = make_key(paths, profile, target, key_id, new_file)
                sqlcipher.export_copy(conn, files.rekey_db, new_key)
            finally:
                conn.close()
            fsync(files.rekey_db)
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
            write_json_atomic(files.next_meta, meta_json(files, new_meta))
            stage("prepared")
            unlink(*files.sidecars())
            os.replace(files.rekey_db, files.db)  # the commit point
            fsync(files.folder)
            stage("committed")
            os.replace(files.next_meta, files.meta)
            fsync(files.folder)
            settle_key_journal(files)  # the new key file takes its name; the old key goes
            path = session_path(paths.runtime_dir, profile)
            session = load_session(path, meta.vault_id)
            if target.source == "passphrase" and session is not None:
                save_session(path, replace(session, key=new_key))  # stay unlocked, as before
            else:
                clear_session(path)
            stage("done")
        except BaseException:
            recover(files)  # before the commit: the old key, as before; after: the new one
            raise
    return new_meta


__all__ = ["rekey_vault"]
