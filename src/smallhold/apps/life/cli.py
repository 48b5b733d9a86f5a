"""``smallhold life``: your exports, privately.

    smallhold life ingest PATH...     calendar (.ics), bank (.ofx/.qfx, CSV), Apple Health
                                      (export.xml), sleep/steps CSV, mail (.mbox)
    smallhold life status             what is in the vault, by source, and what could not be read
    smallhold life forget SOURCE      remove everything that came from one file
    smallhold life check              run the detectors now; alerts with their evidence
    smallhold life alerts [ID]        the alerts kept, or one alert's whole evidence chain
    smallhold life export OUT.jsonl   everything life keeps, as plaintext JSON Lines (yours)
    smallhold life decide "QUESTION"  cited facts from your data, weighed by the local model
    smallhold life values [--set F]   your priorities, most important first
    smallhold life watch DIR          ingest new exports as they land
    smallhold life memory [--now]     month summaries the nightly job kept, and what faded
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
from smallhold.apps.life.advice import Advice
from smallhold.apps.life.alerts import Alert
from smallhold.apps.life.ingest import as_dict, walk
from smallhold.apps.life.ingest import ingest as ingest_paths
from smallhold.apps.life.store import LifeStore
from smallhold.console import console, emit_json, err_console, handle_errors, json_option
from smallhold.console import profile_option as profile_opt
from smallhold.kit.cli import open_home
from smallhold.kit.home import Home


@click.group()
def life() -> None:
    """Your calendar, money, health and mail, kept in your encrypted vault.

    \b
    smallhold life ingest PATH...   read exports (files or folders); safe to repeat
    smallhold life status           what is stored, and what could not be read
    smallhold life check            warnings from your data, each with its evidence
    smallhold life alerts [ID]      the warnings kept; one with its whole evidence
    """


def _rebuild(store: LifeStore, home: Home) -> None:
    from smallhold.apps.life.graph_queries import rebuild_graph
    from smallhold.apps.life.values import load_values

    rebuild_graph(store, load_values(home.vault))


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

        store = LifeStore(home.vault)
        report = ingest_paths(store, list(paths), progress=progress, force=force)
        if report.added:  # the graph follows the records it is built from
            bar.update(task, description="updating the people graph")
            _rebuild(store, home)
        problems = store.problems()
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
        _rebuild(store, home)  # the graph is derived: nothing of the source may stay in it
    if as_json:
        emit_json({"forgotten": source, "records": removed})
        return
    console.print(f"Removed {removed:,} record(s) from {source}.")


def _print_advice(advice: Advice, lead: str) -> None:
    """A recommendation and how it stands against the priorities (conflicts first)."""
    if advice.text:
        console.print(f"{lead}{advice.text}", markup=False)
    pad = " " * (len(lead) - len(lead.lstrip()) + 2)
    for note in advice.conflicts:
        console.print(f"{pad}[red]conflicts with[/] {escape(note.priority)} (priority "
                      f"{note.rank}): {escape(note.reason)}")
    for note in advice.supports:
        console.print(f"{pad}[green]supports[/] {escape(note.priority)} (priority "
                      f"{note.rank}): {escape(note.reason)}")


def _print_alert(alert: Alert, *, full: bool) -> None:
    console.print(f"[bold]{escape(alert.title)}[/] [dim]({alert.kind}, {alert.start} to "
                  f"{alert.end}, id {alert.id})[/]")
    if alert.violates:
        console.print(f"  against your priorities: {', '.join(alert.violates)}", markup=False)
    console.print(f"  rule: {alert.rule}", markup=False)
    if alert.advice is not None:
        _print_advice(alert.advice, "  suggested: ")
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
@click.option("--set", "new", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read your priorities from this TOML file (see below) and keep them.")
@profile_opt
@json_option
@handle_errors
def values(new: Path | None, profile: str, as_json: bool) -> None:
    """What you said matters, most important first; every check and decision is weighed
    against it.

    \b
    A priorities file (TOML):
      [person]
      name = "Maya"  emails = ["maya@home.example", "maya@work.example"]
      timezone = "America/Chicago"  currency = "USD"
      [[priority]]
      id = "health_first"
      statement = "Sleep at least 7 hours and walk every day."
      targets = { sleep_hours_min = 7.0, steps_min = 7000 }
    Targets checks read: sleep_hours_min, steps_min, savings_rate_min,
    meeting_hours_per_week_max, contact + reply_within_days, calendar_summary + weekday.
    """
    from smallhold.apps.life.values import load_values, read_values, save_values

    with open_home(profile, app=APP, quiet=as_json) as home:
        if new is not None:
            save_values(home.vault, read_values(new))
        kept = load_values(home.vault)
    if as_json:
        emit_json(json.loads(kept.model_dump_json(by_alias=True)))
        return
    person = kept.person
    if person.name or person.emails:
        console.print(f"{person.name} ({', '.join(person.emails)}; {person.timezone}"
                      f"{', ' + person.currency if person.currency else ''})", markup=False)
    for i, priority in enumerate(kept.priorities, start=1):
        targets = ", ".join(f"{k} {v}" for k, v in priority.targets.items())
        console.print(f"{i}. {priority.statement}" + (f"  [{targets}]" if targets else ""),
                      markup=False)
    if not kept.priorities:
        console.print("No priorities yet: `smallhold life values --set priorities.toml`.")


@life.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--every", default=30.0, show_default=True, type=click.FloatRange(1),
              help="Seconds between looks at the folder.")
@click.option("--once", is_flag=True, help="Look once and stop (for scripts and timers).")
@click.option("--no-jobs", is_flag=True, help="Only ingest; leave the 6-hourly check and the "
              "nightly consolidation to `smallhold jobs run`.")
@profile_opt
@json_option
@handle_errors
def watch(folder: Path, every: float, once: bool, no_jobs: bool, profile: str,
          as_json: bool) -> None:
    """Ingest new exports as they land in FOLDER and, while it runs, do life's scheduled
    work when it falls due: the 6-hourly check (a durable workflow per slot, so a check
    cut short by Ctrl+C or a crash is finished by the next start, never run twice) and
    the nightly consolidation (on the charger). Ctrl+C stops. A file is read once its
    size has stopped changing, so a download in progress is not read half-way."""
    import time

    from smallhold.apps.life.watch import jobs as life_jobs
    from smallhold.kit.jobs import Jobs, namespace

    sizes: dict[Path, int] = {}
    with open_home(profile, app=APP, quiet=as_json) as home:
        store = LifeStore(home.vault)
        schedule = None if no_jobs else Jobs(home.vault, home.probe, life_jobs(home),
                                             namespace=namespace(APP.name))
        try:
            while True:
                current = {p: p.stat().st_size for p in walk([folder])}
                settled = [p for p, size in current.items()
                           if once or sizes.get(p) == size]
                sizes = current
                report = ingest_paths(store, settled) if settled else None
                added = report is not None and report.added > 0
                if added:
                    _rebuild(store, home)
                ran: list[dict[str, str]] = []
                if schedule is not None and schedule.due():  # after ingest: checks see it
                    ran = [{"job": o.job, "action": o.action, "detail": o.detail}
                           for o in schedule.run()[1]]
                if as_json and (added or ran or once):
                    data = as_dict(report) if report else {"added": 0, "files": []}
                    emit_json({**data, "jobs": ran})
                elif not as_json:
                    for f in report.files if report is not None and added else []:
                        if f.added or f.problems:
                            console.print(f"{f.file}: {f.added:,} new, {f.problems} "
                                          "problem(s)", markup=False)
                    for job in ran:
                        err_console.print(f"{job['job']}: {job['action']}, {job['detail']}",
                                          markup=False)
                if once:
                    return
                time.sleep(every)
        except KeyboardInterrupt:
            err_console.print("stopped watching")

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
        plan = decision.plan.model_dump(mode="json") if decision.plan else {}
        emit_json({"question": decision.question, "priorities": decision.priorities,
                   "facts": [vars(f) for f in decision.facts], "answer": decision.answer,
                   "plan": plan.get("changes", []), "conflicts": plan.get("conflicts", []),
                   "supports": plan.get("supports", []),
                   "unchecked": plan.get("unchecked", [])})
        return
    console.print(f"[bold]{escape(question)}[/]")
    for i, fact in enumerate(decision.facts, start=1):
        console.print(f"  [F{i}] {fact.text}", markup=False)
    if decision.plan is not None and (decision.plan.conflicts or decision.plan.supports):
        console.print("  Against your priorities (from the question's words, by rule):")
        _print_advice(decision.plan.model_copy(update={"text": ""}), "  ")
    console.print()
    console.print(decision.answer, markup=False)


@life.command()
@click.argument("query", required=False)
@click.option("--met-most", "met_most", is_flag=True,
              help="Rank the people you met by meeting hours, with the events.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="With --met-most: from this local day [default: all].")
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="With --met-most: to this local day, inclusive [default: all].")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Rows to show [default: 10]; with --extract, texts to read [default: 50].")
@click.option("--rebuild", is_flag=True, help="Build the graph again from the records first.")
@click.option("--extract", "read_texts", is_flag=True,
              help="First let the local model read mail and event descriptions not read yet "
                   "(newest first, at most --limit) for places, organisations, habits, goals "
                   "and people; names not in the text are dropped.")
@click.option("-m", "--model", help="Model for --extract (see `smallhold models list`).")
@profile_opt
@json_option
@handle_errors
def graph(query: str | None, met_most: bool, since: datetime | None,
          until: datetime | None, limit: int | None, rebuild: bool, read_texts: bool,
          model: str | None, profile: str, as_json: bool) -> None:
    """Who and what your life involves, from your mail, calendar, payments and priorities,
    with the records behind it.

    \b
    smallhold life graph                    counts and the people most in touch
    smallhold life graph --met-most --since 2025-03-01 --until 2025-03-31
    smallhold life graph "Tom Thompson"     one person (a name or an address)
    smallhold life graph gym                a topic, place, habit, goal or organisation
    smallhold life graph --extract --limit 100 -m MODEL   read free text with the model
    """
    from smallhold.apps.life import graph_queries as queries
    from smallhold.apps.life.values import load_values

    rows = limit or 10
    with open_home(profile, app=APP, quiet=as_json) as home:
        store = LifeStore(home.vault)
        report = _extract(store, home, model, limit, as_json) if read_texts else None
        if rebuild or report is not None or queries.graph_is_empty(store):
            queries.rebuild_graph(store, load_values(home.vault))
        answer: dict[str, object] = {"extract": report} if report else {}
        if met_most:
            answer["met_most"] = queries.who_did_i_meet_most(
                store, since.date() if since else None, until.date() if until else None,
                rows)
        elif query:
            found = queries.person(store, query)
            answer.update({"person": found} if found else
                          {"topic": queries.topic(store, query)})
        else:
            answer["summary"] = queries.summary(store, rows)
    if as_json:
        emit_json(answer)
        return
    _print_graph(answer)


def _extract(store: LifeStore, home: Home, model: str | None, limit: int | None,
             as_json: bool) -> dict[str, object]:
    """``graph --extract``: the model reads what it has not, with a bar; no prompt text is
    traced (``extract.untraced``), only the run's counts."""
    from rich.progress import BarColumn, MofNCompleteColumn

    from smallhold.apps.life.extract import DEFAULT_LIMIT, extract, untraced

    home.runtime.prepare(model)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=err_console,
                  transient=True, disable=as_json) as bar:
        task = bar.add_task("reading mail and events with the local model", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = extract(store, untraced(home.runtime), model=model,
                         limit=limit or DEFAULT_LIMIT, progress=progress)
    counts: dict[str, object] = dict(vars(report))
    home.trace.record_event("life.extract", app="life", model=report.model,
                            data={k: v for k, v in counts.items() if k != "model"})
    return counts


def _print_graph(answer: dict[str, object]) -> None:
    rows: object
    if isinstance(done := answer.get("extract"), dict):
        console.print(f"The model ({done['model']}) read {done['read']} text(s): "
                      f"{done['kept']} name(s) kept, {done['dropped']} dropped (not in the "
                      f"text), {done['failed']} failed; {done['cached']} read before, "
                      f"{done['left']} left for another run.", markup=False)
    if (rows := answer.get("met_most")) is not None and isinstance(rows, list):
        table = Table("person", "hours", "meetings", "latest events")
        for p in rows:
            table.add_row(p["name"], f"{p['hours']:g}", str(p["count"]), ", ".join(
                f"{e['summary'] or e['uid']} {e['at'][:10]}" for e in p["events"][-2:]))
        console.print(table if rows else "No meetings in that window.")
    elif isinstance(p := answer.get("person"), dict):
        console.print(f"[bold]{escape(p['name'])}[/] {escape(', '.join(p['emails']))}")
        for org in p["organisations"]:
            console.print(f"  works at {org['id'][4:]} (seen {org['first'][:10]} to "
                          f"{org['last'][:10]})", markup=False)
        mail, meet = p["mail"], p["meetings"]
        console.print(f"  mail: {mail['count']} message(s), meetings: {meet['count']} "
                      f"({meet['hours']:g} h)", markup=False)
        if p["last_contact"]:
            console.print(f"  last contact: {p['last_contact']['at']} "
                          f"({p['last_contact']['kind']})", markup=False)
        if mail.get("last_sent"):
            console.print(f"  you last wrote: {mail['last_sent']['at']} "
                          f"{mail['last_sent']['key']}", markup=False)
        for ref in p["evidence"][-5:]:
            console.print(f"    {ref['kind']} {ref['key']} @ {ref['at']} {ref['note']}",
                          markup=False)
        if p["mentioned"]["count"]:
            console.print(f"  named in {p['mentioned']['count']} text(s) "
                          f"[{p['mentioned']['source']}]", markup=False)
    elif isinstance(t := answer.get("topic"), dict):
        for person in t["people"]:
            console.print(f"{person['name']}: {person['messages']} message(s), "
                          f"{person['meetings']} meeting(s)", markup=False)
        for shop in t["merchants"]:
            console.print(f"{shop['name']}: {shop['count']} payment(s) {shop['total']}",
                          markup=False)
        for thing in t["things"]:
            state = " (lapsed)" if thing.get("lapsed") else ""
            console.print(f"{thing['kind']} {thing['name']}{state} [{thing['source']}]",
                          markup=False)
            for edge in thing["relations"]:
                dates = (f" {edge['first'][:10]} to {edge['last'][:10]}" if edge["first"]
                         else "")
                console.print(f"  {edge['from']} {edge['kind']}: {edge['count']} time(s)"
                              f"{dates} [{edge['source']}]", markup=False)
                for ref in edge["evidence"][-3:]:
                    console.print(f"    {ref['kind']} {ref['key']} @ {ref['at']} "
                                  f"{ref.get('note', '')}", markup=False)
        if not (t["people"] or t["merchants"] or t["organisations"] or t["things"]):
            console.print(f"No person or topic matches {t['word']!r}.", markup=False)
    elif isinstance(s := answer.get("summary"), dict):
        console.print(", ".join(f"{n} {k}(s)" for k, n in sorted(s["entities"].items()))
                      or "The graph is empty: `smallhold life ingest PATH` first.")
        for person in s["top_people"]:
            console.print(f"  {person['name']}: {person['messages']} message(s), "
                          f"{person['meetings']} meeting(s), {person['hours']:g} h",
                          markup=False)


@life.command()
@click.option("--now", "run_now", is_flag=True,
              help="Consolidate now instead of waiting for the nightly job.")
@profile_opt
@json_option
@handle_errors
def memory(run_now: bool, profile: str, as_json: bool) -> None:
    """What the nightly consolidation kept: one summary per finished month, and what faded
    or was archived, with the reason."""
    from smallhold.apps.life.consolidate import KIND
    from smallhold.apps.life.watch import consolidate_now
    from smallhold.store.memory import MemoryStore

    with open_home(profile, app=APP, quiet=as_json) as home:
        written = actions = 0
        if run_now:
            written, actions = consolidate_now(home)
        store = MemoryStore(home.vault, home.embedder)
        kept = store.list(kind=KIND, limit=1000) + store.list(kind=KIND, archived=True,
                                                               limit=1000)
        ids = {m.id for m in kept}
        events = [e for e in store.history(limit=1000) if e.memory_id in ids]
    if as_json:
        emit_json({"written": written, "actions": actions,
                   "memories": [m.model_dump(mode="json") for m in kept],
                   "events": [e.model_dump(mode="json") for e in events]})
        return
    for m in sorted(kept, key=lambda m: m.tags):
        state = f" [archived: {m.archived_reason}]" if m.archived_at else ""
        console.print(f"{m.text}{state}", markup=False)
    for e in events:
        console.print(f"  {e.action}: {e.reason}", markup=False)
    if not kept:
        console.print("Nothing consolidated yet: `smallhold life memory --now`.")


@life.command()
@click.option("--weeks", default=6, show_default=True, type=click.IntRange(1, 26),
              help="Whole weeks to look ahead, from next Monday.")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Forecast as if it were this day [default: today].")
@profile_opt
@json_option
@handle_errors
def forecast(weeks: int, as_of: datetime | None, profile: str, as_json: bool) -> None:
    """The coming weeks' meeting hours against your limit, and changes that would protect
    the weeks over it, each with its effect and how it stands against your priorities.

    \b
    A week's hours: the meetings already booked, plus the one-off meetings your last
    12 weeks say will still come (more when the same weeks last year were heavier).
    """
    from smallhold.apps.life.daily import Records
    from smallhold.apps.life.forecast import forecast as plan
    from smallhold.apps.life.forecast import forecast_json
    from smallhold.apps.life.values import load_values

    with open_home(profile, app=APP, quiet=as_json) as home:
        store = LifeStore(home.vault)
        records = Records(events=list(store.records("event")), health=[],
                          messages=list(store.records("message")))
        found = plan(records, load_values(home.vault),
                     as_of.date() if as_of else datetime.now().date(), weeks)
    if as_json:
        emit_json(forecast_json(found))
        return
    table = Table("week", "from", "workdays", "booked", "expected", "hours", "limit", "")
    for w in found.weeks:
        table.add_row(w.label, f"{w.start:%d %b}", str(w.workdays),
                      f"{w.recurring + w.one_off:.1f}", f"{w.expected:.1f}", f"{w.hours:.1f}",
                      "-" if w.limit is None else f"{w.limit:g}",
                      "[red]over[/]" if w.over else "under" if w.limit is not None else "")
    console.print(table)
    if found.limit_from:
        console.print(f"limit: {found.limit_from}", markup=False)
    if found.one_off_per_workday is not None:
        console.print(f"expected one-off meetings: {found.one_off_per_workday:.2f} h a workday "
                      f"(median of {len(found.history)} weeks, {found.history[0]} to "
                      f"{found.history[-1]})", markup=False)
    for w in found.weeks:
        if w.seasonal is not None:
            s = w.seasonal
            console.print(f"{w.label}: a year ago ({', '.join(s.weeks)}) one-off meetings ran "
                          f"at {s.hours:g} h a week against {s.usual:g} usual then: expecting "
                          f"{s.ratio:g}x your usual", markup=False)
    for i, proposal in enumerate(found.proposals, start=1):
        _print_advice(proposal.advice, f"{i}. ")
        console.print(f"   stands on {len(proposal.cites)} record(s): " + ", ".join(
            f"{r.key} @ {r.at}" for r in proposal.cites[:3])
            + (" ..." if len(proposal.cites) > 3 else ""), markup=False)
    if found.limit is not None and not found.over:
        console.print("No week over the limit: nothing to protect.")
    for note in found.notes:
        err_console.print(f"note: {note}", markup=False)
