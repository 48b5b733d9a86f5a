"""Attacks on the vault's files (issue 22, items 5 and 6): emptied, cut or orphaned files,
kills mid-rekey and mid-export, a copied home.

The promise: a vault that ``vault.json`` says exists is never silently recreated, and after
a kill at any point the vault opens with exactly one working key and nothing else is left
behind (no stray key file, no SQLite journal, no half-written backup).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from smallhold.cli import main
from smallhold.errors import StoreError, VaultCorruptError, VaultLockedError
from smallhold.paths import Paths, resolve_paths
from smallhold.store import sqlcipher
from smallhold.store import vault as store

NOTES = ("the safe code is 4471", "meet at the old mill")


def make_vault(paths: Paths) -> Path:
    """A default keyfile vault (the test machine has no keyring) holding NOTES."""
    with store.open_vault(paths, create_default=True, env={}) as vault:
        assert vault.vault_meta.key_source == "keyfile"
        with vault.transaction() as conn:
            conn.execute("CREATE TABLE notes (body TEXT)")
            conn.executemany("INSERT INTO notes VALUES (?)", [(n,) for n in NOTES])
    return store.vault_files(paths).db


def read_notes(paths: Paths) -> list[str]:
    with store.open_vault(paths, env={}) as vault:
        return [r[0] for r in vault.conn.execute("SELECT body FROM notes ORDER BY rowid")]


def profile_listing(paths: Paths) -> list[str]:
    return sorted(p.name for p in store.vault_files(paths).folder.iterdir())


def key_files(paths: Paths) -> list[str]:
    folder = paths.config_dir / "keys"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


# -- item 5: an emptied, cut or missing database is damage, never a new vault ----------------


@pytest.mark.parametrize("create_default", [False, True])
def test_emptied_database_is_damage_not_a_new_vault(paths: Paths, create_default: bool) -> None:
    db = make_vault(paths)
    db.write_bytes(b"")  # truncate -s 0 smallhold.db
    with pytest.raises(VaultCorruptError, match=r"empty \(0 bytes\).*vault export"):
        store.open_vault(paths, create_default=create_default, env={})
    assert db.stat().st_size == 0  # nothing was written into it
    assert profile_listing(paths) == ["smallhold.db", "vault.json", "vault.lock"]


def test_emptied_database_fails_the_cli_that_used_to_show_an_empty_table(paths: Paths) -> None:
    make_vault(paths).write_bytes(b"")
    code, out, err = cli("memory", "list")
    assert code != 0 and out == "" and "vault export" in err
    code, out, err = cli("vault", "verify")
    assert code != 0 and "intact" not in out and "empty (0 bytes)" in err
    code, out, _ = cli("vault", "status", "--json")
    assert code == 0 and any("DAMAGED" in note for note in json.loads(out)["notes"])


def test_cut_short_database_is_damage(paths: Paths) -> None:
    db = make_vault(paths)
    with store.open_vault(paths, env={}) as vault, vault.transaction() as conn:
        conn.executemany("INSERT INTO notes VALUES (?)", [("x" * 400,)] * 300)
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    with pytest.raises(VaultCorruptError, match="vault export"):
        store.open_vault(paths, env={})
    assert db.stat().st_size == len(data) // 2
    code, out, _ = cli("vault", "verify")
    assert code != 0 and "intact" not in out


@pytest.mark.parametrize("create_default", [False, True])
def test_missing_database_is_damage_and_is_not_recreated(paths: Paths,
                                                         create_default: bool) -> None:
    db = make_vault(paths)
    db.unlink()
    with pytest.raises(VaultCorruptError, match=r"missing.*vault export"):
        store.open_vault(paths, create_default=create_default, env={})
    assert not db.exists()


def test_connect_without_create_never_makes_or_fills_a_file(tmp_path: Path) -> None:
    """The root: SQLite creates a missing file and reads an empty one as a new database."""
    key = os.urandom(32)
    with pytest.raises(FileNotFoundError):
        sqlcipher.connect(tmp_path / "gone.db", key, create=False)
    assert not (tmp_path / "gone.db").exists()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(sqlcipher.EmptyDatabase):
        sqlcipher.connect(empty, key, create=False)
    assert empty.stat().st_size == 0 and sorted(os.listdir(tmp_path)) == ["empty.db"]


@pytest.mark.parametrize("create_default", [False, True])
def test_database_without_its_metadata_is_never_overwritten(paths: Paths,
                                                            create_default: bool) -> None:
    db = make_vault(paths)
    before = db.read_bytes()
    store.vault_files(paths).meta.unlink()
    with pytest.raises(VaultCorruptError, match=r"vault\.json does not"):
        store.open_vault(paths, create_default=create_default, env={})
    assert db.read_bytes() == before
    assert "vault.json does not" in " ".join(store.vault_status(paths).notes)


# -- item 6: crash leftovers -------------------------------------------------------------------

KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from smallhold.paths import resolve_paths
    from smallhold.store import sqlcipher, vault as store

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def die_inside_sqlcipher_export():
        real = sqlcipher.export_copy
        def export_copy(conn, target, key):
            journal = target.with_name(target.name + "-journal")
            # SQLite calls this every 50 VM steps: die once the copy has its journal, i.e.
            # in the middle of sqlcipher_export, as a power cut or OOM kill would.
            conn.set_progress_handler(lambda: journal.exists() and die() or 0, 50)
            real(conn, target, key)
        sqlcipher.export_copy = export_copy

    mode, arg = sys.argv[1], sys.argv[2]
    paths = resolve_paths()
    if mode == "rekey-stage":
        def stage(name):
            if name == arg:
                die()
        store.rekey_vault(paths, "default", store.KeySpec("keyfile"), env={}, on_stage=stage)
    elif mode == "rekey-export":
        die_inside_sqlcipher_export()
        store.rekey_vault(paths, "default", store.KeySpec("keyfile"), env={})
    elif mode in ("export", "dump"):
        out = Path(arg)
        def written():
            return [p for p in out.parent.iterdir() if out.name in p.name]
        with store.open_vault(paths, env={}) as vault:
            if mode == "export":
                die_inside_sqlcipher_export()
                store.export_vault(vault, out)
            else:
                vault.conn.set_progress_handler(lambda: written() and die() or 0, 50)
                store.dump_plaintext(vault, out)
    raise SystemExit("the kill point was never reached")
""")


