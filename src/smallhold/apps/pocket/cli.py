"""``smallhold chat``: ask the local model, one shot or in a conversation loop."""

from __future__ import annotations

import sys

import click

from smallhold.console import byte_progress, console, emit_json, err_console, handle_errors
from smallhold.runtime import assets
from smallhold.runtime.registry import get_model
from smallhold.runtime.runtime import Runtime
from smallhold.runtime.types import Delta, Finish, GenerationParams, Message

SYSTEM = "You are a helpful assistant running privately on the user's own device. Be concise."


def _prepare(runtime: Runtime, model: str | None) -> None:
    """Assemble the model file on first use with a progress bar, before any output."""
    if runtime.backend.name != "llama":
        return
    spec = get_model(runtime.resolve_model(model))
    with byte_progress(f"preparing {spec.name} (first run only)") as progress:
        assets.ensure_model(spec, runtime.paths.models_dir, progress)


def _answer(runtime: Runtime, history: list[Message], params: GenerationParams,
            model: str | None, session: str | None, stream_out: bool) -> tuple[str, Finish]:
    parts: list[str] = []
    finish: Finish | None = None
    for event in runtime.stream(history, model=model, params=params, session=session, app="pocket"):
        if isinstance(event, Delta):
            parts.append(event.text)
            if stream_out:
                sys.stdout.write(event.text)
                sys.stdout.flush()
        else:
            finish = event
    assert finish is not None
    if stream_out:
        sys.stdout.write("\n")
    return "".join(parts), finish


@click.command()
@click.argument("question", required=False)
@click.option("-m", "--model", help="Model name (see `smallhold models list`).")
@click.option("--system", default=SYSTEM, show_default=False, help="System prompt.")
@click.option("--max-tokens", default=512, show_default=True, type=click.IntRange(1))
@click.option("--temperature", default=0.7, show_default=True, type=click.FloatRange(0, 2))
@click.option("--seed", type=int, help="Fix the sampling seed for repeatable answers.")
@click.option("--device", "show_device", is_flag=True, help="Show the model/tier plan and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer and usage as JSON.")
@handle_errors
def chat(question: str | None, model: str | None, system: str, max_tokens: int,
         temperature: float, seed: int | None, show_device: bool, as_json: bool) -> None:
    """Chat with the local model. With QUESTION, print only the answer and exit."""
    runtime = Runtime.open(app="pocket")
    params = GenerationParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    try:
        if show_device:
            _show_device(runtime, model, as_json)
            return
        _prepare(runtime, model)
        history = [Message(role="system", content=system)]
        if question is not None:
            history.append(Message(role="user", content=question))
            text, finish = _answer(runtime, history, params, model, None, not as_json)
            if as_json:
                emit_json({"answer": text, "model": finish.model,
                           "finish_reason": finish.finish_reason, "usage": finish.usage})
            return
        _repl(runtime, history, params, model)
    finally:
        runtime.close()


def _repl(runtime: Runtime, history: list[Message], params: GenerationParams,
          model: str | None) -> None:
    err_console.print("[dim]smallhold chat — empty line or Ctrl-D to quit[/]")
    if runtime.manager is not None:
        runtime.manager.start_watcher()  # keep-alive, memory pressure and idle preload
    session = "repl"
    while True:
        try:
            line = console.input("[bold cyan]> [/]")
        except (EOFError, KeyboardInterrupt):
            break
        if not line.strip():
            break
        history.append(Message(role="user", content=line))
        text, _ = _answer(runtime, history, params, model, session, True)
        history.append(Message(role="assistant", content=text))


def _show_device(runtime: Runtime, model: str | None, as_json: bool) -> None:
    if runtime.manager is None:
        raise click.UsageError("--device needs the local llama backend")
    plan = runtime.manager.plan(model)
    if as_json:
        emit_json({"model": plan.model, "tier": plan.tier, "kv_cache": plan.kv_cache,
                   "n_ctx": plan.n_ctx, "reasons": plan.reasons})
        return
    console.print(f"[bold]{plan.model}[/] — {plan.tier}, KV {plan.kv_cache}, ctx {plan.n_ctx:,}")
    for reason in plan.reasons:
        console.print(f"  • {reason}")
