"""``smallhold serve``: loopback unless the user opts in; settings and flags reach uvicorn."""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from starlette.applications import Starlette

from smallhold.cli import main
from smallhold.commands.serve import is_loopback


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.0.1", True), ("localhost", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("::", False), ("192.168.1.20", False),
    ("example.com", False), ("my-laptop", False),
])
def test_only_literal_loopback_counts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_run(app: Any, **kwargs: Any) -> None:
        calls.append({"app": app, **kwargs})

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setenv("SMALLHOLD_RUNTIME__BACKEND", "scripted")
    return calls


def test_a_remote_host_is_refused_without_allow_remote(runs: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "--allow-remote" in result.output
    assert runs == []


def test_defaults_come_from_settings(runs: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 0, result.output
    (call,) = runs
    assert (call["host"], call["port"], call["log_level"]) == ("127.0.0.1", 8737, "info")
    assert isinstance(call["app"], Starlette)


def test_flags_override_and_allow_remote_opts_in(runs: list[dict[str, Any]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMALLHOLD_SERVER__PORT", "9000")
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--allow-remote",
                                       "--api-key", "k3y", "--model", "scripted",
                                       "--log-level", "warning"])
    assert result.exit_code == 0, result.output
    (call,) = runs
    assert (call["host"], call["port"], call["log_level"]) == ("0.0.0.0", 9000, "warning")
    assert call["app"].state.runtime.resolve_model(None) == "scripted"


def test_json_prints_one_startup_line_for_scripts(runs: list[dict[str, Any]]) -> None:
    import json

    result = CliRunner().invoke(main, ["serve", "--json", "--port", "9100"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout.strip())
    assert info["url"] == "http://127.0.0.1:9100/v1" and info["backend"] == "scripted"
