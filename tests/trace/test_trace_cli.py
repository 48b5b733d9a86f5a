from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from smallhold.commands.trace import trace
from smallhold.paths import resolve_paths
from smallhold.store.vault import vault_files
from smallhold.trace import CallRecord, TraceLog


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SMALLHOLD_HOME", str(tmp_path))
    for name in ("SMALLHOLD_PROFILE", "SMALLHOLD_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def run(*args: str) -> Result:
    return CliRunner().invoke(trace, list(args), catch_exceptions=False)


def seed(profile: str = "default") -> dict[str, str]:
    def call(**overrides: Any) -> CallRecord:
        fields: dict[str, Any] = {
            "app": "pocket", "backend": "llama", "model": "qwen2.5-coder-1.5b-instruct",
            "messages": [{"role": "user", "content": "what is [bold]rich[/bold] markup?"}],
            "output": "square brackets", "finish_reason": "stop", "tokens_in": 12,
            "tokens_out": 30, "ttft_s": 0.25, "latency_s": 1.5, "started_at": 1_700_000_000.0,
        }
        fields.update(overrides)
        return CallRecord.model_validate(fields)

    with TraceLog.open(resolve_paths(), profile) as log:
        ids = {
            "first": log.record_call(call()),
            "code": log.record_call(call(app="code", model="qwen2.5-coder-0.5b-instruct",
                                         started_at=1_700_000_100.0, latency_s=3.0)),
            "failed": log.record_call(call(error="the model file is truncated",
                                           started_at=1_700_000_200.0, tokens_out=0)),
            "event": log.record_event("preload", model="qwen2.5-coder-1.5b-instruct",
                                      data={"idle_s": 130}),
        }
        with log.span("run_tests", app="code") as span:
            ids["span"] = span.id
    return ids


def test_empty_log() -> None:
    result = run("list")
    assert result.exit_code == 0
    assert "No trace entries yet" in result.stdout
    assert json.loads(run("list", "--json").stdout) == []
    assert json.loads(run("stats", "--json").stdout) == []


def test_list_json_and_filters() -> None:
    ids = seed()
    rows = json.loads(run("list", "--json").stdout)
    assert [r["id"] for r in rows][:2] == [ids["span"], ids["event"]]
    assert {r["type"] for r in rows} == {"call", "event", "span"}

    calls = json.loads(run("list", "--kind", "call", "--json").stdout)
    assert [r["id"] for r in calls] == [ids["failed"], ids["code"], ids["first"]]
    assert calls[0]["messages"][0]["role"] == "user"
    code = json.loads(run("list", "--app", "code", "--kind", "call", "--json").stdout)
    assert [r["id"] for r in code] == [ids["code"]]
    limited = json.loads(run("list", "--limit", "2", "--json").stdout)
    assert len(limited) == 2
    by_model = json.loads(run("list", "--model", "qwen2.5-coder-0.5b-instruct", "--json").stdout)
    assert [r["id"] for r in by_model] == [ids["code"]]


def test_list_table() -> None:
    ids = seed()
    result = run("list")
    assert result.exit_code == 0
    for key in ("first", "event", "span"):
        assert ids[key][:8] in result.stdout
    assert "preload" in result.stdout and "truncated" in result.stdout


def test_show_by_prefix() -> None:
    ids = seed()
    shown = json.loads(run("show", ids["first"][:10], "--json").stdout)
    assert shown["id"] == ids["first"]
    assert shown["output"] == "square brackets"

    human = run("show", ids["first"][:10])
    assert human.exit_code == 0
    # Message text is printed literally, never read as rich markup.
    assert "[bold]rich[/bold]" in human.stdout
    assert "square brackets" in human.stdout

    event = run("show", ids["event"])
    assert "preload" in event.stdout and "idle_s" in event.stdout


def test_show_unknown_id_is_a_clear_error() -> None:
    seed()
    result = run("show", "zzzz")
    assert result.exit_code == 1
    assert "no trace entry" in result.stderr and "smallhold trace list" in result.stderr
    assert "Traceback" not in result.output
    as_json = run("show", "zzzz", "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stderr)["error"]["type"] == "TraceError"


def test_stats() -> None:
    seed()
    rows = json.loads(run("stats", "--json").stdout)
    big = next(r for r in rows if r["key"] == "qwen2.5-coder-1.5b-instruct")
    assert (big["calls"], big["errors"], big["tokens_out"]) == (2, 1, 30)
    assert big["tokens_per_s"] == pytest.approx(20.0)
    assert big["latency_p50_s"] == pytest.approx(1.5)
    apps = json.loads(run("stats", "--by", "app", "--json").stdout)
    assert [(r["key"], r["calls"]) for r in apps] == [("pocket", 2), ("code", 1)]

    human = run("stats", "--by", "app")
    assert human.exit_code == 0
    assert "pocket" in human.stdout and "code" in human.stdout


def test_profile_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = seed("work")
    assert json.loads(run("list", "--json").stdout) == []
    monkeypatch.setenv("SMALLHOLD_PROFILE", "work")
    assert ids["first"] in {r["id"] for r in json.loads(run("list", "--json").stdout)}


def test_broken_database_file_is_reported() -> None:
    path = vault_files(resolve_paths()).db
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage" * 512)
    result = run("list")
    assert result.exit_code == 1
    assert str(path) in result.stderr.replace("\n", "")
    assert "move the file aside" in result.stderr.replace("\n", " ")
    assert path.read_bytes() == b"\x00garbage" * 512
