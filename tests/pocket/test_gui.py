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


class SlowScripted(ScriptedBackend):
    """A reply that takes a while: a pause before the first word and between words."""

    def stream_chat(self, request):  # type: ignore[no-untyped-def]
        import time

        time.sleep(0.4)  # the model loading, the prompt being read
        for event in super().stream_chat(request):
            time.sleep(0.02)
            yield event


@pytest.fixture
def slow_app(make_pocket: MakePocket, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.setenv("TOGA_BACKEND", "toga_dummy")
    from smallhold.apps.pocket.gui import PocketApp

    pocket = make_pocket(SlowScripted([" ".join(f"word{i}" for i in range(200))]))
    application = PocketApp(lambda: pocket)
    yield application
    application._impl.loop.run_until_complete(asyncio.sleep(0))


def test_the_wait_shows_and_stop_keeps_what_arrived(slow_app: object) -> None:
    app = slow_app
    task = app._impl.loop.create_task(app.send("count"))  # type: ignore[attr-defined]
    run(app, asyncio.sleep(0.2))
    assert app.status.text.startswith("thinking…")  # type: ignore[attr-defined]
    assert app.stop_button.enabled and not app.send_button.enabled  # type: ignore[attr-defined]
    for _ in range(100):  # until some of the answer is on screen
        run(app, asyncio.sleep(0.02))
        if "word3" in app.transcript.text:  # type: ignore[attr-defined]
            break
    app.stop_button._impl.simulate_press()  # type: ignore[attr-defined]
    answer = run(app, task)
    assert "word3" in answer and "word199" not in answer  # type: ignore[operator]
    assert app.status.text.startswith("stopped")  # type: ignore[attr-defined]
    assert not app.stop_button.enabled  # type: ignore[attr-defined]
    [_, saved] = app.pocket.history("default")  # type: ignore[attr-defined]
    assert saved.role == "assistant" and not saved.complete  # kept, marked incomplete


def test_the_model_picker_switches_the_model(app: object) -> None:
    first = app.pocket.runtime.resolve_model(None)  # type: ignore[attr-defined]
    assert app.models.value == first  # type: ignore[attr-defined]
    app.models.items = [first, "other"]  # type: ignore[attr-defined]
    app.models.value = "other"  # type: ignore[attr-defined]
    app._on_model(app.models)  # type: ignore[attr-defined]
    assert app.pocket.model == "other"  # type: ignore[attr-defined]
    assert "other" in app.device.text  # type: ignore[attr-defined]
