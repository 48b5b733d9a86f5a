"""``smallhold web``: loopback unless the user opts in; pocket's pages reach uvicorn."""

from __future__ import annotations

import re
import time
import webbrowser
from collections.abc import Callable
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from starlette.testclient import TestClient

from smallhold.cli import main

Check = Callable[[TestClient], None]


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[uvicorn.Config]:
    """Each server the command would run (its config), instead of running it; while it
    "runs" (the pocket is open), the checks in ``runs_checks`` get a client on its app."""
    configs: list[uvicorn.Config] = []

    def fake_run(self: uvicorn.Server, sockets: Any = None) -> None:
        configs.append(self.config)
        self.started = True
        for base, check in CHECKS:
            check(TestClient(self.config.app, base_url=base))
        time.sleep(0.3)  # time for the browser opener to see it started

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    monkeypatch.setenv("SMALLHOLD_RUNTIME__BACKEND", "scripted")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return configs


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    urls: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: urls.append(url) or True)
    return urls


CHECKS: list[tuple[str, Check]] = []


@pytest.fixture(autouse=True)
def no_checks() -> None:
    CHECKS.clear()


def test_it_is_listed_in_help() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert re.search(r"web\s+The suite's pages in your browser", result.output)


def test_a_remote_host_is_refused_without_allow_remote(runs: list[uvicorn.Config]) -> None:
    result = CliRunner().invoke(main, ["web", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "--allow-remote" in result.output
    assert runs == []


def test_it_serves_pocket_on_loopback(runs: list[uvicorn.Config], opened: list[str]) -> None:
    seen: list[int] = []

    def check(client: TestClient) -> None:
        seen.append(client.get("/pocket/").status_code)
        assert client.get("/pocket/api/conversations").json() == {"conversations": []}

    def other_port(client: TestClient) -> None:
        seen.append(client.get("/pocket/").status_code)  # the Host names another server

    CHECKS[:] = [("http://127.0.0.1:8739", check), ("http://127.0.0.1:9999", other_port)]
    result = CliRunner().invoke(main, ["web", "--no-open"])
    assert result.exit_code == 0, result.output
    (config,) = runs
    assert (config.host, config.port) == ("127.0.0.1", 8739)
    assert "http://127.0.0.1:8739/pocket/" in result.output
    assert opened == []  # no display here, and --no-open anyway
    assert seen == [200, 400]


def test_open_opens_the_page(runs: list[uvicorn.Config], opened: list[str]) -> None:
    result = CliRunner().invoke(main, ["web", "--open", "--port", "8800"])
    assert result.exit_code == 0, result.output
    assert opened == ["http://127.0.0.1:8800/pocket/"]


def test_allow_remote_needs_the_key_the_link_carries(runs: list[uvicorn.Config],
                                                     opened: list[str]) -> None:
    seen: list[int] = []

    def check(client: TestClient) -> None:
        seen.append(client.get("/pocket/").status_code)
        seen.append(client.get("/login?key=k3y").status_code)  # the cookie, then the index
        seen.append(client.get("/pocket/").status_code)

    CHECKS[:] = [("http://192.0.2.9:8739", check)]
    result = CliRunner().invoke(main, ["web", "--host", "0.0.0.0", "--allow-remote",
                                       "--api-key", "k3y", "--no-open"])
    assert result.exit_code == 0, result.output
    assert "http://0.0.0.0:8739/login?key=k3y" in result.output
    assert "reachable from other machines" in result.output
    assert seen == [401, 200, 200]
    CHECKS.clear()
    made_up = CliRunner().invoke(main, ["web", "--host", "0.0.0.0", "--allow-remote",
                                        "--no-open"])
    key = re.search(r"/login\?key=(\S+)", made_up.output)
    assert key is not None and len(key.group(1)) >= 24  # a random key when none is given
