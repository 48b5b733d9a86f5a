"""``smallhold sync``: device sync through a relay that stores only ciphertext.

``sync serve`` runs the relay today; pairing, pushing and pulling arrive with the device client.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from smallhold.commands.serve import is_loopback
from smallhold.console import err_console, handle_errors, json_option
from smallhold.paths import resolve_paths

DEFAULT_PORT = 8738


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
@json_option
@handle_errors
def serve(host: str, port: int, db: Path | None, allow_remote: bool, log_level: str,
          as_json: bool) -> None:
    """Run the relay: a mailbox of sealed batches per device group, no keys, no plaintext."""
    import uvicorn

    from smallhold.store.sync.relay import RelayStore, create_relay_app

    if not is_loopback(host) and not allow_remote:
        raise click.UsageError(f"{host} is reachable from other machines; pass --allow-remote "
                               "to serve the relay there (it stores only ciphertext).")
    path = db or resolve_paths().data_dir / "relay" / "relay.db"
    store = RelayStore(path)
    try:
        url = f"http://{host}:{port}"
        if as_json:
            click.echo(json.dumps({"url": url, "db": str(path), "pid": os.getpid()}))
        else:
            err_console.print(f"smallhold relay at {url} (database {path})", soft_wrap=True)
        uvicorn.run(create_relay_app(store), host=host, port=port, log_level=log_level)
    finally:
        store.close()
