"""The pocket assistant on the scripted backend: persistence, long-range recall, bad input."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from smallhold.apps.pocket.assistant import Pocket, chunk_kind
from smallhold.errors import ContextOverflowError, GenerationError, RecordValidationError
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.types import ChatRequest, GenerationParams

MakePocket = Callable[[ScriptedBackend], Pocket]
TOPICS = ["the garden needs new tomato seedlings and compost",
          "the train to the conference leaves early on monday",
          "a recipe for lentil soup with cumin and lemon",
          "the guitar strings keep going out of tune",
          "the budget spreadsheet for the holiday trip",
          "the dentist appointment moved to next week",
          "a podcast about volcanoes and plate tectonics",
          "the printer at the office jams on thick paper"]


def answer_from_prompt(request: ChatRequest) -> str:
    """Answers with the locker code if, and only if, the prompt it was given contains it."""
    text = " ".join(m.content for m in request.messages)
    return "It is 4817." if "4817" in text else "I do not know."


def chat_turns(pocket: Pocket, name: str, n: int, seed: int = 3) -> None:
    """``n`` generated turns on rotating topics, written as a long past conversation."""
    rng = random.Random(seed)
    for i in range(n // 2):
        topic = TOPICS[(i // 6) % len(TOPICS)]
        pocket.store.add_turn(name, "user", f"Tell me more about {topic}. "
                              f"Detail number {rng.randint(1, 999)}.")
        pocket.store.add_turn(name, "assistant", f"Sure, about {topic}: noted point {i}.")


def test_turns_persist_and_the_answer_streams(make_pocket: MakePocket) -> None:
    pocket = make_pocket(ScriptedBackend(["Hello there, friend."]))
    events = list(pocket.ask("morning", "hi!"))
    assert "".join(getattr(e, "text", "") for e in events) == "Hello there, friend."
    turns = pocket.history("morning")
    assert [(t.role, t.content, t.complete) for t in turns] == [
        ("user", "hi!", True), ("assistant", "Hello there, friend.", True)]
    assert pocket.store.all()[0].title == "hi!"


def test_an_early_fact_is_recalled_thousands_of_turns_later(make_pocket: MakePocket) -> None:
    backend = ScriptedBackend(reply=answer_from_prompt, context=1024)
    pocket = make_pocket(backend)
    pocket.store.add_turn("long", "user", "Please remember: my locker code is 4817.")
    pocket.store.add_turn("long", "assistant", "Got it, I will remember your locker code.")
    chat_turns(pocket, "long", 3000)
    params = GenerationParams(max_tokens=32)
    list(pocket.ask("long", "What is my locker code again?", params))
    result = pocket.last
    assert result.answer == "It is 4817."
    assert result.prompt is not None
    assert any("4817" in r.text for r in result.prompt.recalled)
    assert pocket.memory.list(kind=chunk_kind("long"), limit=10_000)  # chunks in vector memory
    # the same budget with a plain sliding window has long lost it
    plain = " ".join(m.content for m in result.prompt.messages[:-1])
    assert "4817" not in plain


def test_a_fact_from_the_middle_of_a_long_conversation_is_recalled(
        make_pocket: MakePocket) -> None:
    """Chunk turn numbers are conversation-wide, the prompt's window only the recent part."""
    pocket = make_pocket(ScriptedBackend(reply=answer_from_prompt, context=1024))
    chat_turns(pocket, "long", 1500, seed=1)
    pocket.store.add_turn("long", "user", "Please remember: my locker code is 4817.")
    pocket.store.add_turn("long", "assistant", "Got it, I will remember your locker code.")
    chat_turns(pocket, "long", 1500, seed=2)
    list(pocket.ask("long", "What is my locker code again?", GenerationParams(max_tokens=32)))
    assert pocket.last.answer == "It is 4817."


def test_bad_input_loses_no_turn(make_pocket: MakePocket) -> None:
    pocket = make_pocket(ScriptedBackend(["ok"], context=256))
    with pytest.raises(RecordValidationError, match="empty"):
        list(pocket.ask("c", "   "))
    with pytest.raises(ContextOverflowError, match="Shorten"):
        list(pocket.ask("c", "word " * 400))
    with pytest.raises(RecordValidationError, match="not a conversation name"):
        list(pocket.ask("../etc", "hi"))
    assert pocket.history("c") == []  # nothing half-saved by refused input

    def dies(request: ChatRequest) -> str:
        raise GenerationError("the device ran out of memory mid-answer; close other apps.")

    pocket = make_pocket(ScriptedBackend(reply=dies))
    with pytest.raises(GenerationError):
        list(pocket.ask("c", "are you there?"))
    assert [t.content for t in pocket.history("c")] == ["are you there?"]  # the question kept


def test_rm_deletes_turns_and_chunks(make_pocket: MakePocket) -> None:
    pocket = make_pocket(ScriptedBackend(["ok"], context=256))
    chat_turns(pocket, "old", 200)
    list(pocket.ask("old", "hello again"))
    assert pocket.memory.list(kind=chunk_kind("old"))
    assert pocket.forget_conversation("old") == 202
    assert pocket.store.all() == [] and pocket.memory.list(kind=chunk_kind("old")) == []


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Any connection but loopback fails the test (and is recorded): pocket is offline."""
    import socket

    attempts: list[object] = []
    real_connect = socket.socket.connect

    def guarded(sock: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else str(address)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in (
                "127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError(f"network blocked by the test: {address}")
        real_connect(sock, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


@pytest.mark.model
def test_real_model_recalls_an_early_fact_from_a_long_conversation(
        vault: object, settings: object, paths: object, no_network: list[object]) -> None:
    """Bundled MiniLM for chunks and recall, Qwen2.5-Coder-0.5B answering, 600 turns later,
    with every non-loopback connection refused."""
    from smallhold.runtime.runtime import Runtime

    settings.runtime.n_ctx = 2048  # type: ignore[attr-defined]
    runtime = Runtime(settings, paths, app="pocket")  # type: ignore[arg-type]
    try:
        pocket = Pocket(runtime, vault, runtime.embedder,  # type: ignore[arg-type]
                        model="qwen2.5-coder-0.5b-instruct")
        pocket.store.add_turn("long", "user", "Please remember this: my locker code is 4817.")
        pocket.store.add_turn("long", "assistant", "Noted: your locker code is 4817.")
        chat_turns(pocket, "long", 600)
        list(pocket.ask("long", "What is my locker code? Reply with just the number.",
                        GenerationParams(max_tokens=16, temperature=0.0)))
        assert "4817" in pocket.last.answer
        assert pocket.last.prompt is not None
        assert "4817" not in " ".join(m.content for m in pocket.last.prompt.messages[:-1])
        assert no_network == []
    finally:
        runtime.close()
