"""The vault: keys from passphrase, key file and keyring; lock/unlock; rekey; export; wipe.

Every failure path checks that nothing on disk changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import pytest

from smallhold.errors import (
    SchemaTooNewError,
    StoreError,
    VaultBusyError,
    VaultCorruptError,
    VaultLockedError,
    VaultNotFoundError,
    WrongKeyError,
)
from smallhold.paths import Paths, resolve_paths
from smallhold.store import keys, recovery
from smallhold.store import vault as store
from smallhold.store.migrations import Migration
from smallhold.trace import CallRecord, TraceLog

PASS = "correct horse battery staple"
SECRETS = ("my passport number is X1234567", "Dr. Okonkwo on Tuesday at 3pm",
           "diagnosis: hypertension stage 1")


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    monkeypatch.setenv("SMALLHOLD_HOME", str(tmp_path / "home"))
    for name in (store.ENV_PASSPHRASE, store.ENV_KEY_FILE):
        monkeypatch.delenv(name, raising=False)
    return resolve_paths()


@pytest.fixture
def env() -> dict[str, str]:
    return {}


def init_passphrase(paths: Paths, profile: str = "default") -> None:
    with store.init_vault(paths, profile, store.KeySpec("passphrase", passphrase=PASS)):
        pass


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file() and p.name != "vault.lock"}


def write_secrets(vault: store.Vault) -> None:
    with vault.transaction() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS notes (body TEXT)")
        conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS notes_fts USING fts5(body)")
        for text in SECRETS:
            conn.execute("INSERT INTO notes VALUES (?)", (text,))
            conn.execute("INSERT INTO notes_fts VALUES (?)", (text,))


def read_secrets(vault: store.Vault) -> list[str]:
    return [r[0] for r in vault.conn.execute("SELECT body FROM notes ORDER BY rowid")]


# -- no plaintext on disk ---------------------------------------------------------------


def scan(folder: Path, needles: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                for form in (needle.encode(), needle.encode("utf-16-le")):
                    if form in data:
                        found.append(f"{path.name}: {needle!r}")
    return found


def test_no_plaintext_byte_of_user_content_on_disk(paths: Paths) -> None:
    init_passphrase(paths)
    folder = store.vault_files(paths).folder
    with store.open_vault(paths, passphrase=PASS) as vault:
        write_secrets(vault)
        with TraceLog(vault.conn, lock=vault.lock) as log:
            log.record_call(CallRecord(app="pocket", backend="llama", model="m",
                                       output=SECRETS[0], messages=[], started_at=1.0))
        # Scan while the connection is open: the WAL holds the newest pages now.
        wal = folder / "smallhold.db-wal"
        assert wal.exists() and wal.stat().st_size > 0
        assert scan(folder, SECRETS) == []
        # A big transaction that spills to a rollback journal must be encrypted too.
        with vault.transaction() as conn:
            conn.execute("PRAGMA cache_size = 2")
            conn.executemany("INSERT INTO notes VALUES (?)",
                             [(f"{SECRETS[1]} #{i}",) for i in range(3000)])
            assert scan(folder, SECRETS) == []
    assert scan(folder, SECRETS) == []
    with store.open_vault(paths, passphrase=PASS) as vault:
        assert read_secrets(vault)[:3] == list(SECRETS)
        assert vault.conn.execute("SELECT count(*) FROM notes_fts WHERE notes_fts MATCH "
                                  "'passport'").fetchone() == (1,)


# -- passphrase vaults ------------------------------------------------------------------


def test_wrong_passphrase_says_so_and_changes_nothing(paths: Paths) -> None:
    init_passphrase(paths)
    with store.open_vault(paths, passphrase=PASS) as vault:
        write_secrets(vault)
    folder = store.vault_files(paths).folder
    before = digest(folder)
    with pytest.raises(WrongKeyError, match="passphrase does not open"):
        store.open_vault(paths, passphrase="wrong horse battery staple")
    with pytest.raises(WrongKeyError):
        store.unlock_vault(paths, "default", "wrong horse battery staple", seconds=60)
    with pytest.raises(WrongKeyError):
        store.rekey_vault(paths, "default", store.KeySpec("passphrase", passphrase="x" * 12),
                          passphrase="not it at all")
    assert digest(folder) == before
    with store.open_vault(paths, passphrase=PASS) as vault:
        assert read_secrets(vault) == list(SECRETS)


def test_missing_vault_and_locked_vault_are_distinct_errors(paths: Paths) -> None:
    with pytest.raises(VaultNotFoundError, match="vault init"):
        store.open_vault(paths)
    init_passphrase(paths)
    with pytest.raises(VaultLockedError, match="vault unlock"):
        store.open_vault(paths, env={})
    with store.open_vault(paths, env={store.ENV_PASSPHRASE: PASS}):
        pass


def test_unlock_keeps_a_session_until_lock_or_expiry(paths: Paths) -> None:
    init_passphrase(paths)
    session = store.unlock_vault(paths, "default", PASS, seconds=600)
    with store.open_vault(paths, env={}) as vault:
        assert vault.profile == "default"
    status = store.vault_status(paths)
    assert status.unlocked and status.how == "unlocked session"
    assert store.lock_vault(paths) is True
    with pytest.raises(VaultLockedError):
        store.open_vault(paths, env={})
    store.unlock_vault(paths, "default", PASS, seconds=600)
    later = session.expires_at + 1
    assert store.vault_status(paths, clock=lambda: later).unlocked is False
    with pytest.raises(VaultLockedError):
        store.open_vault(paths, env={})  # the expired session file was removed
    session_file = paths.runtime_dir / "sessions" / "default.json"
    assert not session_file.exists()


def test_session_file_is_private_and_bound_to_its_vault(paths: Paths) -> None:
    init_passphrase(paths)
    store.unlock_vault(paths, "default", PASS, seconds=0)
    session_file = paths.runtime_dir / "sessions" / "default.json"
    assert session_file.stat().st_mode & 0o077 == 0
    saved = session_file.read_bytes()
    store.wipe_vault(paths)
    init_passphrase(paths)  # a new vault with the same passphrase but a new id and salt
    session_file.write_bytes(saved)
    with pytest.raises(VaultLockedError):
        store.open_vault(paths, env={})


def test_short_passphrase_is_refused_before_anything_is_written(paths: Paths) -> None:
    with pytest.raises(StoreError, match="too short"):
        store.init_vault(paths, "default", store.KeySpec("passphrase", passphrase="abc"))
    assert not store.vault_exists(paths)


# -- key files and the keyring ----------------------------------------------------------


def test_key_file_vault_opens_without_a_prompt(paths: Paths, tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "me.key"
    with store.init_vault(paths, "default", store.KeySpec("keyfile", key_file=key_file)) as v:
        write_secrets(v)
    assert key_file.stat().st_mode & 0o077 == 0
    with store.open_vault(paths, env={}) as vault:
        assert read_secrets(vault) == list(SECRETS)
    key_file.chmod(0o644)
    with pytest.raises(StoreError, match="chmod 600"):
        store.open_vault(paths, env={})
    key_file.chmod(0o600)
    moved = tmp_path / "elsewhere.key"
    key_file.rename(moved)
    with pytest.raises(VaultLockedError, match="key file"):
        store.open_vault(paths, env={})
    with store.open_vault(paths, env={store.ENV_KEY_FILE: str(moved)}) as vault:
        assert read_secrets(vault) == list(SECRETS)


def test_key_file_of_another_vault_is_a_wrong_key(paths: Paths, tmp_path: Path) -> None:
    with store.init_vault(paths, "a", store.KeySpec("keyfile", key_file=tmp_path / "a.key")):
        pass
    with store.init_vault(paths, "b", store.KeySpec("keyfile", key_file=tmp_path / "b.key")):
        pass
    with pytest.raises(WrongKeyError):
        store.open_vault(paths, "a", key_file=tmp_path / "b.key")


class MemoryKeyring(keyring.backend.KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_keyring_vault_and_default_vault_prefer_the_keyring(
        paths: Paths, memory_keyring: MemoryKeyring) -> None:
    assert keys.keyring_usable()
    with store.open_vault(paths, "default", create_default=True, env={}) as vault:
        assert vault.created and vault.vault_meta.key_source == "keyring"
        write_secrets(vault)
    assert len(memory_keyring.items) == 1
    with store.open_vault(paths, env={}) as vault:
        assert read_secrets(vault) == list(SECRETS)
    memory_keyring.items.clear()
    with pytest.raises(VaultLockedError, match="keyring has no entry"):
        store.open_vault(paths, env={})


def test_default_vault_without_a_keyring_uses_a_private_key_file(paths: Paths) -> None:
    assert not keys.keyring_usable()  # the test machine is headless
    with store.open_vault(paths, "default", create_default=True, env={}) as vault:
        assert vault.created and vault.vault_meta.key_source == "keyfile"
        key_file = Path(str(vault.vault_meta.key_file))
    assert key_file.is_relative_to(paths.config_dir)
    with store.open_vault(paths, "default", create_default=True, env={}) as vault:
        assert not vault.created


# -- rekey ------------------------------------------------------------------------------


def test_rekey_moves_data_to_the_new_key_and_drops_the_old(paths: Paths, tmp_path: Path
                                                           ) -> None:
    init_passphrase(paths)
    with store.open_vault(paths, passphrase=PASS) as vault:
        write_secrets(vault)
        device = vault.device_id
    new = "a much longer new passphrase"
    stages: list[str] = []
    store.rekey_vault(paths, "default", store.KeySpec("passphrase", passphrase=new),
                      passphrase=PASS, on_stage=stages.append)
    assert stages == ["exported", "verified", "prepared", "committed", "done"]
    with pytest.raises(WrongKeyError):
        store.open_vault(paths, passphrase=PASS)
    with store.open_vault(paths, passphrase=new) as vault:
        assert read_secrets(vault) == list(SECRETS)
        assert vault.device_id == device
    key_file = tmp_path / "k.key"
    store.rekey_vault(paths, "default", store.KeySpec("keyfile", key_file=key_file),
                      passphrase=new)
    with store.open_vault(paths, env={}) as vault:
        assert read_secrets(vault) == list(SECRETS)
    folder = store.vault_files(paths).folder
    assert sorted(p.name for p in folder.iterdir()) == ["smallhold.db", "vault.json",
                                                         "vault.lock"]


def test_weaker_kdf_settings_are_reported_and_rekey_raises_them(
        paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    weak = keys.KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1)
    monkeypatch.setattr(keys.KdfParams, "fresh",
                        classmethod(lambda cls: keys.KdfParams(1, 8 * 1024, 1, "c2FsdHNhbHRzYWx0")))
    init_passphrase(paths)
    assert store.vault_status(paths).kdf_outdated
    monkeypatch.undo()
    store.rekey_vault(paths, "default", store.KeySpec("passphrase", passphrase=PASS),
                      passphrase=PASS)
    status = store.vault_status(paths)
    assert not status.kdf_outdated and status.kdf is not None
    assert status.kdf["memory_kib"] > weak.memory_kib


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from smallhold.paths import resolve_paths
    from smallhold.store import vault as store

    at = sys.argv[1]
    def stage(name):
        if name == at:
            os.kill(os.getpid(), signal.SIGKILL)
    store.rekey_vault(resolve_paths(), "default",
                      store.KeySpec("passphrase", passphrase=sys.argv[3]),
                      passphrase=sys.argv[2], on_stage=stage)
""")


