"""``smallhold life``: your exports, privately.

    smallhold life ingest PATH...     calendar (.ics), bank (.ofx/.qfx, CSV), Apple Health
                                      (export.xml), sleep/steps CSV, mail (.mbox)
    smallhold life status             what is in the vault, by source, and what could not be read
    smallhold life forget SOURCE      remove everything that came from one file
    smallhold life check              run the detectors now; alerts with their evidence
    smallhold life alerts [ID]        the alerts kept, or one alert's whole evidence chain
    smallhold life export OUT.jsonl   everything life keeps, as plaintext JSON Lines (yours)
    smallhold life decide "QUESTION"  cited facts from your data, weighed by the local model
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from smallhold.apps.life import APP
from smallhold.apps.life.alerts import Alert
from smallhold.apps.life.ingest import as_dict
from smallhold.apps.life.ingest import ingest as ingest_paths
from smallhold.apps.life.store import LifeStore
from smallhold.console import console, emit_json, err_console, handle_errors, json_option
from smallhold.console import profile_option as profile_opt
from smallhold.kit.cli import open_home


@click.group()
def life() -> None:
    """Your calendar, money, health and mail, kept in your encrypted vault.

    \b
    smallhold life ingest PATH...   read exports (files or folders); safe to repeat
    smallhold life status           what is stored, and what could not be read
    smallhold life check            warnings from your data, each with its evidence
    smallhold life alerts [ID]      the warnings kept; one with its whole evidence
    """


@life.command()
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--force", is_flag=True, help="Read files again even if already ingested.")
@profile_opt
@json_option
@handle_errors
def ingest(paths: tuple[Path, ...], force: bool, profile: str, as_json: bool) -> None:
    """Read exports into the vault; a file already read is skipped, a newer one adds only
    what is new, and a bad record is reported with where it is."""
    with open_home(profile, app=APP, quiet=as_json) as home, Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
            console=err_console, transient=True, disable=as_json) as bar:
        task = bar.add_task("reading", total=None)

        def progress(name: str, count: int) -> None:
            bar.update(task, description=f"{name}: {count:,} records")

        report = ingest_paths(LifeStore(home.vault), list(paths), progress=progress,
                              force=force)
        problems = LifeStore(home.vault).problems()
    if as_json:
        emit_json({**as_dict(report), "problem_list": [p.model_dump() for p in problems]})
        return
    table = Table("file", "kind", "records", "new", "problems", "note")
    for f in report.files:
        table.add_row(f.file, f.kind, f"{f.records:,}", f"{f.added:,}", str(f.problems),
                      f.skipped)
    console.print(table)
    console.print(f"{report.added:,} new record(s), {report.problems} problem(s)")
    for problem in problems[:20]:
        err_console.print(f"[yellow]{escape(problem.file)}, {escape(problem.location)}:[/] "
                          f"{escape(problem.reason)}", highlight=False)


@life.command()
@profile_opt
@json_option
@handle_errors
def status(profile: str, as_json: bool) -> None:
    """What is in the vault, by kind and by source file."""
    with open_home(profile, app=APP, quiet=as_json) as home:
        store = LifeStore(home.vault)
        counts, sources, problems = store.counts(), store.sources(), store.problems()
    if as_json:
        emit_json({"records": counts, "sources": sources, "problems": len(problems)})
        return
    console.print(", ".join(f"{n:,} {kind}(s)" for kind, n in sorted(counts.items()))
                  or "Nothing yet: `smallhold life ingest PATH`.")
    if sources:
        table = Table("file", "kind", "records", "new when read", "problems")
        for s in sources:
            table.add_row(s["file"], s["kind"], f"{s['records']:,}", f"{s['added']:,}",
                          str(s["problems"]))
        console.print(table)


@life.command()
@click.argument("source")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@profile_opt
@json_option
@handle_errors
def forget(source: str, yes: bool, profile: str, as_json: bool) -> None:
    """Remove every record that came from SOURCE (a file name `life status` lists)."""
    with open_home(profile, app=APP, quiet=as_json) as home:
        store = LifeStore(home.vault)
        known = {s["file"] for s in store.sources()}
        if source not in known:
            raise click.BadParameter(f"no source named {source!r}; `smallhold life status` "
                                     "lists them.", param_hint="SOURCE")
        if not yes and not as_json and not home.io.confirm(
                f"Remove everything that came from {source}?"):
            raise click.Abort()
        removed = store.forget(source)
    if as_json:
        emit_json({"forgotten": source, "records": removed})
        return
    console.print(f"Removed {removed:,} record(s) from {source}.")


def _print_alert(alert: Alert, *, full: bool) -> None:
    console.print(f"[bold]{escape(alert.title)}[/] [dim]({alert.kind}, {alert.start} to "
                  f"{alert.end}, id {alert.id})[/]")
    if alert.violates:
        console.print(f"  against your priorities: {', '.join(alert.violates)}", markup=False)
    console.print(f"  rule: {alert.rule}", markup=False)
    for evidence in alert.evidence if full else alert.evidence[:2]:
        numbers = ", ".join(f"{k} {v}" for k, v in evidence.values.items())
        console.print(f"  - {evidence.what}{': ' + numbers if numbers else ''}", markup=False)
        for ref in evidence.records if full else evidence.records[:3]:
            console.print(f"      {ref.kind} {ref.key}{' @ ' + ref.at if ref.at else ''}",
                          markup=False)


@life.command()
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Check as if it were this day [default: today].")
@profile_opt
@json_option
@handle_errors
def check(as_of: datetime | None, profile: str, as_json: bool) -> None:
    """Run every detector now (burnout, spending, subscriptions, people, plans)."""
    from smallhold.apps.life.watch import check_now

    with open_home(profile, app=APP, quiet=as_json) as home:
        alerts, new = check_now(home, as_of.date() if as_of else None)
    if as_json:
        emit_json({"alerts": [a.model_dump(mode="json") for a in alerts], "new": new})
        return
    for alert in alerts:
        _print_alert(alert, full=False)
    console.print(f"{len(alerts)} alert(s), {new} new" if alerts else
                  "No warnings: nothing in your data crosses a rule.")


@life.command()
@click.argument("alert_id", required=False)
@profile_opt
@json_option
@handle_errors
def alerts(alert_id: str | None, profile: str, as_json: bool) -> None:
    """The alerts kept; with ALERT_ID, that alert's whole evidence chain."""
    with open_home(profile, app=APP, quiet=as_json) as home:
        kept = LifeStore(home.vault).alerts()
    if alert_id is not None:
        kept = [a for a in kept if a.id.startswith(alert_id)]
        if len(kept) != 1:
            raise click.BadParameter(f"no single alert {alert_id!r}; `smallhold life alerts` "
                                     "lists them.", param_hint="ALERT_ID")
    if as_json:
        emit_json({"alerts": [a.model_dump(mode="json") for a in kept]})
        return
    for alert in kept:
        _print_alert(alert, full=alert_id is not None)
    if not kept:
        console.print("No alerts kept yet: `smallhold life check`.")


