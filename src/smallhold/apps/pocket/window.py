"""Building the prompt of one turn: system prompt, recent turns, recalled old chunks, question.

Priorities when the context is short, from kept-at-all-costs to first-to-go:

1. the system prompt and the current question (if those alone do not fit, the turn is
   refused with :class:`~smallhold.errors.ContextOverflowError`: nothing else could help);
2. the most relevant recalled chunks, up to a share of what is left;
3. recent turns, newest first, dropped from the oldest end in blocks (the runtime's
   :func:`~smallhold.runtime.context.fit_window`), so the prompt's prefix stays the same for
   several turns and llama.cpp can reuse its KV cache;
4. less relevant chunks go before more relevant ones.

Recalled chunks ride in the current user message, not before the window: the prefix
(system + window) is then identical from turn to turn, which is what makes the KV cache pay.
Pure: the caller counts tokens and recalls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from smallhold.errors import ContextOverflowError
from smallhold.runtime import Message
from smallhold.runtime.context import PER_MESSAGE_OVERHEAD, fit_window

CountFn = Callable[[str], int]
MEMORY_SHARE = 0.35
_MEMORY_HEAD = "From earlier in this conversation (may help):"
_NOTES_HEAD = ("What the user asked you to remember (use it when it answers the question, and "
               "say it comes from their notes):")
_QUESTION_HEAD = "Now the user says:"


@dataclass(frozen=True)
class Recalled:
    text: str
    score: float
    first_turn: int
    last_turn: int
    id: str = ""  # the memory's id, for citing it


@dataclass(frozen=True)
class Prompt:
    messages: list[Message]
    window_start: int  # index (into the turns given) of the oldest turn kept verbatim
    recalled: list[Recalled]
    tokens: int
    notes: list[Recalled] = field(default_factory=list)  # the user's notes it carries


def _cost(text: str, count: CountFn) -> int:
    return count(text) + PER_MESSAGE_OVERHEAD


def build_prompt(system: str, turns: Sequence[Message], question: str,
                 recalled: Sequence[Recalled], *, budget: int, count: CountFn,
                 memory_share: float = MEMORY_SHARE, block: int = 8,
                 first_index: int = 0, notes: Sequence[Recalled] = ()) -> Prompt:
    """The messages for this turn within ``budget`` tokens (see the module's priorities).

    ``first_index`` is the conversation index of ``turns[0]`` (callers pass only the recent
    turns); recalled chunks name conversation indexes. ``notes`` are what the user asked to
    be remembered (``memory remember``, "remember that ..."): they share the memory
    allowance, ahead of the conversation's chunks.
    """
    fixed = _cost(system, count) + _cost(question, count)
    if fixed > budget:
        raise ContextOverflowError(
            f"the system prompt and this message need {fixed:,} tokens, but only {budget:,} "
            "fit in this model's context after room for the answer. Shorten the message or "
            "split it into parts.")
    spare = budget - fixed
    chosen: list[Recalled] = []
    kept_notes: list[Recalled] = []
    memory_cost = _cost(_MEMORY_HEAD, count) + _cost(_NOTES_HEAD, count) + \
        count(_QUESTION_HEAD)
    allowance = int(spare * memory_share)
    for item in sorted(notes, key=lambda r: -r.score):
        cost = count(item.text) + 2
        if memory_cost + cost <= allowance:
            kept_notes.append(item)
            memory_cost += cost
    for item in sorted(recalled, key=lambda r: -r.score):
        cost = count(item.text) + 2
        if memory_cost + cost <= allowance:
            chosen.append(item)
            memory_cost += cost
    if not chosen and not kept_notes:
        memory_cost = 0
    history = [Message(role="system", content=system), *turns]
    window = fit_window(history, budget - memory_cost - _cost(question, count), count,
                        block=block)
    kept = window[1:]
    room = budget - memory_cost - _cost(question, count) - _cost(system, count)
    while kept and sum(_cost(m.content, count) for m in kept) > room:
        kept = kept[1:]  # one enormous recent turn: it goes before the question does
    window_start = len(turns) - len(kept)
    # a chunk whose turns are all still in the window adds nothing
    chosen = [c for c in chosen if c.last_turn < first_index + window_start]
    sections = []
    if kept_notes:
        sections.append(_NOTES_HEAD + "\n" + "\n".join(f"- {n.text}" for n in kept_notes))
    if chosen:
        sections.append(_MEMORY_HEAD + "\n" + "\n".join(
            f"- {c.text}" for c in sorted(chosen, key=lambda c: c.first_turn)))
    content = question
    if sections:
        content = "\n\n".join([*sections, f"{_QUESTION_HEAD} {question}"])
    messages = [Message(role="system", content=system), *kept,
                Message(role="user", content=content)]
    tokens = sum(_cost(m.content, count) for m in messages)
    return Prompt(messages, window_start, chosen, tokens, kept_notes)


__all__ = ["Prompt", "Recalled", "build_prompt"]
