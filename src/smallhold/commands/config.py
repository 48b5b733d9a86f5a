"""``smallhold config show``: the settings in force, after the file and SMALLHOLD_* variables."""

from __future__ import annotations

import click

from smallhold.config import load_settings
from smallhold.console import console, emit_json, handle_errors, json_option
from smallhold.paths import resolve_paths


@click.group()
def config() -> None:
    """Show settings and where smallhold keeps its files."""


@config.command()
@json_option
@handle_errors
def show(as_json: bool) -> None:
    """Print the effective settings (secrets masked) and paths."""
    paths = resolve_paths()
    settings = load_settings(paths)
    data = {
        "settings": settings.model_dump(mode="json"),
        "paths": {"config_file": str(paths.config_file), "data_dir": str(paths.data_dir),
                  "models_dir": str(paths.models_dir), "cache_dir": str(paths.cache_dir),
                  "profile_dir": str(paths.profile_dir(settings.profile))},
    }
    if as_json:
        emit_json(data)
        return
    for section, values in data.items():
        console.print(f"[bold]{section}[/]")
        assert isinstance(values, dict)
        for key, value in values.items():
            console.print(f"  {key} = {value}")
