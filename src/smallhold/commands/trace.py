"""``smallhold trace``: list, show and summarise the calls and decisions recorded locally."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from rich import box
from rich.table import Table
from rich.text import Text

from smallhold.config import load_settings
from smallhold.console import console, emit_json, handle_errors, json_option
from smallhold.paths import resolve_paths
from smallhold.trace import CallRecord, CallStats, EventRecord, TraceLog, TraceRecord


def _open() -> TraceLog:
    paths = resolve_paths()
    return TraceLog.open(paths, load_settings(paths).profile)


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _summary(record: TraceRecord) -> tuple[str, Text]:
    if isinstance(record, CallRecord):
        if record.error is not None:
            return record.model, Text(record.error, style="red")
        detail = f"{record.tokens_in}→{record.tokens_out} tok, {_seconds(record.latency_s)}"
        return record.model, Text(detail)
    if isinstance(record, EventRecord):
        what = f"{record.kind} {record.model}" if record.model else record.kind
        return what, Text(json.dumps(record.data, ensure_ascii=False, default=str))
    style = {"ok": "green", "error": "red"}.get(record.status, "yellow")
    detail = f"{record.status} {_seconds(record.duration_s)}"
    return record.name, Text(f"{detail} {record.message or ''}".strip(), style=style)


def _list_table(records: list[TraceRecord]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column, width in (("id", 8), ("when", 14), ("type", 5), ("app", 7)):
        table.add_column(column, no_wrap=True, min_width=width)
    table.add_column("what", ratio=1, overflow="fold")
    table.add_column("detail", ratio=1, overflow="fold")
    for r in records:
        what, detail = _summary(r)
        when = datetime.fromtimestamp(r.timestamp).strftime("%m-%d %H:%M:%S")
        table.add_row(r.id[:8], when, r.type, r.app, Text(what), detail)
    return table


def _show_table(record: TraceRecord) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    fields: dict[str, Any] = record.model_dump(exclude={"messages", "output"})
    for key, value in fields.items():
        if value is None or value == {}:
            continue
        if key in ("started_at", "ended_at", "at"):
            value = f"{_when(value)} ({value:.3f})"
        elif isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False, indent=2, default=str)
        table.add_row(key, Text(str(value)))
    if isinstance(record, CallRecord):
        for message in record.messages:
            table.add_row(Text(message.role, style="cyan"), Text(message.content))
        table.add_row(Text("output", style="green"), Text(record.output))
    return table


def _stats_table(rows: list[CallStats], by: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
                  caption="latency and ttft in seconds")
    table.add_column(by, overflow="fold", min_width=min(24, max(len(r.key) for r in rows)))
    for column in ("calls", "err", "tok\nin", "tok\nout", "tok/s",
                   "lat\np50", "lat\np95", "ttft\np50", "ttft\np95"):
        table.add_column(column, justify="right", no_wrap=True)
    for s in rows:
        table.add_row(Text(s.key), str(s.calls), str(s.errors), f"{s.tokens_in:,}",
                      f"{s.tokens_out:,}", _number(s.tokens_per_s, 1), _number(s.latency_p50_s),
                      _number(s.latency_p95_s), _number(s.ttft_p50_s), _number(s.ttft_p95_s))
    return table


@click.group()
def trace() -> None:
    """Every LLM call, tool call and runtime decision, recorded on this machine only."""


@trace.command("list")
@click.option("--kind", type=click.Choice(["call", "event", "span"]), help="Only this type.")
@click.option("--app", help="Only this app (pocket, code, cut, life, ops, runtime).")
@click.option("--model", help="Only this model.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
@handle_errors
def list_entries(
    kind: Any, app: str | None, model: str | None, limit: int, as_json: bool
) -> None:
    """The newest trace entries first."""
    with _open() as log:
        records = log.list(kind, app=app, model=model, limit=limit)
    if as_json:
        emit_json(records)
    elif not records:
        console.print("[dim]No trace entries yet.[/]")
    else:
        console.print(_list_table(records))


@trace.command()
@click.argument("trace_id")
@json_option
@handle_errors
def show(trace_id: str, as_json: bool) -> None:
    """One entry in full; the first characters of its id are enough."""
    with _open() as log:
        record = log.find(trace_id)
    if as_json:
        emit_json(record)
    else:
        console.print(_show_table(record))


@trace.command()
@click.option("--by", type=click.Choice(["model", "app"]), default="model", show_default=True)
@json_option
@handle_errors
def stats(by: Any, as_json: bool) -> None:
    """Calls, errors, tokens, speed and latency percentiles per model or app."""
    with _open() as log:
        rows = log.stats(by)
    if as_json:
        emit_json(rows)
    elif not rows:
        console.print("[dim]No calls recorded yet.[/]")
    else:
        console.print(_stats_table(rows, by))
