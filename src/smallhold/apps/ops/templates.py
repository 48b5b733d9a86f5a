"""Workflow templates: which events start which DAG of steps, checked before anything runs.

A template is YAML (or the same dict built in Python) validated by pydantic. Everything
that can be wrong with one is found when it loads, not half-way through an incident: a
step that needs a step that does not exist, a cycle, two steps with one id, an action no
agent offers, a text with a syntax error. Texts in ``with:`` are Jinja templates rendered
in a sandbox over the event and the outputs of the steps they need, and a step may read
only the outputs of steps it declared in ``needs`` (directly or through them), so the
DAG's order is the only order a step can rely on.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from smallhold.apps.ops.errors import TemplateError
from smallhold.apps.ops.models import Event

Risk = Literal["read", "low", "high"]
BUILTIN = Path(__file__).with_name("templates")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"2h"``, ``"1d"``."""
    found = _DURATION.match(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 2h or 1d")
    return timedelta(seconds=int(found[1]) * _UNITS[found[2]])


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Model):
    """One pattern an event must fit; every field given must match.

    ``type`` and each label value are shell-style patterns (``alert.*``, ``crit*``), the
    kind of rule an operator writes; ``text`` is a regular expression over the free text.
    """

    source: str = "*"
    type: str = "*"
    severity: str = "*"
    labels: dict[str, str] = Field(default_factory=dict)
    text: str | None = None

    @field_validator("text")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"text is not a regular expression: {exc}") from None
        return value

    def fits(self, event: Event) -> bool:
        if not (fnmatch.fnmatchcase(event.source, self.source)
                and fnmatch.fnmatchcase(event.type, self.type)
                and fnmatch.fnmatchcase(event.severity, self.severity)):
            return False
        for name, pattern in self.labels.items():
            if name not in event.labels or not fnmatch.fnmatchcase(event.labels[name], pattern):
                return False
        return self.text is None or re.search(self.text, event.text, re.IGNORECASE) is not None


class Step(_Model):
    id: str
    agent: str  # communication, data, analysis, documentation
    action: str  # one of the agent's tools, e.g. "slack_post"
    needs: list[str] = Field(default_factory=list)
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    risk: Risk | None = None  # None: the tool's own declared risk
    optional: bool = False  # a failure is recorded and the workflow goes on
    retries: int = Field(4, ge=0, le=20)  # transient failures retried before escalating

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(f"step id {value!r}: lower-case letters, digits and _, "
                             "starting with a letter (it names the step's output)")
        return value


class Approval(_Model):
    timeout: str = "30m"
    on_timeout: Literal["escalate", "deny"] = "escalate"

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def seconds(self) -> float:
        return parse_duration(self.timeout).total_seconds()


class Template(_Model):
    name: str
    description: str = ""
    match: list[Match] = Field(default_factory=list)
    critical: bool = False  # the plan waits for a person's approval before any step runs
    # what the template's steps may touch (tools declare theirs: slack:write, sql:read);
    # "*" grants all, a narrower list makes a step using anything else fail
    scopes: list[str] = Field(default_factory=lambda: ["*"])
    approval: Approval = Approval()
    steps: list[Step]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.match(r"^[a-z][a-z0-9_-]{0,39}$", value):
            raise ValueError(f"template name {value!r}: lower-case letters, digits, - and _")
        return value

    def fits(self, event: Event) -> bool:
        return any(m.fits(event) for m in self.match)

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise TemplateError(f"template {self.name} has no step {step_id!r}")

    def order(self) -> list[list[str]]:
        """The steps in waves: each wave needs only earlier waves, so its steps can run
        side by side."""
        graph = TopologicalSorter({s.id: set(s.needs) for s in self.steps})
        graph.prepare()
        waves: list[list[str]] = []
        while graph.is_active():
            ready = sorted(graph.get_ready())
            waves.append(ready)
            graph.done(*ready)
        return waves

    def upstream(self, step_id: str) -> set[str]:
        """Every step ``step_id`` depends on, directly or through others."""
        needs = {s.id: s.needs for s in self.steps}
        seen: set[str] = set()
        todo = list(needs[step_id])
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(needs[current])
        return seen


