"""Prompt-lookup decoding: the draft/cost logic alone, then on the real SmolLM2-135M-Instruct
against plain greedy decoding (same file, same options, only ``speculative`` differs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from smallhold.runtime.assets import ensure_model
from smallhold.runtime.engine import LlamaEngine, LoadOptions
from smallhold.runtime.registry import get_model
from smallhold.runtime.speculative import BatchProfile, NgramIndex, PromptLookup, choose_draft
from smallhold.runtime.types import (
    CancelToken,
    Completion,
    Delta,
    Finish,
    GenerationParams,
    Message,
    collect,
)

GREEDY = GenerationParams(max_tokens=160, temperature=0.0)

BUGGY = '''def parse_config(lines):
    """Parse key=value lines into a dict, skipping comments and blank lines."""
    result = {}
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ValueError(f"line {number}: expected key=value")
        key, value = line.split("=", 1)
        key = key.strip()
        value = value.strip()
        if value.lower() in ("true", "yes"):
            value = True
        elif value.lower() in ("false", "no"):
            value = False
        elif value.isdigit():
            value = int(value)
        result[key] = value
    return reslt
'''
EDIT = [Message(role="user", content=(
    "Fix the bug in this function and return the whole corrected function.\n\n```python\n"
    + BUGGY + "```"))]
CHAT = [Message(role="user", content="Write a short story about a lighthouse keeper and a storm.")]


# -- the logic alone --------------------------------------------------------------------


def test_ngram_index_prefers_the_longest_then_the_latest_match() -> None:
    index = NgramIndex([1, 2, 3, 9, 2, 3, 7, 5, 5, 2, 3])
    # the 3-gram (5, 2, 3) never occurred before; (2, 3) did, last followed by 7
    assert index.draft(3) == (2, [7, 5, 5])
    index.extend([7, 5])
    assert index.draft(2) == (3, [5, 2])  # (3, 7, 5) earlier continued with 5, 2
    assert NgramIndex([4, 4]).draft(5) == (1, [4])  # continuation stops at the history's end
    assert NgramIndex([1, 2, 3]).draft(4) == (0, [])
    assert index.draft(0) == (0, [])


def test_drafts_only_when_batches_are_cheap_enough() -> None:
    linear = BatchProfile(exact_upto=17, seconds={n: 0.01 * n for n in range(1, 18)})
    cheap = BatchProfile(exact_upto=17, seconds={n: 0.01 + 0.001 * n for n in range(1, 18)})
    assert choose_draft(0.99, 16, linear) == 0  # n tokens cost n steps: nothing to gain
    assert choose_draft(0.99, 16, cheap) == 16
    assert 4 < choose_draft(0.9, 16, cheap) < 16  # a long draft is likely cut short
    assert choose_draft(0.9, 4, cheap) == 4
    assert choose_draft(0.05, 16, cheap) == 0


def test_batch_costs_are_kept_monotone() -> None:
    noisy = BatchProfile(exact_upto=8, seconds={1: 0.02, 2: 0.09, 4: 0.05, 8: 0.08})
    assert noisy.cost(2) == pytest.approx(0.05)  # a spike at 2 cannot cost more than 4
    assert noisy.cost(3) == pytest.approx(0.05)
    assert noisy.cost(16) == pytest.approx(0.16)  # beyond the table: linear in n
    assert BatchProfile(exact_upto=1, seconds={1: 0.02, 2: 0.01}).cost(2) == pytest.approx(0.02)


# -- on the real model ------------------------------------------------------------------


def _engine(models_dir: Path, speculative: str, kv_cache: str = "q8_0") -> LlamaEngine:
    # q8_0 KV (flash attention, as the planner picks): there llama.cpp's batched logits are
    # bit-identical to one-token decoding for this model, so drafts can be verified exactly.
    spec = get_model("smollm2-135m-instruct")
    path = ensure_model(spec, models_dir)
    return LlamaEngine(spec, path, LoadOptions(n_ctx=2048, n_threads=2, kv_cache=kv_cache,
                                               speculative=speculative))


@pytest.fixture(scope="module")
def plain(shared_models_dir: Path) -> Iterator[LlamaEngine]:
    eng = _engine(shared_models_dir, "off")
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def lookup(shared_models_dir: Path) -> Iterator[LlamaEngine]:
    """Verifies every draft it finds, so the comparisons exercise as many batches (and
    rejections) as possible, whatever the timings on a busy machine would advise."""
    eng = _engine(shared_models_dir, "prompt-lookup")
    eng._lookup = PromptLookup(eng.llm, always_draft=True)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def adaptive(shared_models_dir: Path) -> Iterator[LlamaEngine]:
    eng = _engine(shared_models_dir, "prompt-lookup")
    yield eng
    eng.close()


def _cached_tokens(engine: LlamaEngine) -> list[int]:
    return [int(t) for t in engine.llm.input_ids[: engine.llm.n_tokens]]


def _both(plain: LlamaEngine, lookup: LlamaEngine, messages: list[Message],
          params: GenerationParams, session: str) -> tuple[Completion, Completion]:
    a = collect(plain.chat(messages, params, session=session))
    b = collect(lookup.chat(messages, params, session=session))
    assert b.text == a.text
    assert (b.finish_reason, b.usage.completion_tokens) == (a.finish_reason,
                                                            a.usage.completion_tokens)
    # the same tokens, and the same cached positions, as one-token decoding leaves behind
    assert _cached_tokens(lookup) == _cached_tokens(plain)
    return a, b


def _accepted(completion: Completion) -> int:
    assert completion.speculative is not None
    assert completion.speculative.startswith("prompt-lookup:accepted=")
    accepted, drafted = completion.speculative.split("=", 1)[1].split("/")
    assert 0 <= int(accepted) <= int(drafted)
    return int(accepted)


@pytest.mark.model
def test_probe_finds_exact_batches(lookup: LlamaEngine) -> None:
    profile = lookup._prompt_lookup().profile
    assert profile is not None
    assert profile.exact_upto >= 8, f"batched logits differ from one-token ones: {profile}"
    assert set(profile.seconds) >= set(range(1, profile.exact_upto + 1))


@pytest.mark.model
def test_edit_prompt_is_token_for_token_plain_greedy(plain: LlamaEngine,
                                                     lookup: LlamaEngine) -> None:
    a, b = _both(plain, lookup, EDIT, GREEDY, session="edit")
    assert a.speculative is None
    assert _accepted(b) > 20, "the edit prompt should have had drafts accepted"
    assert "def parse_config" in a.text


@pytest.mark.model
def test_chat_prompt_is_token_for_token_plain_greedy(plain: LlamaEngine,
                                                     lookup: LlamaEngine) -> None:
    _, b = _both(plain, lookup, CHAT, GREEDY, session="chat")
    _accepted(b)


@pytest.mark.model
def test_cost_driven_drafting_is_plain_greedy_too(plain: LlamaEngine,
                                                  adaptive: LlamaEngine) -> None:
    for name, messages in (("edit", EDIT), ("chat", CHAT)):
        _, b = _both(plain, adaptive, messages, GREEDY, session=f"adaptive-{name}")
        _accepted(b)


@pytest.mark.model
def test_max_tokens_is_exact(plain: LlamaEngine, lookup: LlamaEngine) -> None:
    for n in (1, 2, 37):
        _, b = _both(plain, lookup, EDIT, GREEDY.model_copy(update={"max_tokens": n}),
                     session=f"max{n}")
        assert (b.finish_reason, b.usage.completion_tokens) == ("length", n)


@pytest.mark.model
def test_stop_strings_are_honoured(plain: LlamaEngine, lookup: LlamaEngine) -> None:
    full = collect(plain.chat(EDIT, GREEDY, session="stop-probe")).text
    lines = [line for line in full.splitlines() if len(line.strip()) > 6]
    assert len(lines) > 6, full
    stop = lines[6].strip()[:6]  # a stop string that first appears deep in a copied region
    params = GREEDY.model_copy(update={"stop": ["NEVER-THERE", stop]})
    a, b = _both(plain, lookup, EDIT, params, session="stop")
    assert b.finish_reason == "stop"
    assert stop not in b.text and b.text == full[: full.find(stop)]
    # a stop string split across deltas is held back, never streamed
    deltas = [e.text for e in lookup.chat(EDIT, params, session="stop2") if isinstance(e, Delta)]
    assert "".join(deltas) == a.text


@pytest.mark.model
def test_follow_up_turn_matches_a_fresh_engine(shared_models_dir: Path, lookup: LlamaEngine
                                               ) -> None:
    first = collect(lookup.chat(EDIT, GREEDY, session="follow"))
    history = [*EDIT, Message(role="assistant", content=first.text),
               Message(role="user", content="Now add a docstring example and return it again.")]
    again = collect(lookup.chat(history, GREEDY, session="follow"))
    assert again.usage.cached_tokens > len(lookup.tokenize(lookup.render(EDIT)))
    fresh = _engine(shared_models_dir, "off")
    try:
        expected = collect(fresh.chat(history, GREEDY, session="follow"))
    finally:
        fresh.close()
    assert again.text == expected.text


@pytest.mark.model
def test_saved_states_survive_interleaved_sessions(plain: LlamaEngine,
                                                   lookup: LlamaEngine) -> None:
    other = [Message(role="user", content="List five fruits, one per line.")]
    first = {}
    for name, messages in (("ia", EDIT), ("ib", other)):
        first[name], _ = _both(plain, lookup, messages, GREEDY, session=name)
    follow = [*EDIT, Message(role="assistant", content=first["ia"].text),
              Message(role="user", content="Thanks. Repeat only its first line.")]
    a, b = _both(plain, lookup, follow, GREEDY, session="ia")
    assert b.usage.cached_tokens == a.usage.cached_tokens > 0


@pytest.mark.model
def test_cancel_stops_and_leaves_a_usable_state(plain: LlamaEngine, lookup: LlamaEngine) -> None:
    cancel = CancelToken()
    events = []
    for event in lookup.chat(EDIT, GREEDY, session="cancel", cancel=cancel):
        events.append(event)
        if isinstance(event, Delta) and len(events) == 3:
            cancel.cancel()
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.finish_reason == "cancelled"
    assert finish.usage.completion_tokens < GREEDY.max_tokens
    prompt = len(lookup.tokenize(lookup.render(EDIT)))
    assert lookup.llm.n_tokens <= prompt + finish.usage.completion_tokens
    _both(plain, lookup, EDIT, GREEDY, session="cancel")


@pytest.mark.model
def test_sampling_and_grammars_take_the_plain_path(lookup: LlamaEngine) -> None:
    warm = collect(lookup.chat(CHAT, GenerationParams(max_tokens=8, temperature=0.8, seed=3)))
    assert warm.speculative is None
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    shaped = collect(lookup.chat(EDIT, GREEDY.model_copy(update={"json_schema": schema,
                                                                 "max_tokens": 12})))
    assert shaped.speculative is None


@pytest.mark.model
def test_inexact_batches_fall_back_to_plain(plain: LlamaEngine, lookup: LlamaEngine) -> None:
    decoder = lookup._prompt_lookup()
    saved = decoder.profile
    decoder.profile = BatchProfile(exact_upto=1, seconds={1: 0.01})  # as with an f16 KV cache
    try:
        a = collect(plain.chat(CHAT, GREEDY, session="inexact"))
        b = collect(lookup.chat(CHAT, GREEDY, session="inexact"))
    finally:
        decoder.profile = saved
    assert b.speculative == "prompt-lookup:unavailable"
    assert b.text == a.text
