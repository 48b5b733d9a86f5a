"""Hostile or broken CLI input (issue 22, item 6): profile names that climb out of the
profiles folder, a config.toml that is not a file, and errors that must stay one line.

The promise (README): every error is one line on stderr saying what happened and what to
do, with a non-zero exit code, never a traceback; and a profile name never becomes a path
outside ``<data>/profiles``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from smallhold import cli as cli_module
from smallhold.config import load_settings
from smallhold.errors import ConfigError, VaultCorruptError
from smallhold.paths import Paths
from smallhold.store import session as sessions
from smallhold.store import vault as store

LONG = ("the vault database is damaged in a way that needs a long explanation, which goes on "
        "well past eighty columns so that a terminal-width printer would wrap it twice over")


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_module.main, list(args), env=env)
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit), repr(result.exception)  # a traceback, not an error line
    return result.exit_code, result.stdout, result.stderr


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


# -- profile names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "work", "work-2", "a.b_c", "X" * 64, "0"])
def test_ordinary_profile_names_are_accepted(paths: Paths, name: str) -> None:
    assert paths.profile_dir(name) == paths.data_dir / "profiles" / name


@pytest.mark.parametrize("name", ["", ".", "..", "../../evil", "a/b", "/abs", ".hidden",
                                  "-x", "x" * 65, "a\nb", "[/]", "a b", "é"])
def test_unsafe_profile_names_are_refused_before_any_path(paths: Paths, name: str) -> None:
    with pytest.raises(ConfigError, match="invalid profile name"):
        paths.profile_dir(name)
    with pytest.raises(ConfigError, match="invalid profile name"):
        sessions.session_path(paths.runtime_dir, name)
    with pytest.raises(ConfigError, match="invalid profile name"):
        store.default_key_file(paths, name)


def test_profile_option_cannot_put_a_vault_outside_the_profiles_folder(
        tmp_path: Path, smallhold_home: Path) -> None:
    before = tree(tmp_path)
    code, out, err = run("vault", "init", "--profile", "../../evil", "--key-file",
                         str(tmp_path / "evil.key"))
    assert code == 2 and out == ""
    assert "invalid profile name '../../evil'" in one_error_line(err)
    assert tree(tmp_path) == before  # no vault, no key file, no folder, anywhere


def test_profile_from_environment_and_config_is_checked(paths: Paths,
                                                        smallhold_home: Path) -> None:
    code, _, err = run("memory", "list", env={"SMALLHOLD_PROFILE": "../outside"})
    assert code == 2 and "invalid profile name" in one_error_line(err)
    assert not (paths.data_dir / "outside").exists()
    with pytest.raises(ConfigError, match="invalid profile name"):
        load_settings(paths, env={"SMALLHOLD_PROFILE": "../outside"})
    paths.ensure(paths.config_dir)
    paths.config_file.write_text('profile = "../../x"\n')
    with pytest.raises(ConfigError, match="invalid profile name"):
        load_settings(paths, env={})
    code, _, err = run("config", "show")
    assert code == 2 and "invalid profile name" in one_error_line(err)


def test_vault_lock_cannot_delete_a_json_file_outside_the_sessions_folder(paths: Paths) -> None:
    victim = paths.runtime_dir / "victim.json"
    victim.parent.mkdir(parents=True)
    victim.write_text("{}")
    code, _, err = run("vault", "lock", "--profile", "../victim")
    assert code == 2 and "invalid profile name" in one_error_line(err)
    assert victim.exists()


# -- config.toml that is not a readable TOML file ----------------------------------------------


def test_config_file_that_is_a_directory_is_a_config_error(paths: Paths) -> None:
    paths.config_file.mkdir(parents=True)
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_settings(paths, env={})
    code, out, err = run("config", "show")
    assert code == 2 and out == ""
    assert str(paths.config_file) in one_error_line(err)


def test_config_file_that_is_not_utf8_is_a_config_error(paths: Paths) -> None:
    paths.ensure(paths.config_dir)
    paths.config_file.write_bytes(b"[runtime]\nbackend = '\xff'\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(paths, env={})


def test_clashing_environment_variables_are_a_config_error(paths: Paths) -> None:
    env = {"SMALLHOLD_RUNTIME": "fast", "SMALLHOLD_RUNTIME__N_CTX": "2048"}
    with pytest.raises(ConfigError, match=r"SMALLHOLD_RUNTIME and SMALLHOLD_RUNTIME__\S+ clash"):
        load_settings(paths, env=env)
    with pytest.raises(ConfigError, match=r"SMALLHOLD_RUNTIME and SMALLHOLD_RUNTIME__\S+ clash"):
        load_settings(paths, env=dict(reversed(env.items())))


# -- one line, whatever the terminal ----------------------------------------------------------


def test_long_error_is_one_line_when_stderr_is_a_pipe(paths: Paths) -> None:
    """The real console script, stderr a pipe (rich would wrap at 80 columns)."""
    store.open_vault(paths, create_default=True, env={}).close()
    store.vault_files(paths).db.unlink()
    env = os.environ | {"COLUMNS": "40", "PYTHON_KEYRING_BACKEND":
                        "keyring.backends.fail.Keyring"}
    done = subprocess.run([sys.executable, "-m", "smallhold.cli", "vault", "verify"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    line = one_error_line(done.stderr)
    assert done.returncode == 1 and len(line) > 120 and "is missing" in line


def test_error_text_is_not_read_as_markup(tmp_path: Path) -> None:
    """A path holding rich markup used to crash the error printer (MarkupError traceback)."""
    odd = tmp_path / "[" / "]my[bold].key"  # the path reads ".../[/]my[bold].key"
    odd.parent.mkdir()
    odd.write_text("not a key")
    code, _, err = run("vault", "init", "--key-file", str(odd))
    assert code == 1 and f"the key file {odd} already exists" in one_error_line(err)


def test_bad_option_value_is_one_line(paths: Paths) -> None:
    code, _, err = run("vault", "unlock", "--for", "soon")
    assert code == 2
    line = one_error_line(err)
    assert "not a duration" in line and "vault unlock --help`" in line


@pytest.mark.parametrize("args", [["--bogus"], ["nonsense"]])
def test_bad_root_option_or_command_is_one_line(args: list[str]) -> None:
    code, _, err = run(*args)
    assert code == 2
    line = one_error_line(err)
    assert "No such" in line and " --help`)" in line


@click.command()
def boom() -> None:
    """A command without ``handle_errors``, as a new one might be written."""
    raise VaultCorruptError(LONG + "\nand a second line")


def test_error_escaping_a_command_is_still_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli_module.SUITE_COMMANDS, "boom", (__name__, "test only"))
    code, _, err = run("boom")
    assert code == VaultCorruptError.exit_code
    assert one_error_line(err) == f"error: {LONG} and a second line"


def test_long_success_message_is_one_line_when_stdout_is_a_pipe(paths: Paths) -> None:
    """Scripts parse "Created the vault … (key: keyfile)"; rich wrapped it at COLUMNS (or 80)."""
    key = paths.config_dir / "keys" / "a-key-file-with-a-long-name-so-the-line-is-long.key"
    env = os.environ | {"COLUMNS": "40", "PYTHON_KEYRING_BACKEND":
                        "keyring.backends.fail.Keyring"}
    done = subprocess.run([sys.executable, "-m", "smallhold.cli", "vault", "init", "--key-file",
                           str(key)], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, lines
    folder = str(store.vault_files(paths).folder)
    assert lines[0] == f"Created the vault of profile default in {folder} (key: keyfile)."