def check(template: Template, actions: Mapping[str, Iterable[str]]) -> Template:
    """Refuse a template that cannot run; ``actions`` is each agent's tool names."""
    from smallhold.apps.ops.render import references, syntax_error

    where = f"template {template.name}"
    ids = [s.id for s in template.steps]
    if not ids:
        raise TemplateError(f"{where} has no steps")
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise TemplateError(f"{where}: step id(s) used twice: {', '.join(duplicates)}")
    for s in template.steps:
        missing = [n for n in s.needs if n not in ids]
        if missing:
            raise TemplateError(f"{where}: step {s.id} needs {', '.join(missing)}, which "
                                "no step of the template is")
        if s.agent not in actions:
            raise TemplateError(f"{where}: step {s.id} names agent {s.agent!r}; agents are "
                                f"{', '.join(sorted(actions))}")
        offered = set(actions[s.agent])
        if s.action not in offered:
            raise TemplateError(f"{where}: step {s.id}: agent {s.agent} has no action "
                                f"{s.action!r} (it has {', '.join(sorted(offered))})")
    try:
        template.order()
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1]) if len(exc.args) > 1 else "?"
        raise TemplateError(f"{where}: its steps form a cycle ({cycle}); a workflow must "
                            "be a DAG") from None
    for s in template.steps:
        allowed = template.upstream(s.id)
        for text in _texts(s.with_):
            problem = syntax_error(text)
            if problem:
                raise TemplateError(f"{where}: step {s.id}: {problem}")
            for ref in references(text):
                if ref not in allowed:
                    raise TemplateError(
                        f"{where}: step {s.id} reads steps.{ref}, which it does not need "
                        f"(add it to needs: [{', '.join([*s.needs, ref])}])")
    return template


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _texts(v)
    elif isinstance(value, Sequence):
        for v in value:
            yield from _texts(v)


def parse(data: Any, origin: str, actions: Mapping[str, Iterable[str]]) -> Template:
    if not isinstance(data, Mapping):
        raise TemplateError(f"{origin}: a template is a mapping with name, match and steps")
    try:
        template = Template.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise TemplateError(f"{origin}: {place}: {first['msg']} "
                            f"({len(exc.errors())} problem(s) in all)") from None
    return check(template, actions)


def load_file(path: Path, actions: Mapping[str, Iterable[str]]) -> Template:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TemplateError(f"template {path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise TemplateError(f"template {path} is not valid YAML{where}") from None
    return parse(data, str(path), actions)


def load_all(folders: Sequence[Path], actions: Mapping[str, Iterable[str]],
             *, builtin: bool = True) -> list[Template]:
    """The config's folders' ``*.yaml`` / ``*.yml`` in name order, then our built-in
    templates: an event is offered to the site's own templates first, and a site template
    with a built-in's name replaces it."""
    site: dict[str, Template] = {}
    for folder in folders:
        if not folder.is_dir():
            raise TemplateError(f"template folder {folder} does not exist")
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            template = load_file(path, actions)
            site[template.name] = template
    ours = [load_file(path, actions) for path in sorted(BUILTIN.glob("*.yaml"))] if builtin \
        else []
    return [*site.values(), *[t for t in ours if t.name not in site]]


def choose(templates: Sequence[Template], event: Event) -> Template | None:
    """The first template whose patterns the event fits (templates are tried in order)."""
    for template in templates:
        if template.fits(event):
            return template
    return None


__all__ = ["BUILTIN", "Approval", "Match", "Risk", "Step", "Template", "check", "choose",
           "load_all", "load_file", "parse", "parse_duration"]
