"""Fitting a conversation into the context without wrecking the KV cache.

llama.cpp reuses cached tokens only up to the first token that differs from what it saw
before. Dropping the oldest turn on every new turn changes the very beginning of the prompt
each time, so everything after the system prompt is re-evaluated on every turn. Sliding in
blocks instead keeps the prompt's prefix identical for many turns in a row: the cost of a
re-prefill is paid once per block, not once per turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from smallhold.runtime.types import Message

CountFn = Callable[[str], int]
PER_MESSAGE_OVERHEAD = 6


def _cost(message: Message, count: CountFn) -> int:
    return count(message.content) + PER_MESSAGE_OVERHEAD


def fit_window(messages: Sequence[Message], budget: int, count: CountFn, *,
               block: int = 8) -> list[Message]:
    """Keep system messages and the newest turns within ``budget`` tokens.

    Older non-system messages are dropped ``block`` at a time from the oldest end (the drop
    count is always a multiple of ``block``), so successive calls share a prefix until the
    next block boundary. The newest message is always kept; if it alone does not fit, the
    caller's context check reports it.
    """
    pinned = [m for m in messages if m.role == "system"]
    turns = [m for m in messages if m.role != "system"]
    fixed = sum(_cost(m, count) for m in pinned)
    costs = [_cost(m, count) for m in turns]
    total = fixed + sum(costs)
    if total <= budget or not turns:
        return list(messages)
    dropped = 0
    step = max(1, block)
    while dropped < len(turns) - 1 and total > budget:
        take = min(step, len(turns) - 1 - dropped)
        total -= sum(costs[dropped:dropped + take])
        dropped += take
    kept = turns[dropped:]
    while kept and kept[0].role == "assistant" and len(kept) > 1:
        kept = kept[1:]
    return [*pinned, *kept]
