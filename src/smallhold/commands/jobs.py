"""``smallhold jobs``: every app's background jobs, when each is due, and running them now.

The apps declare their jobs (``AppSpec.jobs``); this command and the apps' own triggers
(pocket runs its jobs after an answer) go through the same scheduler, so a job that ran
here is not due again there. Power rules hold here too: ``run`` on battery defers.
"""

from __future__ import annotations

import time
from typing import Any

import click
from rich.table import Table

from smallhold.console import console, emit_json, handle_errors, json_option
from smallhold.console import profile_option as profile_opt
from smallhold.kit import registry
from smallhold.kit.cli import open_home
from smallhold.kit.home import Home
from smallhold.kit.jobs import Jobs, namespace


def _schedules(home: Home, apps: tuple[str, ...]) -> dict[str, Jobs]:
    specs = [spec for spec in registry.installed() if spec.jobs is not None]
    unknown = sorted(set(apps) - {spec.name for spec in specs})
    if unknown:
        raise click.BadParameter(f"no app with background jobs named {', '.join(unknown)}; "
                                 f"apps with jobs: {', '.join(s.name for s in specs)}",
                                 param_hint="APP")
    schedules = {}
    for spec in specs:
        if spec.jobs is not None and (not apps or spec.name in apps):
            schedules[spec.name] = Jobs(home.vault, home.probe, spec.jobs.load()(home),
                                        namespace=namespace(spec.name))
    return schedules


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at)) if at else "never"


def _every(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min"


@click.group(invoke_without_command=True)
@click.pass_context
def jobs(ctx: click.Context) -> None:
    """Background jobs of every app (memory consolidation, sync, checks).

    \b
    smallhold jobs list [APP...]          when each job last ran and is next due
    smallhold jobs run [--force] [APP...] run what is due, as far as power allows
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_)


@jobs.command("list")
@click.argument("apps", nargs=-1)
@profile_opt
@json_option
@handle_errors
def list_(apps: tuple[str, ...], profile: str, as_json: bool) -> None:
    """When each job last ran and when it is next due."""
    rows: list[dict[str, Any]] = []
    with open_home(profile, quiet=as_json) as home:
        for app, schedule in _schedules(home, apps).items():
            due = set(schedule.due())
            for name, job in schedule.jobs.items():
                rows.append({"app": app, "job": name, "every_s": job.every,
                             "power": job.power, "last_run": schedule.last_run(name),
                             "next_due": schedule.next_due(name), "due": name in due,
                             "deferred_since": schedule.deferred_since(name)})
    if as_json:
        emit_json({"jobs": rows})
        return
    table = Table("app", "job", "every", "last run", "next due")
    for row in rows:
        table.add_row(row["app"], row["job"], _every(row["every_s"]),
                      _when(row["last_run"]), "now" if row["due"] else _when(row["next_due"]))
    console.print(table if rows else "No app declares background jobs.")


@jobs.command("run")
@click.argument("apps", nargs=-1)
@click.option("--force", is_flag=True, help="Run every job, due or not (power rules hold).")
@profile_opt
@json_option
@handle_errors
def run(apps: tuple[str, ...], force: bool, profile: str, as_json: bool) -> None:
    """Run the due jobs of APPS (all apps without any) as far as power allows."""
    results = []
    with open_home(profile, quiet=as_json) as home:
        for app, schedule in _schedules(home, apps).items():
            decision, outcomes = schedule.run(force=force)
            results += [{"app": app, "job": o.job, "action": o.action, "detail": o.detail,
                         "power": decision.mode} for o in outcomes]
    if as_json:
        emit_json({"jobs": results})
        return
    for r in results:
        console.print(f"{r['app']}.{r['job']}: {r['action']} ({r['detail']})", markup=False)
    if not results:
        console.print("Nothing is due.")
