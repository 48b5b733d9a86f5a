"""``smallhold sync``: device sync through a relay that stores only ciphertext.

One device runs ``sync pair`` (which registers the group on the relay) and shows a code; the
other runs ``sync join CODE``. Nothing leaves a device until the user enables a collection
(``sync enable NAME``); ``sync now`` pushes and pulls, ``sync conflicts`` shows the edits that
lost a conflict and restores them, ``sync quarantine`` what was received but not applied.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from smallhold.commands.serve import is_loopback
from smallhold.console import console, emit_json, err_console, handle_errors, json_option
from smallhold.console import profile_option as profile_opt
from smallhold.errors import SyncNotAllowedError
from smallhold.kit import registry
from smallhold.paths import resolve_paths
from smallhold.store.handle import VaultHandle
from smallhold.store.sync import history, pairing
from smallhold.store.sync.client import BATCH_CHANGES, SyncClient, SyncSettings
from smallhold.store.sync.crypto import new_sync_key
from smallhold.store.sync.transport import RelayClient
from smallhold.store.vault import open_vault

DEFAULT_PORT = 8738


def offered() -> list[str]:
    """What the apps declare for sync (before a first record of it exists here)."""
    return sorted(registry.collection_models())


@click.group()
def sync() -> None:
    """Sync chosen collections between your devices (end-to-end encrypted)."""


@sync.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The relay's database (default: <data dir>/relay/relay.db).")
@click.option("--allow-remote", is_flag=True,
              help="Listen on a non-loopback address (the relay only ever holds ciphertext).")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@click.option("--max-groups", type=click.IntRange(1), default=100, show_default=True,
              help="Device groups this relay accepts (a group is registered by `sync pair`).")
@click.option("--group-max-mb", type=click.IntRange(1), default=1024, show_default=True,
              help="Sealed batches one group may store, in MiB; uploads past it are refused.")
@click.option("--group-max-batches", type=click.IntRange(1), default=100_000,
              show_default=True, help="Batches one group may store.")
@json_option
@handle_errors
def serve(host: str, port: int, db: Path | None, allow_remote: bool, log_level: str,
          max_groups: int, group_max_mb: int, group_max_batches: int, as_json: bool) -> None:
    """Run the relay: a mailbox of sealed batches per device group, no keys, no plaintext."""
    import uvicorn

    from smallhold.relay.app import (
        LOOPBACK_HOSTS,
        RelayStore,
        create_relay_app,
        relay_policy,
    )

    if not is_loopback(host) and not allow_remote:
        raise click.UsageError(f"{host} is reachable from other machines; pass --allow-remote "
                               "to serve the relay there (it stores only ciphertext).")
    path = db or resolve_paths().data_dir / "relay" / "relay.db"
    store = RelayStore(path, max_groups=max_groups, group_max_bytes=group_max_mb * 2**20,
                       group_max_batches=group_max_batches)
    # On loopback only local names may reach it (a rebound DNS name in a browser may not);
    # a relay serving other machines cannot know the names they use.
    policy = relay_policy(LOOPBACK_HOSTS | {host}, port) if is_loopback(host) else None
    try:
        url = f"http://{host}:{port}"
        if as_json:
            click.echo(json.dumps({"url": url, "db": str(path), "pid": os.getpid()}))
        else:
            err_console.print(f"smallhold relay at {url} (database {path})", soft_wrap=True)
        uvicorn.run(create_relay_app(store, policy=policy), host=host, port=port,
                    log_level=log_level)
    finally:
        store.close()


@contextmanager
def _vault(profile: str) -> Iterator[VaultHandle]:
    with open_vault(resolve_paths(), profile, create_default=True) as handle:
        yield handle


def _relay_url(settings: SyncSettings, relay: str | None) -> str:
    url = relay or settings.relay
    if not url:
        raise click.UsageError("no relay known for this device; pass --relay URL "
                               f"(for a local one: http://127.0.0.1:{DEFAULT_PORT}).")
    return url


def _when(at: float | None) -> str:
    return "never" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


relay_option = click.option("--relay", default=None, metavar="URL",
                            help="The relay's URL (remembered after the first use).")


@sync.command()
@profile_opt
@relay_option
@click.option("--ttl", type=click.IntRange(30, 3600), default=600, show_default=True,
              help="Seconds the code stays valid.")
@json_option
@handle_errors
def pair(profile: str, relay: str | None, ttl: int, as_json: bool) -> None:
    """Show a one-time code that lets another device join this device's sync group."""
    with _vault(profile) as handle:
        settings = SyncSettings(handle)
        url = _relay_url(settings, relay)
        if settings.sync_key is None:
            settings.join(new_sync_key(), url)
        elif relay:
            settings.set_relay(url)
        key = settings.sync_key
        assert key is not None
        code = pairing.new_code()
        with RelayClient(url, settings.keys()) as client:
            client.create_group()  # the relay makes groups only on this explicit call
            client.put_pairing(pairing.drop_id(code), pairing.seal_invitation(
                code, pairing.Invitation(key, url, handle.device_id)), ttl)
    if as_json:
        emit_json({"code": code, "relay": url, "expires_in_s": ttl})
    else:
        console.print(f"On the other device run:\n\n  [bold]smallhold sync join {code} "
                      f"--relay {url}[/]\n\nThe code works once, for {ttl // 60} minutes.")


