"""``smallhold code``: the coding agent from the terminal.

    smallhold code "fix the failing test" --project DIR     a run, to its end
    smallhold code runs | show RUN | diff RUN | apply RUN   review and take its work
    smallhold code resume RUN                               continue a killed run
    smallhold code memory list|show|forget                  what runs taught it
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.table import Table

from smallhold.apps.code import APP, approval
from smallhold.apps.code.agent import Agent, execute
from smallhold.apps.code.errors import ProjectError
from smallhold.apps.code.live import LiveView
from smallhold.apps.code.memory import KINDS
from smallhold.apps.code.models import Run, Task
from smallhold.apps.code.testing import default_command, parse_command
from smallhold.apps.code.workspace import commit_in_project, dirty_files
from smallhold.console import (
    console,
    emit_json,
    err_console,
    handle_errors,
    json_option,
    keep_whole,
)
from smallhold.console import profile_option as profile_opt
from smallhold.kit.cli import open_home


class _CodeGroup(click.Group):
    """``code`` with no subcommand name means ``code run``: ``smallhold code "task"`` works."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_CodeGroup)
def code() -> None:
    """A coding agent: edits a copy of the project, tests it in a sandbox, repairs.

    \b
    smallhold code "TASK" --project DIR    work on TASK until the tests pass (or a stop)
    smallhold code runs | show | diff      the runs and what they changed
    smallhold code apply RUN               write a run's changes into the project
    smallhold code resume RUN              continue a run that was killed
    smallhold code memory list|show|forget what past runs taught it
    """


def _python_for(project: Path) -> str:
    """The project's own virtualenv if it has one, else this Python."""
    for candidate in (project / ".venv" / "bin" / "python", project / "venv" / "bin" / "python"):
        if candidate.exists():
            return str(candidate)
    return sys.executable


@contextmanager
def _agent(profile: str, policy: Path | None = None, quiet: bool = False
           ) -> Iterator[Agent]:
    """The profile's agent, on the home every command opens (a test's overrides apply)."""
    with open_home(profile, app=APP, quiet=quiet) as home:
        yield Agent.on(home, policy=policy)


@contextmanager
def _watching(agent: Agent, as_json: bool) -> Iterator[None]:
    """The live view of the model's reply while ``agent`` works, on a terminal only."""
    if as_json or not err_console.is_terminal:
        yield
        return
    with LiveView(err_console) as view:
        agent.notify, agent.watch = view.step, view.token
        agent.decider = view.paused(agent.decider)
        yield


def _summary(run: Run) -> dict[str, object]:
    return {"id": run.id, "status": run.status, "reason": run.stop_reason,
            "detail": run.stop_detail, "iterations": run.iterations,
            "baseline": {"passed": run.baseline_passed, "failed": run.baseline_failed},
            "project": run.task.project, "task": run.task.description}


def _report(agent: Agent, run: Run, as_json: bool) -> None:
    if as_json:
        last = agent.iteration(run.id, run.iterations) if run.iterations else None
        emit_json({**_summary(run), "tests": last.test_summary if last else None,
                   "changed": sorted(agent.workspace(run).changed())})
        return
    colour = {"solved": "green", "stopped": "yellow", "failed": "red"}.get(run.status, "white")
    if run.status == "solved":  # the stop detail would say the count a second time
        console.print(f"[{colour}]solved[/{colour}]: the tests pass after {run.iterations} "
                      f"iteration{'s' if run.iterations != 1 else ''}")
    else:
        console.print(f"[{colour}]{run.status}[/{colour}] after {run.iterations} "
                      f"iteration(s): {run.stop_detail or run.stop_reason}")
    changed = agent.workspace(run).changed()
    if changed:
        console.print(f"changed: {', '.join(sorted(changed))}")
        console.print(f"review: smallhold code diff {run.id}   take it: smallhold code apply "
                      f"{run.id}")
    else:
        console.print("no changes were made to the project's copy")


@code.command("run")
@click.argument("task")
@click.option("-p", "--project", type=click.Path(path_type=Path), default=Path("."),
              show_default=True, help="The project directory (the agent works on a copy).")
@click.option("--test-command", help='How to check the work (default: "python -m pytest").')
@click.option("-n", "--max-iterations", type=click.IntRange(1, 20), default=5, show_default=True)
@click.option("--timeout", "timeout_s", type=click.FloatRange(1, 3600), default=120.0,
              show_default=True, help="Seconds one test run may take before it is killed.")
@click.option("--model", help="Model name (default: the runtime's default).")
@click.option("--edit-tests", is_flag=True, help="Allow changing existing test files.")
@click.option("--network", is_flag=True, help="Ask to give the tests network access.")
@click.option("--seed", type=int, default=7, show_default=True,
              help="Seed of the sampled repairs (the first attempt is greedy); another seed "
                   "gives other repairs.")
