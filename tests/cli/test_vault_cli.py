"""`smallhold vault ...` from the command line, non-interactively as scripts use it."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from smallhold.cli import main
from smallhold.paths import resolve_paths
from smallhold.store import vault as store

PASS = "correct horse battery staple"


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["vault", *args], env=env, input=input,
                              catch_exceptions=False)


def test_init_status_unlock_lock_round_trip() -> None:
    result = run("init", "--json", env={"SMALLHOLD_NEW_PASSPHRASE": PASS})
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["exists"] and status["key_source"] == "passphrase"
    assert not status["unlocked"]
    assert json.loads(run("status", "--json").stdout)["how"] == "locked"

    result = run("unlock", "--for", "30m", "--json", env={"SMALLHOLD_PASSPHRASE": PASS})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["unlocked"] is True
    assert json.loads(run("status", "--json").stdout)["unlocked"] is True
    assert run("verify").exit_code == 0

    assert json.loads(run("lock", "--json").stdout)["was_unlocked"] is True
    result = run("verify", "--json")
    assert result.exit_code == 3
    assert json.loads(result.stderr)["error"]["code"] == "vault_locked"


def test_wrong_passphrase_is_a_plain_message_and_exit_code_3() -> None:
    run("init", env={"SMALLHOLD_NEW_PASSPHRASE": PASS})
    result = run("unlock", env={"SMALLHOLD_PASSPHRASE": "not the passphrase"})
    assert result.exit_code == 3
    assert "does not open the vault" in result.stderr
    assert "Traceback" not in result.output


def test_passphrase_prompt_when_interactive_input_is_given() -> None:
    result = run("init", input=f"{PASS}\n{PASS}\n")
    # CliRunner's stdin is not a terminal: scripts must use the environment instead.
    assert result.exit_code == 1
    assert "SMALLHOLD_PASSPHRASE" in result.stderr


def test_rekey_export_and_wipe(tmp_path: Path) -> None:
    run("init", env={"SMALLHOLD_NEW_PASSPHRASE": PASS})
    new = "another fine passphrase"
    result = run("rekey", "--json", env={"SMALLHOLD_PASSPHRASE": PASS,
                                         "SMALLHOLD_NEW_PASSPHRASE": new})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["key_source"] == "passphrase"
    assert run("verify", env={"SMALLHOLD_PASSPHRASE": PASS}).exit_code == 3
    assert run("verify", env={"SMALLHOLD_PASSPHRASE": new}).exit_code == 0

    out = tmp_path / "backup.db"
    result = run("export", str(out), "--json", env={"SMALLHOLD_PASSPHRASE": new})
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["files"]) == 2 and out.exists()

    dump = tmp_path / "dump.jsonl"
    refused = run("export", str(dump), "--plaintext", env={"SMALLHOLD_PASSPHRASE": new},
                  input="n\n")
    assert refused.exit_code != 0 and not dump.exists()
    result = run("export", str(dump), "--plaintext", "--yes", env={"SMALLHOLD_PASSPHRASE": new})
    assert result.exit_code == 0 and dump.exists()

    assert run("wipe", input="wrong-name\n").exit_code != 0
    assert store.vault_exists(resolve_paths())
    result = run("wipe", "--yes", "--json")
    assert result.exit_code == 0
    assert not store.vault_exists(resolve_paths())
    assert "no vault yet" in run("status").stdout


def test_key_file_vault_from_the_cli(tmp_path: Path) -> None:
    key_file = tmp_path / "my.key"
    result = run("init", "--key-file", str(key_file), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["key_source"] == "keyfile"
    assert run("verify").exit_code == 0  # no prompt, no variable: the key file opens it
    result = run("unlock")
    assert result.exit_code == 1 and "no passphrase to unlock" in result.stderr.replace("\n", " ")
