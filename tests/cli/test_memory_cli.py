"""`smallhold memory ...` end to end with the bundled sentence model, in a default vault."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from smallhold.cli import main


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["memory", *args], catch_exceptions=False)


@pytest.mark.model
def test_remember_recall_show_forget_with_json() -> None:
    first = json.loads(run("remember", "Dentist appointment on Friday at 10am", "--kind",
                           "calendar", "--tag", "health", "--json").stdout)
    run("remember", "Quarterly taxes are due on the 15th", "--kind", "money")
    hits = json.loads(run("recall", "when do I see the tooth doctor?", "-k", "1",
                          "--json").stdout)["hits"]
    assert hits[0]["memory"]["id"] == first["id"]
    assert 0 < hits[0]["score"] <= 1

    shown = json.loads(run("show", first["id"][:12], "--json").stdout)
    assert shown["memory"]["tags"] == ["health"]
    assert [e["action"] for e in shown["history"]] == ["remember"]

    listed = json.loads(run("list", "--json").stdout)
    assert len(listed) == 2
    plan = json.loads(run("consolidate", "--dry-run", "--json").stdout)
    assert plan == {"dry_run": True, "actions": []}

    result = run("forget", first["id"], "--reason", "went already", "--json")
    assert json.loads(result.stdout)["forgotten"] is True
    events = json.loads(run("history", "--json").stdout)
    assert events[0]["action"] == "forget" and events[0]["reason"] == "went already"


def test_errors_are_messages_not_tracebacks() -> None:
    result = run("forget", "0" * 32, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stderr)["error"]["code"] == "record_not_found"
    result = run("remember", "   ")
    assert result.exit_code == 1 and "empty" in result.stderr
