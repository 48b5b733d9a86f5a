"""Apps declare themselves once; the CLI, sync, jobs and the import contract read that."""

from __future__ import annotations

import fnmatch
import json
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import smallhold.apps
from smallhold.cli import main
from smallhold.errors import AppError
from smallhold.kit import registry
from smallhold.kit.spec import AppSpec, Ref

ROOT = Path(__file__).resolve().parents[2]

TOY_INIT = '''
"""toy: an app a test adds, to show that adding one touches only its folder."""
from smallhold.errors import AppError
from smallhold.kit.spec import AppSpec, Command, Ref


class ToyError(AppError):
    """The root of toy's errors."""


APP = AppSpec(
    name="toy", summary="A toy app.", errors=ToyError,
    commands=[Command("toy", Ref("smallhold.apps.toy.cli:toy"), "A toy command.")],
    collections=Ref("smallhold.apps.toy.models:SYNCED"),
    migrations=Ref("smallhold.apps.toy.models:MIGRATIONS"),
    jobs=Ref("smallhold.apps.toy.models:jobs"),
)
'''
TOY_MODELS = '''
from pydantic import BaseModel
from smallhold.kit.jobs import HOUR, Job
from smallhold.store.migrations import Migration


class Note(BaseModel):
    text: str


SYNCED = {"toy.notes": Note}
MIGRATIONS = ("toy", [Migration("0001_tally", "CREATE TABLE toy_tally (n INTEGER)")])


def jobs(home):
    def tally():
        with home.vault.transaction() as conn:
            conn.execute("INSERT INTO toy_tally VALUES (1)")
        return "counted one"
    return [Job("tally", 6 * HOUR, tally, power="anytime")]
'''
TOY_CLI = '''
import click
from smallhold.apps.toy import APP
from smallhold.kit.cli import open_home
from smallhold.store.collections import Collection
from smallhold.apps.toy.models import Note


@click.command()
@click.argument("text")
def toy(text):
    """Keep TEXT as a note in the vault."""
    with open_home("default", app=APP) as home:
        Collection(home.vault, "toy.notes", Note).put(Note(text=text), "one")
        tallied = home.vault.conn.execute("SELECT count(*) FROM toy_tally").fetchone()[0]
    click.echo(f"kept {text!r}; tally table has {tallied} row(s)")
'''


@pytest.fixture
def toy_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A toy app in a folder of its own, found through ``smallhold.apps``' search path."""
    folder = tmp_path / "more_apps" / "toy"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(textwrap.dedent(TOY_INIT))
    (folder / "models.py").write_text(textwrap.dedent(TOY_MODELS))
    (folder / "cli.py").write_text(textwrap.dedent(TOY_CLI))
    monkeypatch.setattr(smallhold.apps, "__path__", [*smallhold.apps.__path__,
                                                     str(folder.parent)])
    registry.forget()
    yield folder
    registry.forget()
    import sys
    for name in [m for m in sys.modules if m.startswith("smallhold.apps.toy")]:
        del sys.modules[name]


def test_pocket_and_code_declare_themselves() -> None:
    specs = {spec.name: spec for spec in registry.installed()}
    assert {"pocket", "code"} <= set(specs)
    for spec in specs.values():
        assert issubclass(spec.errors, AppError)
        for command in spec.commands:
            assert isinstance(command.ref.load(), click.Command)
    assert set(registry.collection_models()) >= {"pocket.conversations", "pocket.turns"}
    assert specs["code"].context_tokens and specs["code"].context_tokens >= 8192


def test_every_app_is_in_the_independence_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    [independent] = [c for c in contracts if c["type"] == "independence"]
    for spec in registry.installed():
        module = f"smallhold.apps.{spec.name}"
        assert any(fnmatch.fnmatchcase(module, pattern) for pattern in independent["modules"]
                   ), f"{module} is not in the 'Apps never import each other' contract"


def test_a_toy_app_in_its_own_folder_gets_a_command_sync_jobs_and_tables(
        toy_app: Path) -> None:
    assert "toy" in [spec.name for spec in registry.installed()]
    runner = CliRunner()
    shown = runner.invoke(main, ["--help"])
    assert "A toy command." in shown.output
    done = runner.invoke(main, ["toy", "hello"])
    assert done.exit_code == 0, done.output
    assert "kept 'hello'; tally table has 0 row(s)" in done.output  # its migration ran

    assert "toy.notes" in registry.collection_models()
    enabled = runner.invoke(main, ["sync", "enable", "toy.notes", "--json"])
    assert enabled.exit_code == 0, enabled.output

    listed = runner.invoke(main, ["jobs", "list", "toy", "--json"])
    assert [(j["app"], j["job"], j["due"]) for j in json.loads(listed.output)["jobs"]] == [
        ("toy", "tally", True)]
    ran = runner.invoke(main, ["jobs", "run", "toy", "--json"])
    assert [(j["job"], j["action"]) for j in json.loads(ran.output)["jobs"]] == [
        ("tally", "ran")]
    again = runner.invoke(main, ["jobs", "run", "toy", "--json"])
    assert json.loads(again.output)["jobs"] == []  # not due for six hours


def test_bad_declarations_are_refused(toy_app: Path) -> None:
    with pytest.raises(ValueError, match="lower-case identifier"):
        AppSpec(name="Toy", summary="", errors=AppError)
    with pytest.raises(TypeError, match="SmallholdError"):
        AppSpec(name="toy", summary="", errors=ValueError)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="module:attribute"):
        Ref("smallhold.apps.toy")
    spec = AppSpec(name="toy", summary="", errors=AppError,
                   collections=Ref("smallhold.apps.pocket.conversations:SYNCED"))
    with pytest.raises(ValueError, match="must be named toy"):
        spec.collection_models()  # an app cannot declare another app's collections


def test_a_missing_extra_is_one_line_saying_what_to_install() -> None:
    from smallhold.errors import ConfigError

    with pytest.raises(ConfigError, match=r"pip install 'smallhold\[cut\]'"):
        Ref("smallhold_no_such_module_xyz:thing", extra="cut").load()