@sync.command()
@profile_opt
@click.argument("code")
@relay_option
@click.option("--replace", is_flag=True, help="Leave the group this device is in now.")
@json_option
@handle_errors
def join(profile: str, code: str, relay: str | None, replace: bool, as_json: bool) -> None:
    """Join the sync group of the device that showed CODE."""
    pairing.normalise(code)  # a mistyped code fails before any network
    with _vault(profile) as handle:
        settings = SyncSettings(handle)
        url = _relay_url(settings, relay)
        with RelayClient(url) as client:
            invitation = pairing.open_invitation(code, client.take_pairing(
                pairing.drop_id(code)))
        settings.join(invitation.sync_key, url, replace=replace)
        group = settings.status()["group"]
    if as_json:
        emit_json({"joined": True, "group": group, "relay": url,
                   "from_device": invitation.from_device})
    else:
        console.print(f"Joined sync group {group} (with device {invitation.from_device[:12]}). "
                      "Choose what to share with `smallhold sync enable NAME`.")


@sync.command()
@profile_opt
@click.argument("collections", nargs=-1, required=True)
@json_option
@handle_errors
def enable(profile: str, collections: tuple[str, ...], as_json: bool) -> None:
    """Allow COLLECTIONS to sync from and to this device."""
    with _vault(profile) as handle:
        settings = SyncSettings(handle)
        synced = sorted({*offered(), *settings.collections_here(), *settings.enabled()})
        unknown = [name for name in collections if name not in synced]
        if unknown:
            raise SyncNotAllowedError(
                f"no collection named {', '.join(map(repr, unknown))} syncs from this vault; "
                f"the collections that can sync are: {', '.join(synced)}.")
        for name in collections:
            settings.enable(name)
        enabled = list(settings.enabled())
    if as_json:
        emit_json({"enabled": enabled})
    else:
        console.print("Syncing: " + ", ".join(enabled))


@sync.command()
@profile_opt
@click.argument("collections", nargs=-1, required=True)
@json_option
@handle_errors
def disable(profile: str, collections: tuple[str, ...], as_json: bool) -> None:
    """Stop syncing COLLECTIONS (nothing more is sent; what is here stays)."""
    with _vault(profile) as handle:
        settings = SyncSettings(handle)
        for name in collections:
            settings.disable(name)
        enabled = list(settings.enabled())
    if as_json:
        emit_json({"enabled": enabled})
    else:
        console.print("Syncing: " + (", ".join(enabled) or "nothing"))


@sync.command()
@profile_opt
@json_option
@handle_errors
def status(profile: str, as_json: bool) -> None:
    """Pairing, relay, what is enabled and waiting to be sent, last sync."""
    with _vault(profile) as handle:
        info: dict[str, Any] = SyncSettings(handle).status()
        info["conflicts"] = len(history.list_conflicts(handle))
    if as_json:
        emit_json(info)
        return
    if not info["paired"]:
        console.print("Not paired. Run `smallhold sync pair --relay URL`.")
    else:
        console.print(f"Group {info['group']} via {info['relay']}; device "
                      f"{info['device'][:12]}; last sync {_when(info['last_sync_at'])}.")
    table = Table("collection", "enabled", "waiting to send")
    for c in info["collections"]:
        table.add_row(c["name"], "yes" if c["enabled"] else "no", str(c["pending"]))
    console.print(table)
    console.print(f"{info['conflicts']} conflict record(s), {info['quarantined']} "
                  f"quarantined change(s), {info['quarantined_batches']} quarantined "
                  "batch(es) (`smallhold sync quarantine` lists them).")


