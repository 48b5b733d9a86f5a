"""``smallhold memory``: the vector memory in a profile's vault, from the command line."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict

import click
from rich.table import Table

from smallhold.console import console, emit_json, handle_errors, json_option
from smallhold.console import profile_option as profile_opt
from smallhold.kit.cli import open_home
from smallhold.store.memory import Memory, MemoryStore


@contextmanager
def _memories(profile: str) -> Iterator[MemoryStore]:
    with open_home(profile) as home:
        yield MemoryStore(home.vault, home.embedder)


def _when(at: float | None) -> str:
    return "" if at is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def _table(memories: list[Memory], title: str) -> Table:
    table = Table("id", "kind", "text", "tags", "weight", "created", title=title)
    for m in memories:
        text = m.text if len(m.text) <= 60 else m.text[:59] + "…"
        table.add_row(m.id[:12], m.kind, text, ",".join(m.tags), f"{m.weight:.2f}",
                      _when(m.created_at))
    return table


@click.group()
def memory() -> None:
    """Long-term memory: remember, recall (meaning + keywords + recency), forget, consolidate."""


@memory.command()
@profile_opt
@click.argument("text")
@click.option("--kind", default="note", show_default=True, help="What sort of memory.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--importance", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@json_option
@handle_errors
def remember(profile: str, text: str, kind: str, tags: tuple[str, ...], importance: float,
             as_json: bool) -> None:
    """Store TEXT in the profile's encrypted memory."""
    with _memories(profile) as store:
        item = store.remember(text, kind=kind, tags=tags, importance=importance)
    if as_json:
        emit_json(item)
    else:
        console.print(f"Remembered [bold]{item.id[:12]}[/] ({item.kind}).")


@memory.command()
@profile_opt
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--kind", default=None, help="Only memories of this kind.")
@click.option("--tag", "tags", multiple=True, help="Only memories with this tag (repeatable).")
@click.option("--archived", is_flag=True, help="Include archived memories.")
@json_option
@handle_errors
def recall(profile: str, query: str, k: int, kind: str | None, tags: tuple[str, ...],
           archived: bool, as_json: bool) -> None:
    """The memories that best match QUERY, with the parts of their score."""
    with _memories(profile) as store:
        hits = store.recall(query, k, kind=kind, tags=tags, include_archived=archived)
    if as_json:
        emit_json({"query": query, "hits": hits})
        return
    table = Table("score", "vector", "keyword", "id", "text", title=f"recall: {query}")
    for hit in hits:
        table.add_row(f"{hit.score:.3f}", f"{hit.vector:.2f}", f"{hit.keyword:.2f}",
                      hit.memory.id[:12], hit.memory.text)
    console.print(table if hits else "No memories match.")


@memory.command()
@profile_opt
@click.argument("memory_id")
@click.option("--reason", default="asked by the user", show_default=True)
@json_option
@handle_errors
def forget(profile: str, memory_id: str, reason: str, as_json: bool) -> None:
    """Delete a memory for good (its history keeps only that it was forgotten, and why)."""
    with _memories(profile) as store:
        full = store.resolve_id(memory_id)
        store.forget(full, reason)
    if as_json:
        emit_json({"id": full, "forgotten": True, "reason": reason})
    else:
        console.print(f"Forgot {full[:12]}.")


@memory.command(name="list")
@profile_opt
@click.option("--kind", default=None)
@click.option("--archived", is_flag=True, help="Show archived memories instead.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@json_option
@handle_errors
def list_(profile: str, kind: str | None, archived: bool, limit: int, as_json: bool) -> None:
    """The newest memories."""
    with _memories(profile) as store:
        items = store.list(kind=kind, archived=archived, limit=limit)
    if as_json:
        emit_json(items)
    else:
        console.print(_table(items, "archived memories" if archived else "memories"))


@memory.command()
@profile_opt
@click.argument("memory_id")
@json_option
@handle_errors
def show(profile: str, memory_id: str, as_json: bool) -> None:
    """One memory and its history (why it faded, merged or was archived)."""
    with _memories(profile) as store:
        full = store.resolve_id(memory_id)
        item, events = store.get(full), store.history(full)
    if as_json:
        emit_json({"memory": item, "history": events})
        return
    console.print(f"[bold]{item.id}[/] {item.kind}  weight {item.weight:.2f}  importance "
                  f"{item.importance:.2f}  reinforced {item.reinforcements}×")
    console.print(item.text)
    if item.archived_at is not None:
        console.print(f"archived {_when(item.archived_at)}: {item.archived_reason}")
    for event in events:
        console.print(f"  {_when(event.at)}  {event.action}: {event.reason}")


@memory.command()
@profile_opt
@click.argument("memory_id", required=False)
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@json_option
@handle_errors
def history(profile: str, memory_id: str | None, limit: int, as_json: bool) -> None:
    """What happened to memories (all, or one): stored, reinforced, faded, merged, forgotten."""
    with _memories(profile) as store:
        events = store.history(store.resolve_id(memory_id) if memory_id else None, limit)
    if as_json:
        emit_json(events)
        return
    table = Table("when", "memory", "action", "reason")
    for event in events:
        table.add_row(_when(event.at), event.memory_id[:12], event.action, event.reason)
    console.print(table)


@memory.command()
@profile_opt
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@json_option
@handle_errors
def consolidate(profile: str, dry_run: bool, as_json: bool) -> None:
    """Fade memories not reinforced lately, merge near-duplicates, archive the faint."""
    with _memories(profile) as store:
        actions = store.consolidate(dry_run=dry_run)
    if as_json:
        emit_json({"dry_run": dry_run, "actions": [
            {"action": type(a).__name__.lower(), **asdict(a)} for a in actions]})
        return
    counts: dict[str, int] = {}
    for action in actions:
        counts[type(action).__name__.lower()] = counts.get(type(action).__name__.lower(), 0) + 1
    summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "nothing to do"
    console.print(("Would apply: " if dry_run else "Applied: ") + summary)
