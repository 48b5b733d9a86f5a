"""``smallhold ps`` and ``smallhold stop``: the models a running ``smallhold serve`` keeps
warm, and unloading one now (as ``ollama ps`` / ``ollama stop``)."""

from __future__ import annotations

from typing import Any

import click
from rich import box
from rich.table import Table

from smallhold.config import load_settings
from smallhold.console import console, emit_json, handle_errors, json_option, keep_whole
from smallhold.errors import BackendError, SmallholdError
from smallhold.paths import resolve_paths
from smallhold.runtime import local_server

NO_SERVER = ("no smallhold server is running, so no model stays loaded between commands "
             "(each loads its own); start one with `smallhold serve` and `smallhold chat` "
             "answers from its warm model.")


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    import httpx

    paths = resolve_paths()
    key = load_settings(paths).server.api_key.get_secret_value()
    url = local_server.find(paths, key)
    if url is None:
        raise SmallholdError(NO_SERVER)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        answer = httpx.request(method, f"{url}{path}", json=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise BackendError(f"the server at {url} did not answer ({exc}).") from exc
    data: dict[str, Any] = answer.json()
    if answer.status_code != 200:
        raise BackendError(str(data.get("error", {}).get("message", data)))
    return data


def _left(seconds: float | None) -> str:
    if seconds is None:
        return "forever"
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


@click.command()
@json_option
@handle_errors
def ps(as_json: bool) -> None:
    """The models the running server keeps loaded: memory, idle time, keep-alive left."""
    data = _call("GET", "/smallhold/ps")
    if as_json:
        emit_json(data)
        return
    if not data["models"]:
        console.print("the server is running; no model is loaded right now")
        return
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False)
    for column in ("model", "memory", "weights/KV", "context", "state", "unloads in"):
        table.add_column(column)
    for m in data["models"]:
        table.add_row(m["name"], f"{m['bytes'] / 2**20:,.0f} MiB",
                      f"{m['tier']}/{m['kv_cache']}", f"{m['n_ctx']:,}",
                      "answering" if m["busy"] else f"idle {m['idle_seconds']:.0f} s",
                      _left(m["keep_alive_left_seconds"]))
    console.print(keep_whole(table, "model"))


@click.command()
@click.argument("model")
@json_option
@handle_errors
def stop(model: str, as_json: bool) -> None:
    """Unload MODEL from the running server now (it loads again when next asked)."""
    data = _call("POST", "/smallhold/stop", {"model": model})
    if as_json:
        emit_json(data)
    elif data["unloaded"]:
        console.print(f"unloaded {data['model']}")
    else:
        console.print(f"{data['model']} was not loaded")
