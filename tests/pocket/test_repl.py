"""The chat loop: slash commands never reach the model; arrows recall earlier questions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from conftest import MakePocket
from smallhold.apps.pocket import cli as pocket_cli
from smallhold.apps.pocket import repl
from smallhold.runtime import GenerationParams
from smallhold.runtime.backends.scripted import ScriptedBackend

SETTINGS = repl.Settings("default", GenerationParams(temperature=0.7, max_tokens=512))
UP = "\x1b[A"


def test_questions_go_to_the_model_and_commands_do_not() -> None:
    assert repl.command("how are you?", SETTINGS).ask == "how are you?"
    helped = repl.command("/help", SETTINGS)
    assert not helped.ask and "/bye" in helped.say and "/set" in helped.say
    assert repl.command("/bye", SETTINGS).quit and repl.command("", SETTINGS).quit
    unknown = repl.command("/frobnicate", SETTINGS)
    assert not unknown.ask and "unknown command /frobnicate" in unknown.say
    assert repl.command("//etc/hosts is what?", SETTINGS).ask == "/etc/hosts is what?"


def test_set_changes_the_settings_within_their_bounds() -> None:
    cooler = repl.command("/set temperature 0.1", SETTINGS).settings
    assert cooler.params.temperature == 0.1 and SETTINGS.params.temperature == 0.7
    assert repl.command("/set max-tokens 64", SETTINGS).settings.params.max_tokens == 64
    assert repl.command("/set seed 3", SETTINGS).settings.params.seed == 3
    bad = repl.command("/set temperature hot", SETTINGS)
    assert bad.settings == SETTINGS and "not valid" in bad.say
    too_hot = repl.command("/set temperature 9", SETTINGS)
    assert too_hot.settings == SETTINGS and "not valid" in too_hot.say
    system = repl.command('/set system "Answer in French."', SETTINGS).settings
    assert system.system == "Answer in French."
    assert "temperature 0.7" in repl.command("/set", SETTINGS).say


def test_clear_moves_to_a_fresh_conversation_and_keeps_the_old_one() -> None:
    cleared = repl.command("/clear", SETTINGS)
    assert cleared.settings.conversation == "default-2" and "kept" in cleared.say
    assert repl.command("/clear", cleared.settings).settings.conversation == "default-3"
    assert repl.command("/model", SETTINGS).say.startswith("model:")
    assert repl.command("/model smollm2", SETTINGS).switch_model == "smollm2"
    assert repl.command("/save trip", SETTINGS).save_as == "trip"


@contextmanager
def typed(keys: list[str], history: tuple[str, ...] = ()) -> Iterator[repl.Reader]:
    """A line reader fed ``keys`` as if typed at a terminal, one entry per prompt (typed
    ahead all at once, the arrows would come before prompt_toolkit has loaded history)."""
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        inner = repl.reader(history, input=pipe, output=DummyOutput())
        pending = list(keys)

        def read(prompt: str) -> str:
            if pending:
                pipe.send_text(pending.pop(0))
            return inner(prompt)
        yield read


def test_the_loop_through_a_terminal(make_pocket: MakePocket,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Typed at a prompt_toolkit prompt: a question, /help, the Up arrow (which brings the
    question back), a /save, then /bye. Only the two questions reach the model."""
    backend = ScriptedBackend(reply=lambda request: "hi")
    pocket = make_pocket(backend)
    keys = ["hello there\r", "/help\r", UP + UP + "\r", "/save kept\r", "/bye\r"]
    with typed(keys) as read:
        pocket_cli._repl(pocket, "default", GenerationParams(max_tokens=16), read=read)
    out = capsys.readouterr().out
    asked = [t.content for t in pocket.history("default") if t.role == "user"]
    assert asked == ["hello there", "hello there"]  # the arrow recalled it; /help not sent
    assert len(backend.requests) == 2
    assert "/bye" in out and "saved 4 turn(s) as 'kept'" in out
    assert next(t.content for t in pocket.history("kept")) == "hello there"
    with typed(["/save kept\r", UP * 3 + "\r", "/bye\r"], history=("older",)) as read:
        pocket_cli._repl(pocket, "default", GenerationParams(max_tokens=16), read=read)
    assert "exists already" in capsys.readouterr().err  # a second copy under that name
    assert [t.content for t in pocket.history("default") if t.role == "user"][-1] == "older"
