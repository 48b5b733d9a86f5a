"""The Toga app on toga-dummy: conversations, streamed answers, device status, settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from smallhold.apps.pocket.assistant import Pocket
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.device import simulated

MakePocket = Callable[[ScriptedBackend], Pocket]


@pytest.fixture
def app(make_pocket: MakePocket, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.setenv("TOGA_BACKEND", "toga_dummy")
    from smallhold.apps.pocket.gui import PocketApp

    pocket = make_pocket(ScriptedBackend(["Paris is the capital of France."]))
    pocket.runtime.probe = simulated(3, battery=15, charging=False)
    application = PocketApp(lambda: pocket)
    yield application
    application._impl.loop.run_until_complete(asyncio.sleep(0))


def run(app: object, coro: object) -> object:
    return app._impl.loop.run_until_complete(coro)  # type: ignore[attr-defined]


def test_a_streamed_answer_lands_in_the_transcript_and_the_vault(app: object) -> None:
    answer = run(app, app.send("What is the capital of France?"))  # type: ignore[attr-defined]
    assert answer == "Paris is the capital of France."
    text = app.transcript.text  # type: ignore[attr-defined]
    assert text.endswith("pocket: Paris is the capital of France.")
    assert "You: What is the capital of France?" in text
    turns = app.pocket.history("default")  # type: ignore[attr-defined]
    assert [t.role for t in turns] == ["user", "assistant"]
    # at 15 % on battery the background jobs wait for the charger, and the device tab says so
    assert "Background consolidate: deferred" in app.device.text  # type: ignore[attr-defined]


def test_send_button_and_enter_key_ask(app: object) -> None:
    app.message.value = "hello"  # type: ignore[attr-defined]
    app.send_button._impl.simulate_press()  # type: ignore[attr-defined]
    run(app, asyncio.sleep(0.3))
    for _ in range(50):
        if not app.busy:  # type: ignore[attr-defined]
            break
        run(app, asyncio.sleep(0.05))
    assert app.message.value == ""  # type: ignore[attr-defined]
    assert "pocket: Paris" in app.transcript.text  # type: ignore[attr-defined]


def test_new_conversation_and_switching(app: object) -> None:
    app.new_name.value = "trip"  # type: ignore[attr-defined]
    app._on_new(None)  # type: ignore[attr-defined]
    run(app, app.send("plan it"))  # type: ignore[attr-defined]
    names = [item.value for item in app.conversations.items]  # type: ignore[attr-defined]
    assert names == ["trip"]  # "default" was never used, so it is not kept
    app.show_conversation("default")  # type: ignore[attr-defined]
    assert app.transcript.text == ""  # type: ignore[attr-defined]
    app.new_name.value = "bad/name"  # type: ignore[attr-defined]
    app._on_new(None)  # type: ignore[attr-defined]
    assert "not a conversation name" in app.status.text  # type: ignore[attr-defined]


def test_device_tab_and_settings(app: object) -> None:
    device = app.device.text  # type: ignore[attr-defined]
    assert "Battery: 15 %" in device and "saver" in device and "scripted" in device
    app.max_tokens.value = 64  # type: ignore[attr-defined]
    app._on_settings(None)  # type: ignore[attr-defined]
    assert app.params.max_tokens == 64  # type: ignore[attr-defined]
