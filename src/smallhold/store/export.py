"""Copies of an open vault: an encrypted backup, or the user's data as plaintext JSON lines.

Both write under a hidden partial name noted in the profile folder and rename it into place as
their last step, so a file under the name the user asked for is always whole, and whatever a
killed export left is removed when the vault is next opened
(:func:`smallhold.store.recovery.drop_export`): a plaintext dump's partial file holds user data
in the clear.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smallhold.errors import StoreError
from smallhold.store import sqlcipher
from smallhold.store.recovery import drop_export
from smallhold.store.vaultfiles import (
    EXPORT_RECORD_PREFIX,
    VaultFiles,
    fsync,
    meta_json,
    write_json_atomic,
)

if TYPE_CHECKING:
    from smallhold.store.vault import Vault


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
    write_json_atomic(record, {
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
        drop_export(record)


def _publish(partial: Path, final: Path) -> None:
    """Give a finished export file its name; never over a file that appeared meanwhile."""
    if final.exists():
        raise StoreError(f"{final} already exists; choose another name.")
    os.replace(partial, final)
    fsync(final.parent)


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
        fsync(partial)
        assert partial_meta is not None
        write_json_atomic(meta_out, meta_json(vault.files, vault.vault_meta), tmp=partial_meta)
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


__all__ = ["dump_plaintext", "export_vault"]
