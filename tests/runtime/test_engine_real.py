"""The engine on the real bundled SmolLM2-135M-Instruct: streaming, KV reuse, limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from smallhold.errors import ContextOverflowError, GenerationError
from smallhold.runtime.assets import ensure_model
from smallhold.runtime.engine import LlamaEngine, LoadOptions
from smallhold.runtime.registry import get_model
from smallhold.runtime.types import CancelToken, Delta, Finish, GenerationParams, Message, collect

pytestmark = pytest.mark.model
GREEDY = GenerationParams(max_tokens=24, temperature=0.0, seed=7)


@pytest.fixture(scope="module")
def engine(shared_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[LlamaEngine]:
    spec = get_model("smollm2-135m-instruct")
    path = ensure_model(spec, shared_models_dir)
    eng = LlamaEngine(spec, path, LoadOptions(n_ctx=1024, n_threads=2,
                                              spill_dir=tmp_path_factory.mktemp("kv")))
    yield eng
    eng.close()


def user(text: str) -> Message:
    return Message(role="user", content=text)


def test_template_comes_from_the_file(engine: LlamaEngine) -> None:
    prompt = engine.render([user("Hello")])
    assert "<|im_start|>user\nHello<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_answers_and_streams(engine: LlamaEngine) -> None:
    events = list(engine.chat([user("What is the capital of France? Answer in one word.")], GREEDY))
    text = "".join(e.text for e in events if isinstance(e, Delta))
    assert "Paris" in text
    assert isinstance(events[-1], Finish) and events[-1].usage.completion_tokens > 0


def test_greedy_and_seeded_sampling_are_repeatable(engine: LlamaEngine) -> None:
    # Two fresh contexts: a cached prefix changes llama.cpp's batch shapes and, with them, the
    # last bits of the logits, so repeatability is only promised for the same cache state.
    q = [user("Name three colours.")]
    warm = GenerationParams(max_tokens=24, temperature=1.0, seed=1)
    runs = []
    for _ in range(2):
        fresh = LlamaEngine(engine.spec, engine.path, LoadOptions(n_ctx=512, n_threads=2))
        try:
            runs.append((collect(fresh.chat(q, GREEDY)).text, collect(fresh.chat(
                q, warm, session="other")).text))
        finally:
            fresh.close()
    assert runs[0] == runs[1]


def test_interleaved_sessions_reuse_their_own_state(engine: LlamaEngine) -> None:
    a = [Message(role="system", content="You answer about geography."), user("Capital of Spain?")]
    b = [Message(role="system", content="You answer about cooking."), user("How to boil an egg?")]
    first_a = collect(engine.chat(a, GREEDY, session="A"))
    collect(engine.chat(b, GREEDY, session="B"))
    a2 = [*a, Message(role="assistant", content=first_a.text), user("And of Portugal?")]
    second_a = collect(engine.chat(a2, GREEDY, session="A"))
    prompt_a1 = len(engine.tokenize(engine.render(a)))
    assert second_a.usage.cached_tokens >= prompt_a1, "A's history was not re-prefilled"


def test_spilled_state_is_restored_from_disk(engine: LlamaEngine) -> None:
    budget = engine.states.budget_bytes
    engine.states.budget_bytes = 0
    try:
        c = [user("Tell me about owls.")]
        reply = collect(engine.chat(c, GREEDY, session="C"))
        collect(engine.chat([user("Tell me about cats.")], GREEDY, session="D"))
        c2 = [*c, Message(role="assistant", content=reply.text), user("Where do they live?")]
        again = collect(engine.chat(c2, GREEDY, session="C"))
        assert again.usage.cached_tokens >= len(engine.tokenize(engine.render(c)))
        assert engine.states.disk_hits >= 1
    finally:
        engine.states.budget_bytes = budget


def test_stop_sequences_and_max_tokens(engine: LlamaEngine) -> None:
    params = GenerationParams(max_tokens=40, temperature=0.0, stop=["Paris"])
    question = user("What is the capital of France? Answer in one word.")
    done = collect(engine.chat([question], params))
    assert "Paris" not in done.text and done.finish_reason == "stop"
    short = collect(engine.chat([user("Write a long story.")],
                                GenerationParams(max_tokens=5, temperature=0.0)))
    assert short.finish_reason == "length" and short.usage.completion_tokens == 5


def test_cancel_stops_generation(engine: LlamaEngine) -> None:
    token = CancelToken()
    stream = engine.chat([user("Count from one to one hundred.")],
                         GenerationParams(max_tokens=200, temperature=0.0), cancel=token)
    next(stream)
    token.cancel()
    rest = list(stream)
    assert isinstance(rest[-1], Finish) and rest[-1].finish_reason == "cancelled"
    assert rest[-1].usage.completion_tokens < 10


def test_json_schema_constrains_a_tiny_model(engine: LlamaEngine) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"},
              "population": {"type": "integer"}}, "required": ["city", "population"]}
    done = collect(engine.chat([user("Describe Paris as JSON.")],
                               GenerationParams(max_tokens=60, temperature=0.0,
                                                json_schema=schema)))
    data = json.loads(done.text)
    assert isinstance(data["city"], str) and isinstance(data["population"], int)


def test_prompt_longer_than_context(engine: LlamaEngine) -> None:
    with pytest.raises(ContextOverflowError, match="1024-token context"):
        engine.chat([user("word " * 3000)], GREEDY)


def test_base_model_refuses_chat(shared_models_dir: Path) -> None:
    spec = get_model("gemma-3-270m")
    path = ensure_model(spec, shared_models_dir)
    eng = LlamaEngine(spec, path, LoadOptions(n_ctx=256, n_threads=2))
    try:
        with pytest.raises(GenerationError, match="base model"):
            eng.render([user("hi")])
        text = collect(eng.complete("The capital of France is",
                                    GenerationParams(max_tokens=4, temperature=0.0))).text
        assert text.strip()
    finally:
        eng.close()


def test_a_stream_kept_alive_after_finish_does_not_hold_the_model(engine: LlamaEngine) -> None:
    import threading

    first = engine.chat([user("Say yes.")], GREEDY)
    for event in first:
        if isinstance(event, Finish):
            break  # the generator stays suspended right after its Finish, still referenced
    done: list[str] = []
    worker = threading.Thread(
        target=lambda: done.append(collect(engine.chat([user("Say no.")], GREEDY)).text),
        daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert done, "a finished but unclosed stream still held the engine lock"
    del first
