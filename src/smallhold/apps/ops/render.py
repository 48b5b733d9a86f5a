"""Texts in templates (``"{{ event.labels.alertname }} on {{ steps.gather.host }}"``).

Rendered by Jinja's sandboxed environment with strict undefined: a template is written by
an operator, but what it renders is event data an outsider sent, so no attribute access
may reach Python internals, and a misspelt name fails the step instead of sending a
message with a blank in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from smallhold.apps.ops.errors import TemplateError


def quote(value: object) -> str:
    """For a value put between double quotes in a query language (JQL, GitHub search):
    backslashes and quotes escaped, line breaks flattened, so event text cannot close the
    quotes and add terms of its own."""
    text = " ".join(str(value).split())
    return text.replace("\\", "\\\\").replace('"', '\\"')


@cache
def _environment() -> SandboxedEnvironment:
    environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                                       keep_trailing_newline=True)
    environment.filters["quote"] = quote
    return environment


def syntax_error(text: str) -> str | None:
    """What is wrong with ``text`` as a template, or None."""
    try:
        _environment().parse(text)
    except TemplateSyntaxError as exc:
        return f"template text has a syntax error on line {exc.lineno}: {exc.message}"
    return None


def references(text: str) -> set[str]:
    """The step ids ``text`` reads as ``steps.<id>`` or ``steps['<id>']``."""
    tree = _environment().parse(text)
    found: set[str] = set()
    for node in tree.find_all(nodes.Getattr):
        assert isinstance(node, nodes.Getattr)
        if isinstance(node.node, nodes.Name) and node.node.name == "steps":
            found.add(node.attr)
    for item in tree.find_all(nodes.Getitem):
        assert isinstance(item, nodes.Getitem)
        if (isinstance(item.node, nodes.Name) and item.node.name == "steps"
                and isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str)):
            found.add(item.arg.value)
    if "steps" in meta.find_undeclared_variables(tree) and not found:
        found.add("*")  # "steps" used whole: it may read anything
    return found


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """``value`` with every string in it rendered over ``context`` (dicts and lists kept)."""
    if isinstance(value, str):
        if "{" not in value:
            return value
        try:
            return _environment().from_string(value).render(**context)
        except (UndefinedError, SecurityError, TypeError, ValueError) as exc:
            raise TemplateError(f"cannot fill in {value[:80]!r}: {exc}") from None
    if isinstance(value, Mapping):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v, context) for v in value]
    return value


__all__ = ["references", "render", "syntax_error"]
