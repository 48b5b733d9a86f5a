"""Finding a running ``smallhold serve``, so a one-shot command answers from its warm model.

Every ``smallhold chat "q"`` loaded the model again (13 s for an 8-token answer from the 135M
model on a busy machine). ``smallhold serve`` announces itself in the runtime folder
(``server.json``: its address and pid, 0600, removed when it stops); a command that finds it,
and finds it answering with the profile's API key, sends its generation there, as Ollama's
CLI does with its daemon. The prompt (history, notes, the vault) is still built in the
command: the server only generates. A stale file (the server was killed) is recognised by
its pid and its health check and ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from smallhold.paths import Paths

FILE = "server.json"
PROBE_SECONDS = 0.5


def _file(paths: Paths) -> Path:
    return paths.runtime_dir / FILE


def announce(paths: Paths, url: str, pid: int) -> Path:
    """Say where this process serves (``url`` without ``/v1``)."""
    path = _file(paths)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_suffix(".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"url": url, "pid": pid}, out)
    os.replace(temp, path)
    return path


def withdraw(paths: Paths, pid: int) -> None:
    """Remove the announcement if it is this process's."""
    path = _file(paths)
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find(paths: Paths, api_key: str = "") -> str | None:
    """The base URL of a running server this user may call, or None."""
    try:
        data: dict[str, Any] = json.loads(_file(paths).read_text())
        url, pid = str(data["url"]), int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid):
        return None
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        answer = httpx.get(f"{url}/v1/models", headers=headers, timeout=PROBE_SECONDS)
    except httpx.HTTPError:
        return None
    return url if answer.status_code == 200 else None