def kill_at(mode: str, arg: str) -> None:
    env = os.environ | {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    proc = subprocess.run([sys.executable, "-c", KILLER, mode, arg], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def add_bulk(paths: Paths) -> None:
    """Enough rows that the export runs many VM steps with its journal open."""
    with store.open_vault(paths, env={}) as vault, vault.transaction() as conn:
        conn.executemany("INSERT INTO notes VALUES (?)", [(f"row {i} " + "y" * 300,)
                                                          for i in range(400)])


@pytest.mark.parametrize("stage,new_key_wins", [
    ("exported", False), ("verified", False), ("prepared", False), ("committed", True),
])
def test_kill_mid_rekey_to_keyfile_leaves_one_key_file_and_it_works(
        paths: Paths, stage: str, new_key_wins: bool) -> None:
    make_vault(paths)
    old_files = key_files(paths)
    assert old_files == ["default.key"]
    kill_at("rekey-stage", stage)
    assert read_notes(paths)[:2] == list(NOTES)  # whichever key won opens it
    kept = key_files(paths)
    assert len(kept) == 1, kept  # no stray key: neither the unused new one nor the old one
    assert (kept == old_files) is not new_key_wins
    meta = store.vault_files(paths).meta
    with store.open_vault(paths, env={}) as vault:
        assert vault.vault_meta.key_file == str(paths.config_dir / "keys" / kept[0])
    assert profile_listing(paths) == ["smallhold.db", "vault.json", "vault.lock"]
    assert json.loads(meta.read_text())["key_file"] == f"keys/{kept[0]}"


def test_kill_inside_the_rekey_export_leaves_no_journal_or_key(paths: Paths) -> None:
    make_vault(paths)
    add_bulk(paths)
    kill_at("rekey-export", "")
    folder = store.vault_files(paths).folder
    # What the kill left, exactly as the issue reports it.
    assert (folder / "smallhold.db.rekey-journal").exists()
    assert read_notes(paths)[:2] == list(NOTES)  # the old key, and recovery ran
    assert profile_listing(paths) == ["smallhold.db", "vault.json", "vault.lock"]
    assert key_files(paths) == ["default.key"]


def test_recovery_removes_each_leftover_a_kill_can_leave(paths: Paths) -> None:
    """Every temporary name, laid down as a kill leaves it (the sidecars of the rekey copy
    and of an init, half-written JSON), goes on the next open; the live WAL stays."""
    make_vault(paths)
    folder = store.vault_files(paths).folder
    names = ["smallhold.db.rekey", "smallhold.db.rekey-journal", "smallhold.db.rekey-wal",
             "smallhold.db.rekey-shm", "smallhold.db.init-journal", "smallhold.db.init-wal",
             ".vault.json.4242.tmp", ".vault.json.next.4242.tmp"]
    for name in names:
        (folder / name).write_bytes(os.urandom(64))
    assert read_notes(paths)[:2] == list(NOTES)
    assert profile_listing(paths) == ["smallhold.db", "vault.json", "vault.lock"]


@pytest.mark.parametrize("mode", ["export", "dump"])
def test_kill_mid_export_leaves_no_half_backup(paths: Paths, tmp_path: Path, mode: str) -> None:
    make_vault(paths)
    add_bulk(paths)
    backups = tmp_path / "backups"
    backups.mkdir()
    out = backups / ("me.db" if mode == "export" else "me.jsonl")
    kill_at(mode, str(out))
    assert not out.exists()  # a half-written file under the real name would pass for a backup
    assert list(backups.iterdir())  # the hidden partial the kill left ...
    read_notes(paths)  # ... goes when the vault is next opened
    assert list(backups.iterdir()) == []
    assert profile_listing(paths) == ["smallhold.db", "vault.json", "vault.lock"]
    with store.open_vault(paths, env={}) as vault:  # and the export then works
        if mode == "export":
            assert store.export_vault(vault, out) == [out, backups / "me.db.vault.json"]
        else:
            assert store.dump_plaintext(vault, out) >= len(NOTES)
    assert sorted(p.name for p in backups.iterdir() if p.name.startswith(".")) == []


def test_failed_init_leaves_no_key_file_to_block_the_next(paths: Paths) -> None:
    """A plaintext 0.1 database still open elsewhere makes init refuse; it used to leave the
    new key file behind, and every later first-use then failed on 'already exists'."""
    db = store.vault_files(paths).db
    db.parent.mkdir(parents=True)
    plain = sqlite3.connect(db)
    plain.execute("CREATE TABLE notes (body TEXT)")
    plain.commit()
    plain.close()
    (db.parent / "smallhold.db-wal").write_bytes(b"busy")
    with pytest.raises(StoreError, match="open in another process"):
        store.open_vault(paths, create_default=True, env={})
    assert key_files(paths) == []
    (db.parent / "smallhold.db-wal").unlink()
    with store.open_vault(paths, create_default=True, env={}) as vault:
        assert vault.created
    assert key_files(paths) == ["default.key"]


def test_init_cut_between_commit_and_rename_finishes(paths: Paths) -> None:
    """Encrypting a 0.1 plaintext file: killed after vault.json was written, the plaintext
    file is still at smallhold.db and the encrypted one at smallhold.db.init."""
    db = make_vault(paths)
    db.rename(db.with_name("smallhold.db.init"))
    plain = sqlite3.connect(db)
    plain.execute("CREATE TABLE leftover (x)")
    plain.commit()
    plain.close()
    assert read_notes(paths)[:2] == list(NOTES)
    assert profile_listing(paths) == ["smallhold.db", "vault.json", "vault.lock"]


# -- item 6: vault.json names its key file relative to the home ---------------------------------


def copy_home(paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    home = Path(os.environ["SMALLHOLD_HOME"])
    copy = tmp_path / "copied-home"
    shutil.copytree(home, copy)
    shutil.rmtree(home)  # the original home (and its key file) is gone
    monkeypatch.setenv("SMALLHOLD_HOME", str(copy))
    return resolve_paths()


def test_copied_home_opens_with_its_own_key_file(paths: Paths, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    make_vault(paths)
    meta = json.loads(store.vault_files(paths).meta.read_text())
    assert meta["key_file"] == "keys/default.key"
    copied = copy_home(paths, tmp_path, monkeypatch)
    assert read_notes(copied)[:2] == list(NOTES)
    with store.open_vault(copied, env={}) as vault:
        assert vault.vault_meta.key_file == str(copied.config_dir / "keys" / "default.key")


def test_old_absolute_key_path_resolves_to_this_homes_key_and_is_rewritten(
        paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_vault(paths)
    meta_file = store.vault_files(paths).meta
    meta = json.loads(meta_file.read_text())
    meta["key_file"] = str(paths.config_dir / "keys" / "default.key")  # as older versions wrote
    meta_file.write_text(json.dumps(meta))
    copied = copy_home(paths, tmp_path, monkeypatch)
    assert read_notes(copied)[:2] == list(NOTES)
    store.rekey_vault(copied, "default", store.KeySpec("keyfile"), env={})
    rewritten = json.loads(store.vault_files(copied).meta.read_text())["key_file"]
    assert rewritten.startswith("keys/default-") and not Path(rewritten).is_absolute()
    assert read_notes(copied)[:2] == list(NOTES)
    assert len(key_files(copied)) == 1


def test_key_file_outside_the_home_keeps_its_absolute_path(paths: Paths,
                                                           tmp_path: Path) -> None:
    stick = tmp_path / "usb" / "me.key"
    with store.init_vault(paths, "default", store.KeySpec("keyfile", key_file=stick)):
        pass
    assert json.loads(store.vault_files(paths).meta.read_text())["key_file"] == str(stick)
    assert not (tmp_path / "usb" / "me.key.pending").exists()
    with store.open_vault(paths, env={}):
        pass
    stick.unlink()
    with pytest.raises(VaultLockedError, match="key file"):
        store.open_vault(paths, env={})


def test_rekey_refuses_an_existing_key_file_and_keeps_the_old_key(paths: Paths) -> None:
    make_vault(paths)
    existing = paths.config_dir / "keys" / "default.key"
    before = existing.read_bytes()
    with pytest.raises(StoreError, match="already exists"):
        store.rekey_vault(paths, "default", store.KeySpec("keyfile", key_file=existing), env={})
    assert key_files(paths) == ["default.key"] and existing.read_bytes() == before
    assert read_notes(paths)[:2] == list(NOTES)
    assert profile_listing(paths) == ["smallhold.db", "vault.json", "vault.lock"]