@life.command()
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@profile_opt
@json_option
@handle_errors
def export(output: Path, profile: str, as_json: bool) -> None:
    """Write everything life keeps (records, values, alerts) to OUTPUT as JSON Lines.

    This is a plaintext copy of your data outside the encrypted vault, at your request:
    the file is created readable by you only; keep it somewhere safe or delete it.
    """
    from smallhold.apps.life.values import load_values

    with open_home(profile, app=APP, quiet=as_json) as home:
        store = LifeStore(home.vault)
        partial = output.with_name(f".{output.name}.partial")
        written = 0
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(json.dumps({"type": "values", "data": json.loads(
                    load_values(home.vault).model_dump_json(by_alias=True))}) + "\n")
                for kind in ("event", "transaction", "health", "message"):
                    for record in store.records(kind):
                        out.write(json.dumps({"type": kind, "data": json.loads(
                            record.model_dump_json())}) + "\n")
                        written += 1
                for alert in store.alerts():
                    out.write(json.dumps({"type": "alert", "data": json.loads(
                        alert.model_dump_json())}) + "\n")
            os.replace(partial, output)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    if as_json:
        emit_json({"output": str(output), "records": written})
        return
    console.print(f"Wrote {written:,} record(s) to {output} (plaintext: keep it safe).")


@life.command()
@click.argument("question")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Weigh it as if it were this day [default: today].")
@click.option("-m", "--model", help="Model for the prose (see `smallhold models list`).")
@profile_opt
@json_option
@handle_errors
def decide(question: str, as_of: datetime | None, model: str | None, profile: str,
           as_json: bool) -> None:
    """Weigh QUESTION against your data and priorities: cited facts, then the model's view."""
    from smallhold.apps.life.daily import load_records
    from smallhold.apps.life.decide import decide as weigh
    from smallhold.apps.life.values import load_values

    with open_home(profile, app=APP, quiet=as_json) as home:
        store = LifeStore(home.vault)
        home.runtime.prepare(model)
        decision = weigh(question, load_records(store), load_values(home.vault),
                         store.alerts(), as_of.date() if as_of else datetime.now().date(),
                         home.runtime, model=model)
    if as_json:
        emit_json({"question": decision.question, "priorities": decision.priorities,
                   "facts": [vars(f) for f in decision.facts], "answer": decision.answer})
        return
    console.print(f"[bold]{escape(question)}[/]")
    for i, fact in enumerate(decision.facts, start=1):
        console.print(f"  [F{i}] {fact.text}", markup=False)
    console.print()
    console.print(decision.answer, markup=False)
