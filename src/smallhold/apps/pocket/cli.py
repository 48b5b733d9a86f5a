"""``smallhold chat``: the pocket assistant from the terminal.

``smallhold chat "question"`` answers once and keeps nothing, as ``ollama run`` does, unless
``-c NAME`` names a conversation to continue; ``smallhold chat`` opens a conversation loop
(``-c``, default ``default``), saved in the vault. ``chat list|show|rm`` manage saved
conversations. Every turn recalls the user's notes (``memory remember``, or "remember that
..." typed in chat) and names the ones it used.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import click
from rich.table import Table

from smallhold.apps.pocket import APP, repl
from smallhold.apps.pocket.assistant import SYSTEM, Pocket, TurnResult, remember_request
from smallhold.apps.pocket.background import JOBS, Background, Outcome
from smallhold.config import OpenAISettings, load_settings
from smallhold.console import console, emit_json, err_console, handle_errors, waiting
from smallhold.console import profile_option as profile_opt
from smallhold.errors import SmallholdError
from smallhold.kit.cli import open_home, overrides
from smallhold.kit.power import decide
from smallhold.paths import resolve_paths
from smallhold.runtime import Delta, GenerationParams, Runtime, local_server
from smallhold.runtime.backends.base import ChatBackend
from smallhold.runtime.backends.openai import OpenAIBackend

DEFAULT_CONVERSATION = "default"


@contextmanager
def open_pocket(profile: str, model: str | None = None, system: str = SYSTEM, *,
                warm: bool = False) -> Iterator[Pocket]:
    """The profile's pocket on the home every command opens (a test's overrides apply:
    a scripted backend, a simulated phone). ``warm``: generate in a running ``smallhold
    serve`` when there is one, so its loaded model answers (the prompt is still built here,
    from the vault)."""
    with open_home(profile, app=APP, backend=warm_backend() if warm else None) as home:
        yield Pocket.on(home, model=model, system=system)


def warm_backend() -> ChatBackend | None:
    """A backend on the running server, or None (none running, or not the llama backend:
    a configured remote or a test's scripted one is used as configured)."""
    if overrides().backend is not None:
        return None
    paths = resolve_paths()
    settings = load_settings(paths)
    if settings.runtime.backend != "llama":
        return None
    key = settings.server.api_key
    url = local_server.find(paths, key.get_secret_value())
    if url is None:
        return None
    backend = OpenAIBackend(OpenAISettings(base_url=f"{url}/v1", api_key=key, timeout=600),
                            context=settings.runtime.n_ctx)
    backend.name = "smallhold-serve"
    return backend


class _ChatGroup(click.Group):
    """``chat`` with no subcommand name means ``chat ask``: ``smallhold chat "hi"`` works."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["ask", *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[OPTIONS] [QUESTION] | COMMAND [ARGS]...")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The options of a question and of the loop (``ask``'s), which is what ``chat``
        runs; before, ``chat --help`` showed only --help and they hid under ``chat ask``."""
        asking = self.commands["ask"]
        rows = [row for param in asking.get_params(ctx) if isinstance(param, click.Option)
                and "--help" not in param.opts
                and (row := param.get_help_record(ctx)) is not None]
        own = [row for param in self.get_params(ctx)
               if (row := param.get_help_record(ctx)) is not None]
        with formatter.section("Options"):
            formatter.write_dl(rows + own)
        self.format_commands(ctx, formatter)


@click.group(cls=_ChatGroup)
def chat() -> None:
    """Chat with the local model; conversations are kept in your encrypted vault.

    \b
    smallhold chat "question"        answer once, keep nothing (-c NAME: continue NAME)
    smallhold chat                   a conversation loop (-c NAME, default "default")
    "remember that ..."              keeps a note that later answers recall
    smallhold chat list|show|rm      saved conversations
    smallhold chat maintain          background work (memory, sync) when power allows
    """


def _say(pocket: Pocket, name: str | None, question: str, params: GenerationParams,
         stream_out: bool) -> None:
    fact = remember_request(question)
    if fact is not None:
        note = pocket.remember(fact)
        pocket.last = TurnResult(answer=f"I'll remember that: {fact}", events=[f"note {note}"])
        if stream_out:
            console.print(f"I'll remember that: {fact}", markup=False)
        return
    loaded = pocket.runtime.manager is None or any(
        m.name == pocket.runtime.resolve_model(pocket.model)
        for m in pocket.runtime.manager.loaded())
    with waiting("thinking" if loaded else "loading the model", enabled=stream_out) as stop:
        for event in pocket.ask(name, question, params):
            if isinstance(event, Delta) and stream_out:
                stop()
                sys.stdout.write(event.text)
                sys.stdout.flush()
    if stream_out:
        sys.stdout.write("\n")
        used = pocket.last.prompt.notes if pocket.last.prompt else []
        if used:
            err_console.print("[dim]from your notes: " + "; ".join(
                f"{n.text} ({n.id[:8]})" for n in used) + "[/]", highlight=False)


@chat.command()
@click.argument("question", required=False)
@profile_opt
@click.option("-c", "--conversation", default=None,
              help="Continue this saved conversation (made when new). A one-shot question "
                   "without it keeps nothing; the chat loop uses \"default\".")
@click.option("-m", "--model", help="Model name (see `smallhold models list`).")
@click.option("--system", default=SYSTEM, show_default=False, help="System prompt.")
@click.option("--max-tokens", default=512, show_default=True, type=click.IntRange(1),
              help="Longest answer, in tokens.")
@click.option("--temperature", default=0.7, show_default=True, type=click.FloatRange(0, 2),
              help="0 answers the same every time; higher varies more.")
@click.option("--seed", type=int, help="Fix the sampling seed for repeatable answers.")
@click.option("--device", "show_device", is_flag=True,
              help="Show which model, weights and KV cache this device gets, and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer and usage as JSON.")
@click.option("--local", is_flag=True,
              help="Load the model in this command even when a `smallhold serve` is running "
                   "(by default its warm model answers).")
@handle_errors
def ask(question: str | None, profile: str, conversation: str | None, model: str | None,
        system: str,
        max_tokens: int, temperature: float, seed: int | None, show_device: bool,
        as_json: bool, local: bool) -> None:
    """Ask QUESTION (or, without it, chat in a loop)."""
    params = GenerationParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    with open_pocket(profile, model, system, warm=not (local or show_device)) as pocket:
        if show_device:
            _show_device(pocket.runtime, Background(pocket.handle, pocket.memory,
                                                    pocket.runtime.probe), model, as_json)
            return
        pocket.runtime.prepare(model)
        if question is None:
            _repl(pocket, conversation or DEFAULT_CONVERSATION, params)
            return
        _say(pocket, conversation, question, params, not as_json)
        _, outcomes = pocket.maintain()
        if not as_json:
            _report_background(outcomes, quiet=True)
        if as_json:
            result = pocket.last
            finish = result.finish
            notes = result.prompt.notes if result.prompt else []
            emit_json({"answer": result.answer, "conversation": conversation,
                       "model": finish.model if finish else None,
                       "finish_reason": finish.finish_reason if finish else None,
                       "usage": finish.usage if finish else None,
                       "recalled": [r.text for r in (result.prompt.recalled
                                                     if result.prompt else [])],
                       "from_notes": [{"id": n.id, "text": n.text} for n in notes],
                       "notes": result.events, "background": outcomes})


def _repl(pocket: Pocket, name: str, params: GenerationParams,
          read: repl.Reader | None = None) -> None:
    """The conversation loop: questions go to the model, ``/`` commands do not."""
    err_console.print(f"[dim]smallhold chat — conversation {name!r}; /help for commands, "
                      "empty line or Ctrl-D to quit[/]")
    if pocket.runtime.manager is not None:
        pocket.runtime.manager.start_watcher()  # keep-alive, memory pressure and idle preload
    if read is None:
        asked = [t.content for t in pocket.history(name) if t.role == "user"]
        read = repl.reader(asked) if sys.stdin.isatty() else _plain_reader
    settings = repl.Settings(name, params, pocket.model, None)
    while True:
        try:
            line = read("> ")
        except (EOFError, KeyboardInterrupt):
            break
        action = repl.command(line, settings)
        settings = action.settings
        pocket.system = settings.system or pocket.system
        if action.say:
            console.print(action.say, markup=False)
        if action.switch_model:
            try:
                pocket.runtime.prepare(action.switch_model)
                pocket.model = pocket.runtime.resolve_model(action.switch_model)
                settings = replace(settings, model=pocket.model)
                console.print(f"model: {pocket.model}", markup=False)
            except SmallholdError as exc:
                err_console.print(f"[yellow]{exc}[/]", highlight=False)
        if action.save_as:
            try:
                copied = pocket.copy_conversation(settings.conversation, action.save_as)
                console.print(f"saved {copied} turn(s) as {action.save_as!r}", markup=False)
            except SmallholdError as exc:
                err_console.print(f"[yellow]{exc}[/]", highlight=False)
        if action.quit:
            break
        if not action.ask:
            continue
        try:
            _say(pocket, settings.conversation, action.ask, settings.params, True)
        except KeyboardInterrupt:
            err_console.print("\n[dim](answer stopped; what arrived is saved)[/]")
        except SmallholdError as exc:  # a refused turn ends the turn, not the loop
            err_console.print(f"[yellow]{exc}[/]", highlight=False)
        _report_background(pocket.maintain()[1], quiet=True)


def _plain_reader(prompt: str) -> str:
    """Lines from a pipe (a script feeding the loop): no editing to offer."""
    return console.input(prompt)


def _report_background(outcomes: list[Outcome], *, quiet: bool) -> None:
    """Background jobs on stderr; ``quiet`` (inside a chat) shows only failures."""
    for o in outcomes:
        if quiet and o.action != "failed":
            continue
        style = {"ran": "green", "failed": "yellow"}.get(o.action, "dim")
        err_console.print(f"[{style}]background {o.job}: {o.action}[/] [dim]({o.detail})[/]")


def _show_device(runtime: Runtime, background: Background, model: str | None,
                 as_json: bool) -> None:
    if runtime.manager is None:
        raise click.UsageError("--device needs the local llama backend")
    plan = runtime.manager.plan(model)
    state = runtime.probe.read()
    power = decide(state)
    saver = runtime.smaller_model(model)
    jobs = {job: {"last_run": _when(at) if (at := background.last_run(job)) else "never",
                  "deferred_since": _when(at) if (at := background.deferred_since(job))
                  else None} for job in JOBS}
    battery = None if state.battery_percent is None else {
        "percent": state.battery_percent, "charging": state.charging}
    if as_json:
        emit_json({"model": plan.model, "tier": plan.tier, "kv_cache": plan.kv_cache,
                   "n_ctx": plan.n_ctx, "reasons": plan.reasons,
                   "ram": {"total": state.total_ram, "available": state.available_ram},
                   "battery": battery, "power": power, "saver_model": saver,
                   "background": jobs})
        return
    console.print(f"[bold]{plan.model}[/] — {plan.describe()}", highlight=False)
    for reason in plan.reasons:
        console.print(f"  • {reason}")
    console.print(f"RAM {state.available_ram / 2**30:.1f} of {state.total_ram / 2**30:.1f} GiB "
                  f"free; power: [bold]{power.mode}[/] ({power.reason})")
    if saver:
        console.print(f"  • on low battery answers come from {saver}")
    for job, status in jobs.items():
        console.print(f"background {job}: last run {status['last_run']}"
                      + (f", deferred since {status['deferred_since']}"
                         if status["deferred_since"] else ""))


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


@chat.command("list")
@profile_opt
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def list_(profile: str, as_json: bool) -> None:
    """Saved conversations."""
    from smallhold.apps.pocket.conversations import ConversationStore

    with open_home(profile, app=APP) as home:
        found = ConversationStore(home.vault).all()
    if as_json:
        emit_json({"conversations": found})
        return
    table = Table("name", "turns", "started", "title")
    for c in found:
        table.add_row(c.name, str(c.turns), _when(c.created_at), c.title)
    console.print(table if found else "No conversations yet: `smallhold chat \"hello\"`.")


@chat.command()
@profile_opt
@click.argument("name")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True,
              help="How many of the newest turns.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def show(profile: str, name: str, limit: int, as_json: bool) -> None:
    """The newest turns of conversation NAME."""
    from smallhold.apps.pocket.conversations import ConversationStore

    with open_home(profile, app=APP) as home:
        store = ConversationStore(home.vault)
        conversation = store.get(name)
        turns = store.recent(name, limit)
    if as_json:
        emit_json({"conversation": conversation, "turns": turns})
        return
    for t in turns:
        who = "[bold cyan]you[/]" if t.role == "user" else "[bold green]pocket[/]"
        mark = "" if t.complete else " [dim](cut short)[/]"
        console.print(f"{who} [dim]{_when(t.at)}[/]{mark}")
        console.print(t.content, markup=False)


@chat.command()
@profile_opt
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def rm(profile: str, name: str, yes: bool, as_json: bool) -> None:
    """Delete conversation NAME, its turns and what memory kept of it."""
    if not yes and not as_json and sys.stdin.isatty():
        click.confirm(f"Delete conversation {name!r} and everything kept of it?", abort=True)
    with open_pocket(profile) as pocket:
        removed = pocket.forget_conversation(name)
    if as_json:
        emit_json({"removed": name, "turns": removed})
    else:
        console.print(f"Deleted {name!r} ({removed} turns).")


@chat.command()
@profile_opt
@click.option("--force", is_flag=True, help="Run every job now, due or not (power still rules).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def maintain(profile: str, force: bool, as_json: bool) -> None:
    """Run background work now: memory consolidation, and sync if this device is paired.

    Jobs wait for the charger: on battery, warm or critical they are deferred with the reason
    and run the next time pocket is used on mains power.
    """
    with open_pocket(profile) as pocket:
        decision, outcomes = pocket.maintain(force=force)
    if as_json:
        emit_json({"power": decision, "jobs": outcomes})
        return
    if not outcomes:
        console.print("Nothing is due (`--force` runs every job now).")
    _report_background(outcomes, quiet=False)


@chat.command()
@profile_opt
@click.option("-m", "--model", help="Model name (see `smallhold models list`).")
@handle_errors
def gui(profile: str, model: str | None) -> None:
    """Open the pocket app window (Toga; GTK on Linux: `pip install smallhold[gui]`)."""
    try:
        from smallhold.apps.pocket.gui import run_app
    except ImportError as exc:
        raise click.ClickException(f"the app needs Toga ({exc.name} is missing): install "
                                   "it with `bash scripts/setup.sh --gui`.") from None
    with open_pocket(profile, model) as pocket:
        pocket.runtime.prepare(model)
        run_app(lambda: pocket)
