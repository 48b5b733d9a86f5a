"""life with the network gone, and what is left of a source after `life forget`."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
from life_data import Personas, smallhold_json

from smallhold.paths import resolve_paths


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every attempt to open a connection is recorded and refused."""
    tried: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        if self.family != socket.AF_UNIX:
            tried.append(address)
            raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return tried


def test_ingest_and_check_work_with_the_network_blocked(
        life_personas: Personas, tmp_path: Path, no_network: list[object]) -> None:
    persona = life_personas.get(7)
    folder = tmp_path / "exports"
    shutil.copytree(persona.folder, folder)
    (folder / "ground_truth.json").unlink()
    assert smallhold_json("life", "ingest", str(folder))["problems"] == 0
    checked = smallhold_json("life", "check", "--as-of", persona.truth["period"]["as_of"])
    assert checked["alerts"]
    assert no_network == []  # nothing even tried to leave the machine


def test_forget_leaves_nothing_of_the_source(life_personas: Personas, tmp_path: Path) -> None:
    persona = life_personas.get(0)
    contact = persona.truth["persona"]["family_contact"]["email"]
    smallhold_json("life", "ingest", str(persona.folder / "mail.mbox"),
        str(persona.folder / "calendar.ics"))
    paths = resolve_paths()
    database = paths.profile_dir("default") / "smallhold.db"
    for file in database.parent.glob("smallhold.db*"):  # encrypted at rest: no plaintext
        assert contact.encode() not in file.read_bytes()
    exported = tmp_path / "life.jsonl"
    assert smallhold_json("life", "export", str(exported))["records"] > 0
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert {line["type"] for line in lines} >= {"values", "event", "message"}
    assert exported.stat().st_mode & 0o077 == 0  # readable by the person only
    smallhold_json("life", "forget", "mail.mbox", "--yes")
    from smallhold.store.vault import open_vault

    with open_vault(paths, "default") as vault:  # decrypted: nothing of the mailbox left
        tables = [r[0] for r in vault.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'life_%'")]
        for table in tables:
            rows = vault.conn.execute(f'SELECT * FROM "{table}"').fetchall()
            assert not any(contact in str(row) for row in rows), table
            assert not any("mail.mbox" in str(row) for row in rows), table