@click.option("--no-memory", "memory", flag_value=False, default=True,
              help="Neither recall earlier runs' hints nor learn from this one.")
@click.option("--policy", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Approval policy file for non-interactive runs ([approve] network = ...).")
@json_option
@profile_opt
@handle_errors
def run_command(task: str, project: Path, test_command: str | None, max_iterations: int,
                timeout_s: float, model: str | None, edit_tests: bool, network: bool,
                policy: Path | None, seed: int, memory: bool, as_json: bool, profile: str
                ) -> None:
    """Work on TASK in PROJECT until its tests pass, or say why it stopped."""
    if not task.strip():
        raise ProjectError("the task is empty; say what to change.")
    project = project.expanduser().resolve()
    if not project.is_dir():
        raise ProjectError(f"{project} is not a directory; pass --project with one.")
    python = _python_for(project)
    command = parse_command(test_command, python) if test_command else \
        default_command(project, python)
    dirty = dirty_files(project)
    if dirty:
        err_console.print(f"[yellow]{project} has uncommitted changes ({len(dirty)} files); "
                          "the agent works on a copy that includes them, and apply refuses "
                          "to overwrite any file you change meanwhile.[/yellow]")
    with _agent(profile, policy, quiet=as_json) as agent:
        # refuse early without a working sandbox
        agent.sandboxes(project, python, agent.limits).check()
        if network:
            decision = approval.ask(agent.decider, approval.Request(
                "(new run)", "network", "network access for the project's tests"),
                agent.runtime.trace)
            network = decision.allowed
            if not decision.allowed:
                err_console.print(f"[yellow]network stays off: {decision.reason}[/yellow]")
        agent.runtime.prepare(model)
        run = agent.create(Task(description=task, project=str(project),
                                test_command=command, python=python, model=model,
                                max_iterations=max_iterations, timeout_s=timeout_s,
                                edit_tests=edit_tests, network=network, seed=seed,
                                memory=memory))
        if not as_json:
            err_console.print(f"[dim]run {run.id} (resume with: smallhold code resume "
                              f"{run.id})[/dim]")
        with _watching(agent, as_json):
            done = execute(agent, run.id)
        _report(agent, done, as_json)


@code.command()
@click.argument("run_id")
@json_option
@profile_opt
@handle_errors
def resume(run_id: str, as_json: bool, profile: str) -> None:
    """Continue RUN_ID where it stopped (after a crash or kill)."""
    with _agent(profile, quiet=as_json) as agent:
        run = agent.run(run_id)
        if run.status != "running":
            err_console.print(f"run {run.id} already ended: {run.status}")
        else:
            agent.runtime.prepare(run.task.model)
        with _watching(agent, as_json):
            done = execute(agent, run.id, resume=True)
        _report(agent, done, as_json)


@code.command()
@json_option
@profile_opt
@handle_errors
def runs(as_json: bool, profile: str) -> None:
    """The agent's runs, newest first."""
    with _agent(profile, quiet=True) as agent:
        found = sorted((r.value for r in agent.runs.all()), key=lambda r: -r.started_at)
        if as_json:
            emit_json([_summary(r) for r in found])
            return
        table = Table("run", "status", "iterations", "task", "project")
        for r in found:
            table.add_row(r.id, r.status, str(r.iterations), r.task.description[:50],
                          r.task.project)
        console.print(keep_whole(table, "run"))


@code.command()
@click.argument("run_id")
@json_option
@profile_opt
@handle_errors
def show(run_id: str, as_json: bool, profile: str) -> None:
    """Every iteration of RUN_ID: its approach or diagnosis, changes, tests, what failed."""
    with _agent(profile, quiet=True) as agent:
        run = agent.run(run_id)
        iterations = agent.history(run.id, run.iterations + 1)
        if as_json:
            emit_json({**_summary(run), "hypotheses": [h.model_dump() for h in run.hypotheses],
                       "iterations": [it.model_dump(exclude={"diff", "test_tail"})
                                      for it in iterations]})
            return
        console.print(f"[bold]{run.id}[/bold] {run.status}: {run.stop_detail or ''}")
        for it in iterations:
            console.print(f"\n[bold]iteration {it.number}[/bold] "
                          f"{it.plan.summary if it.plan else '(no edit)'}")
            for line in (*(f"changed {c}" for c in it.changed),
                         *(f"not applied: {r}" for r in it.rejected),
                         *(f"put back: {r}" for r in it.repaired),
                         f"tests: {it.test_summary}",
                         *(f"  {x}" for x in it.explained.splitlines()[:6]),
                         *([f"undone: {it.undone}"] if it.undone else []),
                         *(f"sandbox: {c}" for c in it.contained),
                         *([f"next hypothesis: {it.hypothesis.text}"]
                           if it.hypothesis and it.reflection else [])):
                console.print(f"  {line}", markup=False)


@code.command()
@click.argument("run_id")
@profile_opt
@handle_errors
def diff(run_id: str, profile: str) -> None:
    """The run's changes against the project as it was, as a unified diff."""
    with _agent(profile, quiet=True) as agent:
        text = agent.workspace(agent.run(run_id)).diff()
        click.echo(text if text else "(no changes)", nl=not text.endswith("\n"))


@code.command()
@click.argument("run_id")
@click.option("--commit", "commit", is_flag=True,
              help="Also commit the written files in the project's git repository, with a "
                   "message naming the run (no hooks run).")
@json_option
@profile_opt
@handle_errors
def apply(run_id: str, commit: bool, as_json: bool, profile: str) -> None:
    """Write the run's changes into the project (refused if those files changed since)."""
    with _agent(profile, quiet=True) as agent:
        run = agent.run(run_id)
        ws = agent.workspace(run)
        applied = ws.apply()
        already = [rel for rel in ws.already_applied() if rel not in applied]
        committed = commit_in_project(Path(run.task.project), applied, _message(run)) \
            if commit and applied else None
        if as_json:
            emit_json({"id": run.id, "applied": applied, "already_applied": already,
                       "commit": committed})
        elif applied:
            console.print(f"applied {len(applied)} file(s) to {run.task.project}: "
                          f"{', '.join(applied)}" + (f"; committed {committed[:12]}"
                                                      if committed else ""))
        elif already:
            console.print(f"already applied: {run.task.project} has this run's "
                          f"{', '.join(already)} as the run left them; nothing to write")
        else:
            console.print("nothing to apply: the run changed no files")


def _message(run: Run, undo: bool = False) -> str:
    summary = " ".join(run.task.description.split())
    summary = summary if len(summary) <= 60 else summary[:59] + "…"
    head = f"Revert smallhold code run {run.id}" if undo else summary
    return f"{head}\n\n{'Reverts' if undo else 'Made by'} `smallhold code` run {run.id}: " \
           f"{run.status} after {run.iterations} iteration(s).\nTask: {run.task.description}\n"


@code.command()
@click.argument("run_id")
@click.option("--commit", "commit", is_flag=True,
              help="Also commit the restored files in the project's git repository.")
@json_option
@profile_opt
@handle_errors
def undo(run_id: str, commit: bool, as_json: bool, profile: str) -> None:
    """Take an applied run back out of the project (refused if those files changed since)."""
    with _agent(profile, quiet=True) as agent:
        run = agent.run(run_id)
        restored = agent.workspace(run).unapply()
        committed = commit_in_project(Path(run.task.project), restored,
                                      _message(run, undo=True)) if commit and restored else None
        if as_json:
            emit_json({"id": run.id, "restored": restored, "commit": committed})
        elif restored:
            console.print(f"undid run {run.id} in {run.task.project}: {', '.join(restored)} "
                          "as before the run" + (f"; committed {committed[:12]}"
                                                 if committed else ""))
        else:
            console.print(f"nothing to undo: run {run.id} is not applied in "
                          f"{run.task.project}")


@code.group()
def memory() -> None:
    """What past runs taught the agent: success patterns and failure fixes."""


@memory.command("list")
@click.option("--kind", type=click.Choice(KINDS))
@json_option
@profile_opt
@handle_errors
def memory_list(kind: str | None, as_json: bool, profile: str) -> None:
    with _agent(profile, quiet=True) as agent:
        found = agent.memory.list(kind)
        if as_json:
            emit_json([m.model_dump() for m in found])
            return
        table = Table("id", "kind", "text")
        for m in found:
            table.add_row(m.id[:10], m.kind, m.text.splitlines()[0][:90])
        console.print(table)


@memory.command("show")
@click.argument("memory_id")
@profile_opt
@handle_errors
def memory_show(memory_id: str, profile: str) -> None:
    with _agent(profile, quiet=True) as agent:
        store = agent.memory.store
        found = store.get(store.resolve_id(memory_id))
        console.print(f"[bold]{found.id}[/bold] {found.kind}")
        console.print(found.text, markup=False)


@memory.command("forget")
@click.argument("memory_id")
@profile_opt
@handle_errors
def memory_forget(memory_id: str, profile: str) -> None:
    with _agent(profile, quiet=True) as agent:
        store = agent.memory.store
        full = store.resolve_id(memory_id)
        store.forget(full)
        console.print(f"forgot {full}")
