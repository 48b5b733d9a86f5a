"""Templates are refused at load when they cannot run; matching and rendering rules."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from smallhold.apps.ops.errors import TemplateError
from smallhold.apps.ops.models import Event
from smallhold.apps.ops.render import references, render
from smallhold.apps.ops.templates import choose, load_all, load_file, parse

ACTIONS = {"data": ["sql_query", "jira_search"], "communication": ["slack_post"],
           "analysis": ["root_cause"]}


def spec(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "t", "match": [{"source": "alertmanager"}], "steps": list(steps), **extra}


def step(step_id: str, *needs: str, action: str = "sql_query", agent: str = "data",
         **with_: Any) -> dict[str, Any]:
    return {"id": step_id, "agent": agent, "action": action, "needs": list(needs),
            "with": with_}


def test_waves_put_independent_steps_side_by_side() -> None:
    template = parse(spec(step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c")),
                     "t", ACTIONS)
    assert template.order() == [["a"], ["b", "c"], ["d"]]
    assert template.upstream("d") == {"a", "b", "c"}


@pytest.mark.parametrize(("steps", "message"), [
    ([step("a", "ghost")], "needs ghost"),
    ([step("a", "b"), step("b", "a")], "cycle"),
    ([step("a"), step("a")], "used twice"),
    ([step("a", agent="wizard")], "agent 'wizard'"),
    ([step("a", action="drop_table")], "no action 'drop_table'"),
    ([step("a"), step("b", text="{{ steps.a.rows }")], "syntax error"),
    ([step("a"), step("b", text="{{ steps.a.rows }}")], "does not need"),
    ([], "no steps"),
])
def test_templates_that_cannot_run_are_refused_at_load(steps: list[dict[str, Any]],
                                                      message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        parse(spec(*steps), "t", ACTIONS)


def test_bad_fields_and_yaml_say_where(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"steps.0.id"):
        parse(spec(step("Bad Id")), "t", ACTIONS)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nsteps: [\n  - id: a\n", encoding="utf-8")
    with pytest.raises(TemplateError, match="not valid YAML at line"):
        load_file(broken, ACTIONS)
    with pytest.raises(TemplateError, match="does not exist"):
        load_all([tmp_path / "nowhere"], ACTIONS, builtin=False)


def test_a_site_template_replaces_ours_by_name(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(
        "name: t\nmatch: [{source: jira}]\nsteps:\n  - {id: only, agent: data, "
        "action: jira_search}\n", encoding="utf-8")
    (tmp_path / "other.yml").write_text(
        "name: u\nmatch: [{source: slack}]\nsteps:\n  - {id: s, agent: data, "
        "action: sql_query}\n", encoding="utf-8")
    found = load_all([tmp_path], ACTIONS, builtin=False)
    assert [t.name for t in found] == ["t", "u"]


def event(**fields: Any) -> Event:
    base: dict[str, Any] = {"source": "alertmanager", "type": "alert.firing", "key": "k",
                            "received_at": datetime.now(UTC), "summary": "disk full"}
    return Event(**{**base, **fields})


def test_matching_by_source_type_severity_labels_and_text() -> None:
    first = parse({"name": "crit", "match": [{"source": "alertmanager", "type": "alert.*",
                                              "severity": "crit*",
                                              "labels": {"team": "db*"}}],
                   "steps": [step("a")]}, "x", ACTIONS)
    second = parse({"name": "words", "match": [{"text": r"\bdisk\b"}],
                    "steps": [step("a")]}, "y", ACTIONS)
    templates = [first, second]
    hit = event(severity="critical", labels={"team": "dba"})
    assert choose(templates, hit) is first
    assert choose(templates, event(severity="warning", text="the disk is full")) is second
    assert choose(templates, event(source="jira", type="jira.issue_created")) is None


def test_rendering_fills_in_and_refuses_unknown_names_and_unsafe_access() -> None:
    context = {"event": {"summary": "disk full", "labels": {}}, "steps": {"a": {"n": 3}}}
    assert render({"t": "{{ event.summary }}: {{ steps.a.n }}", "k": [1, "x"]}, context) == {
        "t": "disk full: 3", "k": [1, "x"]}
    with pytest.raises(TemplateError, match="cannot fill in"):
        render("{{ steps.a.missing }}", context)
    with pytest.raises(TemplateError, match="cannot fill in"):
        render("{{ event.__class__.__mro__ }}", context)
    assert references("{{ steps.a.n }} {{ steps['b'].m }}") == {"a", "b"}


def test_the_built_in_templates_load_with_the_real_agents() -> None:
    from smallhold.apps.ops.engine import toolbox

    found = load_all([], toolbox().actions())
    incident = next(t for t in found if t.name == "incident")
    assert incident.order()[0] == ["open_issues", "recent_changes", "recent_errors"]
    assert incident.order()[-1] == ["notify", "report"]