@sync.command()
@profile_opt
@relay_option
@click.option("--batch-changes", type=click.IntRange(1, 5000), default=BATCH_CHANGES,
              show_default=True, help="Changes per sealed batch.")
@json_option
@handle_errors
def now(profile: str, relay: str | None, batch_changes: int, as_json: bool) -> None:
    """Push this device's changes and pull the others' (safe to interrupt and re-run)."""
    with _vault(profile) as handle:
        settings = SyncSettings(handle)
        url = _relay_url(settings, relay)
        with RelayClient(url, settings.keys()) as client:
            report = SyncClient(handle, client, models=registry.collection_models(),
                                batch_changes=batch_changes).run()
    if as_json:
        emit_json(report.as_dict())
    else:
        console.print(f"Sent {report.pushed_changes} change(s) in {report.pushed_batches} "
                      f"batch(es), applied {report.applied} of {report.pulled_batches} "
                      f"batch(es); {report.merged} conflict(s) kept local; "
                      f"{report.quarantined} change(s) and {report.quarantined_batches} "
                      f"unreadable batch(es) quarantined ({report.seconds:.2f} s).")


@sync.command()
@profile_opt
@json_option
@handle_errors
def quarantine(profile: str, as_json: bool) -> None:
    """What was received but not applied: unreadable batches and invalid changes, and why."""
    with _vault(profile) as handle:
        settings = SyncSettings(handle)
        batches, changes = settings.quarantined_batches(), settings.quarantine()
    if as_json:
        emit_json({"batches": batches, "changes": changes})
        return
    table = Table("relay seq", "from device", "batch", "what", "at", "reason")
    for b in batches:
        table.add_row(str(b["relay_seq"]), b["device"][:12], b["batch_id"][:24],
                      f"whole batch, {b['size']} bytes", _when(b["at"]), b["reason"])
    for c in changes:
        table.add_row(str(c["relay_seq"]), c["device"][:12], c["batch_id"][:24],
                      f"{c['collection']}/{c['record_id']}" if c["collection"] else
                      "whole batch", _when(c["at"]), c["reason"])
    console.print(table if batches or changes else "Nothing quarantined.")


@sync.group()
def conflicts() -> None:
    """Edits that lost a conflict: list, show, restore."""


@conflicts.command("list")
@profile_opt
@click.option("--collection", default=None, help="Only this collection.")
@json_option
@handle_errors
def conflicts_list(profile: str, collection: str | None, as_json: bool) -> None:
    """Every conflict record, oldest first."""
    with _vault(profile) as handle:
        found = history.list_conflicts(handle, collection)
    if as_json:
        emit_json({"conflicts": found})
        return
    table = Table("version", "collection", "record", "from device", "at", "lost to")
    for c in found:
        table.add_row(history.short_version(c.version), c.collection, c.record_id[:12],
                      c.origin[:12], _when(c.at), history.short_version(c.shown_version))
    console.print(table if found else "No conflict records.")


@conflicts.command("show")
@profile_opt
@click.argument("version")
@json_option
@handle_errors
def conflicts_show(profile: str, version: str, as_json: bool) -> None:
    """The losing edit VERSION (as listed, or any longer prefix) next to the value that won."""
    with _vault(profile) as handle:
        found = history.find_conflict(handle, version)
    if as_json:
        emit_json(found)
        return
    console.print(f"[bold]{found.collection}/{found.record_id}[/] lost edit from device "
                  f"{found.origin[:12]} at {_when(found.at)}:")
    console.print_json(data=found.data)
    console.print("Shown now:")
    console.print_json(data=found.shown_data)


@conflicts.command("restore")
@profile_opt
@click.argument("version")
@json_option
@handle_errors
def conflicts_restore(profile: str, version: str, as_json: bool) -> None:
    """Make the losing edit VERSION the record's value again (synced like any edit)."""
    with _vault(profile) as handle:
        found = history.find_conflict(handle, version)
        restored = history.restore_conflict(handle, found)
    if as_json:
        emit_json({"restored": found.version, "collection": found.collection,
                   "record_id": found.record_id, "new_version": restored.version})
    else:
        console.print(f"Restored {found.collection}/{found.record_id} to the edit from "
                      f"{found.origin[:12]}; it syncs with the next `smallhold sync now`.")