@pytest.mark.parametrize("stage,new_key_wins", [
    ("exported", False), ("verified", False), ("prepared", False), ("committed", True),
])
def test_kill_mid_rekey_leaves_exactly_one_working_key(
        paths: Paths, stage: str, new_key_wins: bool) -> None:
    init_passphrase(paths)
    with store.open_vault(paths, passphrase=PASS) as vault:
        write_secrets(vault)
    new = "the next passphrase, long"
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, stage, PASS, new],
                          env=os.environ.copy(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    good, bad = (new, PASS) if new_key_wins else (PASS, new)
    with pytest.raises(WrongKeyError):
        store.open_vault(paths, passphrase=bad)
    with store.open_vault(paths, passphrase=good) as vault:
        assert read_secrets(vault) == list(SECRETS)
        assert vault.integrity_problems() == []
    folder = store.vault_files(paths).folder
    assert sorted(p.name for p in folder.iterdir()) == ["smallhold.db", "vault.json",
                                                         "vault.lock"]


def test_unlock_after_a_rekey_killed_past_its_commit_takes_the_new_passphrase(
        paths: Paths) -> None:
    """``vault unlock`` read vault.json before recovery finished the rekey: the new
    passphrase was "wrong" and the old one "damaged" the file until something else opened it.
    """
    init_passphrase(paths)
    new = "the next passphrase, long"
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, "committed", PASS, new],
                          env=os.environ.copy(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert store.unlock_vault(paths, "default", new, seconds=60).key
    with pytest.raises(WrongKeyError):
        store.unlock_vault(paths, "default", PASS, seconds=60)


def test_rekey_refuses_while_another_process_has_the_vault_open(
        paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    init_passphrase(paths)
    monkeypatch.setattr(recovery, "LOCK_WAIT_S", 0.2)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom smallhold.paths import resolve_paths\n"
         "from smallhold.store import vault as s\n"
         "v = s.open_vault(resolve_paths(), passphrase=sys.argv[1])\nprint('open', flush=True)\n"
         "time.sleep(60)", PASS], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        before = digest(store.vault_files(paths).folder)
        with pytest.raises(VaultBusyError, match="another smallhold process"):
            store.rekey_vault(paths, "default", store.KeySpec("passphrase", passphrase="n" * 10),
                              passphrase=PASS)
        assert digest(store.vault_files(paths).folder) == before
    finally:
        holder.kill()
        holder.wait()


# -- damage, newer versions, old files --------------------------------------------------


def test_damaged_first_page_is_corruption_not_a_wrong_key(paths: Paths) -> None:
    init_passphrase(paths)
    with store.open_vault(paths, passphrase=PASS) as vault:
        write_secrets(vault)
    db = store.vault_files(paths).db
    data = bytearray(db.read_bytes())
    data[100:164] = bytes(64)
    db.write_bytes(bytes(data))
    with pytest.raises(VaultCorruptError, match="key is right"):
        store.open_vault(paths, passphrase=PASS)
    assert db.read_bytes() == bytes(data)


def test_damaged_later_page_is_found_by_verify_or_on_open(paths: Paths) -> None:
    init_passphrase(paths)
    with store.open_vault(paths, passphrase=PASS) as vault:
        write_secrets(vault)
        with vault.transaction() as conn:
            conn.executemany("INSERT INTO notes VALUES (?)", [("x" * 500,)] * 200)
    db = store.vault_files(paths).db
    data = bytearray(db.read_bytes())
    page = 4096
    data[page * 3 + 200: page * 3 + 260] = os.urandom(60)
    db.write_bytes(bytes(data))
    try:
        vault = store.open_vault(paths, passphrase=PASS)
    except VaultCorruptError as exc:  # the damaged page was one that opening reads
        assert "restore it from a backup" in str(exc).lower()
    else:
        with vault:
            assert vault.integrity_problems()
    assert db.read_bytes() == bytes(data)


def test_damaged_metadata_is_reported(paths: Paths) -> None:
    init_passphrase(paths)
    store.vault_files(paths).meta.write_text("{not json")
    with pytest.raises(VaultCorruptError, match=r"vault\.json"):
        store.open_vault(paths, passphrase=PASS)


def test_database_from_a_newer_smallhold_is_refused(paths: Paths) -> None:
    init_passphrase(paths)
    steps = [Migration("0001_a", "CREATE TABLE a (x)")]
    with store.open_vault(paths, passphrase=PASS) as vault:
        vault.migrate(steps, scope="demo")
        with vault.transaction() as conn:
            conn.execute("INSERT INTO _migrations VALUES ('demo', '0002_future', 0)")
    with store.open_vault(paths, passphrase=PASS) as vault, \
            pytest.raises(SchemaTooNewError, match="0002_future"):
        vault.migrate(steps, scope="demo")


def test_plaintext_database_from_before_the_vault_is_encrypted_on_init(paths: Paths) -> None:
    import sqlite3

    db = store.vault_files(paths).db
    db.parent.mkdir(parents=True)
    plain = sqlite3.connect(db)
    plain.execute("CREATE TABLE notes (body TEXT)")
    plain.executemany("INSERT INTO notes VALUES (?)", [(s,) for s in SECRETS])
    plain.commit()
    plain.close()
    init_passphrase(paths)
    assert scan(db.parent, SECRETS) == []
    with store.open_vault(paths, passphrase=PASS) as vault:
        assert read_secrets(vault) == list(SECRETS)


# -- export and wipe --------------------------------------------------------------------


def test_export_is_an_encrypted_backup_that_restores(paths: Paths, tmp_path: Path) -> None:
    init_passphrase(paths)
    with store.open_vault(paths, passphrase=PASS) as vault:
        write_secrets(vault)
        files = store.export_vault(vault, tmp_path / "backup" / "me.db")
    assert scan(tmp_path / "backup", SECRETS) == []
    restored = store.vault_files(paths, "restored").folder
    restored.mkdir(parents=True)
    (restored / "smallhold.db").write_bytes(files[0].read_bytes())
    (restored / "vault.json").write_bytes(files[1].read_bytes())
    with store.open_vault(paths, "restored", passphrase=PASS) as vault:
        assert read_secrets(vault) == list(SECRETS)


def test_plaintext_dump_has_every_row(paths: Paths, tmp_path: Path) -> None:
    init_passphrase(paths)
    out = tmp_path / "dump.jsonl"
    with store.open_vault(paths, passphrase=PASS) as vault:
        write_secrets(vault)
        count = store.dump_plaintext(vault, out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == count
    assert [r["row"]["body"] for r in lines if r["table"] == "notes"] == list(SECRETS)
    assert out.stat().st_mode & 0o077 == 0


def test_wipe_removes_database_metadata_and_key(paths: Paths, tmp_path: Path) -> None:
    key_file = tmp_path / "k.key"
    with store.init_vault(paths, "default", store.KeySpec("keyfile", key_file=key_file)) as v:
        write_secrets(v)
    removed = store.wipe_vault(paths)
    assert "key (keyfile)" in removed
    assert not key_file.exists()
    assert not store.vault_exists(paths)
    assert scan(store.vault_files(paths).folder, SECRETS) == []
    with pytest.raises(VaultNotFoundError):
        store.open_vault(paths)
