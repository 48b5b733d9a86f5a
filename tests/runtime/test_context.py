"""Block sliding keeps the prompt prefix stable between turns."""

from __future__ import annotations

from smallhold.runtime.context import fit_window
from smallhold.runtime.types import Message


def words(text: str) -> int:
    return len(text.split())


def conversation(turns: int) -> list[Message]:
    out = [Message(role="system", content="be brief")]
    for i in range(turns):
        out.append(Message(role="user", content=f"question {i} " + "w " * 20))
        out.append(Message(role="assistant", content=f"answer {i} " + "w " * 20))
    return out


def test_short_conversations_are_untouched() -> None:
    msgs = conversation(2)
    assert fit_window(msgs, 1000, words) == msgs


def test_system_and_newest_always_kept() -> None:
    msgs = conversation(50)
    kept = fit_window(msgs, 300, words)
    assert kept[0].role == "system"
    assert kept[-1] == msgs[-1]
    assert kept[1].role == "user"
    assert sum(words(m.content) + 6 for m in kept) <= 300


def test_prefix_changes_only_at_block_boundaries() -> None:
    changes = 0
    previous: Message | None = None
    for turns in range(10, 40):
        kept = fit_window(conversation(turns), 600, words, block=8)
        first = kept[1]
        if previous is not None and first != previous:
            changes += 1
        previous = first
    per_turn = 0
    previous = None
    for turns in range(10, 40):
        kept = fit_window(conversation(turns), 600, words, block=1)
        if previous is not None and kept[1] != previous:
            per_turn += 1
        previous = kept[1]
    assert per_turn >= 25
    assert changes <= per_turn // 3
