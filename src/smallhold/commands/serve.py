"""``smallhold serve``: the OpenAI-compatible API on this machine (127.0.0.1 unless told).

Other machines may call it only with ``--allow-remote``, and then only with an API key: the
command refuses to start otherwise, and says so on one line.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import sys

import click

from smallhold.config import load_settings
from smallhold.console import byte_progress, err_console, handle_errors, json_option
from smallhold.paths import resolve_paths
from smallhold.runtime import assets, local_server
from smallhold.runtime.registry import get_model

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def is_loopback(host: str) -> bool:
    """Only literal loopback addresses and ``localhost`` count: a name could resolve anywhere."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--host", help="Address to listen on [default: server.host, 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535),
              help="Port to listen on [default: server.port, 8737].")
@click.option("-m", "--model", help="Default chat model for requests that name none.")
@click.option("--preload", is_flag=True, help="Load the default model before serving.")
@click.option("--allow-remote", is_flag=True,
              help="Allow a non-loopback --host: other machines could then use your models "
                   "(needs an API key).")
@click.option("--api-key", metavar="KEY",
              help="Require 'Authorization: Bearer KEY' [default: server.api_key; "
                   "SMALLHOLD_SERVER__API_KEY keeps it out of the process list].")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True)
@json_option
@handle_errors
def serve(host: str | None, port: int | None, model: str | None, preload: bool,
          allow_remote: bool, api_key: str | None, log_level: str, as_json: bool) -> None:
    """Serve /v1/chat/completions, /v1/embeddings and /v1/models for OpenAI clients."""
    import uvicorn

    from smallhold.kit.cli import open_home
    from smallhold.server import create_app
    from smallhold.server.guard import server_policy

    paths = resolve_paths()
    settings = load_settings(paths)
    host = host or settings.server.host
    port = port or settings.server.port
    if not is_loopback(host) and not allow_remote:
        raise click.UsageError(
            f"{host} is reachable from other machines; smallhold listens on loopback only "
            "unless you pass --allow-remote (anyone who can reach it can use your models)."
        )
    # Before anything is loaded: a server that would be open to every caller never starts.
    policy = server_policy(settings.server, host=host, port=port, api_key=api_key,
                           allow_remote=allow_remote)
    if model:
        settings = settings.model_copy(update={
            "runtime": settings.runtime.model_copy(update={"default_model": model})})
    with open_home(None, quiet=as_json, settings=settings) as home:
        runtime = home.runtime
        default = runtime.resolve_model(None)
        if runtime.manager is not None:
            if preload:
                spec = get_model(default)
                with byte_progress(f"preparing {spec.name} (first run only)") as progress:
                    assets.ensure_model(spec, paths.models_dir, progress)
                runtime.manager.load(default, reason="preload")
            runtime.manager.start_watcher()
        url = f"http://{_url_host(host)}:{port}/v1"
        if as_json:  # one line a supervisor or script can read before the first request
            click.echo(json.dumps({"url": url, "backend": runtime.backend.name,
                                   "default_model": default, "pid": os.getpid()}))
        else:
            err_console.print(f"smallhold: OpenAI-compatible API at {url} "
                              f"(backend {runtime.backend.name}, default model {default})",
                              soft_wrap=True)
        if not is_loopback(host):
            err_console.print(f"smallhold: warning: {host} is reachable from other machines; "
                              "every request needs the API key.", soft_wrap=True)
        # so that `smallhold chat` and `smallhold ps` find this server and its warm models
        local = "127.0.0.1" if host in ("0.0.0.0", "::") else _url_host(host)
        local_server.announce(paths, f"http://{local}:{port}", os.getpid())
        # uvicorn re-raises the SIGTERM it stopped on once it is done; the default action
        # would end the process before `finally` could withdraw the announcement
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            uvicorn.run(create_app(runtime, policy), host=host, port=port,
                        log_level=log_level)
        finally:
            local_server.withdraw(paths, os.getpid())


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
