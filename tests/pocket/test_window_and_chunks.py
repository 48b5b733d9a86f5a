"""Prompt assembly and topic chunking: pure functions, no model, no vault."""

from __future__ import annotations

import numpy as np
import pytest

from smallhold.apps.pocket.chunking import Piece, boundaries, split_sentences, topic_chunks
from smallhold.apps.pocket.window import Recalled, build_prompt
from smallhold.errors import ContextOverflowError
from smallhold.runtime.types import Message


def words(text: str) -> int:
    return len(text.split())


def test_split_sentences() -> None:
    assert split_sentences("Hi there. How are you?\nFine!  ok") == [
        "Hi there.", "How are you?", "Fine!", "ok"]


def test_boundaries_fall_where_neighbours_stop_resembling_each_other() -> None:
    a, b = np.eye(4, dtype=np.float32)[0], np.eye(4, dtype=np.float32)[1]
    vectors = np.stack([a, a * 0.9 + b * 0.1, a, b, b, b * 0.95 + a * 0.05])
    assert boundaries(vectors) == [3]
    pieces = [Piece(f"sentence {i}.", i // 2) for i in range(6)]
    chunks = topic_chunks(pieces, vectors)
    assert [(c.first_turn, c.last_turn) for c in chunks] == [(0, 1), (1, 2)]
    assert all(abs(float(np.linalg.norm(c.vector)) - 1) < 1e-5 for c in chunks)
    long = topic_chunks([Piece("x" * 400, 0)] * 3, np.stack([a, a, a]), max_chars=700)
    assert len(long) == 3  # the size limit cuts even inside one topic


def test_system_and_question_always_stay_and_old_turns_go_first() -> None:
    turns = [Message(role="user" if i % 2 == 0 else "assistant", content=f"turn {i} " * 5)
             for i in range(40)]
    prompt = build_prompt("be brief", turns, "the question", [], budget=120, count=words)
    assert prompt.messages[0].content == "be brief"
    assert prompt.messages[-1].content == "the question"
    assert prompt.tokens <= 120 and prompt.window_start > 0
    assert prompt.messages[1].content.startswith(f"turn {prompt.window_start} ")


def test_recalled_chunks_ride_in_the_question_least_relevant_first_to_go() -> None:
    recalled = [Recalled("locker code is 4817", 0.9, 2, 2),
                Recalled("weather was rainy " * 30, 0.2, 5, 6),
                Recalled("still in the window", 0.95, 39, 39)]
    turns = [Message(role="user", content=f"turn {i} " * 5) for i in range(40)]
    prompt = build_prompt("sys", turns, "what is my locker code?", recalled, budget=200,
                          count=words)
    last = prompt.messages[-1].content
    assert "4817" in last and last.endswith("what is my locker code?")
    assert "rainy" not in last  # did not fit in the memory share
    assert "still in the window" not in last  # its turns are shown verbatim anyway
    assert prompt.tokens <= 200


def test_a_question_longer_than_the_context_is_refused_plainly() -> None:
    with pytest.raises(ContextOverflowError, match="Shorten the message"):
        build_prompt("sys", [], "word " * 500, [], budget=100, count=words)
    turns = [Message(role="user", content="huge " * 500)]
    prompt = build_prompt("sys", turns, "small question", [], budget=100, count=words)
    assert prompt.messages[-1].content == "small question" and len(prompt.messages) == 2
