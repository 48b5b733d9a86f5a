"""The pocket assistant: one turn of a persisted conversation with semantic context.

Per turn: the user's words are saved; turns that have slid out of the window are cut into
topic chunks and stored in vector memory (kind ``pocket.chunk.<conversation>``, so the KNN
search is filtered to this conversation inside sqlite-vec); the chunks most relevant to the
question are recalled; :func:`.window.build_prompt` fits everything in the model's context;
the answer streams and is saved (marked incomplete when cut short, so no turn is lost).

The user's notes (memories of kind ``note``: ``smallhold memory remember``, or "remember that
..." said in chat) are recalled by meaning for every turn, one-shot questions included, and
ride in the prompt ahead of the conversation's chunks; the turn's result names them, so the
CLI can cite what the answer stood on. A one-shot question without a conversation name
(``name=None``) reads no history and saves nothing, like ``ollama run``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from smallhold.apps.pocket.background import Background, Outcome, SyncRunner
from smallhold.apps.pocket.chunking import Piece, split_sentences, topic_chunks
from smallhold.apps.pocket.conversations import ConversationStore, Turn
from smallhold.apps.pocket.window import MEMORY_SHARE, Prompt, Recalled, build_prompt
from smallhold.errors import (
    ContextOverflowError,
    DevicePausedError,
    GenerationError,
    RecordNotFoundError,
    RecordValidationError,
)
from smallhold.kit.home import Home, Overrides
from smallhold.kit.power import PowerDecision, PowerPolicy, decide
from smallhold.kit.sync import sync_if_paired
from smallhold.runtime import (
    CancelToken,
    Delta,
    Finish,
    GenerationParams,
    Message,
    Runtime,
    StreamEvent,
)
from smallhold.store.handle import VaultHandle
from smallhold.store.memory import MemoryStore, TextEmbedder

SYSTEM = "You are a helpful assistant running privately on the user's own device. Be concise."
RECENT_FETCH = 400  # turns read back per prompt; the window never holds more
RECALL_K = 8
ANSWER_MARGIN = 16
NOTE_KIND = "note"  # what `smallhold memory remember` stores by default
NOTES_K = 4
# Cosine (all-MiniLM-L6-v2) a note must reach to be offered. Measured on four notes and six
# questions: each question against its own note 0.60-0.91 ("can I take amoxicillin?" against
# "I am allergic to penicillin" 0.60), against the others -0.10-0.22.
NOTE_MIN_SIMILARITY = 0.35
_REMEMBER = re.compile(r"^\s*(?:please\s+)?remember(?:\s+that|\s*:)\s+(?P<fact>.+?)\s*$",
                       re.I | re.S)


def remember_request(text: str) -> str | None:
    """The fact in "remember that <fact>" / "remember: <fact>", else None."""
    found = _REMEMBER.match(text)
    return found.group("fact").rstrip(".") + "." if found else None


def session_key(conversation: str) -> str:
    """The runtime session (KV-state key) of a pocket conversation."""
    return f"pocket:{conversation}"


def chunk_kind(conversation: str) -> str:
    return f"pocket.chunk.{conversation}"


@dataclass
class TurnResult:
    """What one turn did, for the CLI, the GUI and tests."""

    answer: str = ""
    finish: Finish | None = None
    prompt: Prompt | None = None
    indexed_chunks: int = 0
    power: PowerDecision | None = None
    model: str = ""
    events: list[str] = field(default_factory=list)


class Pocket:
    def __init__(self, runtime: Runtime, handle: VaultHandle, embedder: TextEmbedder, *,
                 system: str = SYSTEM, model: str | None = None,
                 power_policy: PowerPolicy | None = None, saver_model: str | None = None,
                 sync: SyncRunner = sync_if_paired) -> None:
        self.runtime = runtime
        self.power_policy = power_policy or PowerPolicy()
        self.last = TurnResult()
        self.handle = handle
        self.sync = sync
        self.store = ConversationStore(handle)
        self.memory = MemoryStore(handle, embedder)
        self.embedder = embedder
        self.system = system
        self.model = model
        self.saver_model = saver_model  # answers with this smaller model in saver mode

    @classmethod
    def on(cls, home: Home, *, model: str | None = None, system: str = SYSTEM) -> Pocket:
        """The pocket of ``home``'s profile: its runtime, vault and embedder; in saver
        mode it answers with the next smaller installed model."""
        return cls(home.runtime, home.vault, home.embedder, system=system, model=model,
                   saver_model=home.runtime.smaller_model(model))

    def counter(self, model: str | None = None) -> Callable[[str], int]:
        """Token counting for ``model`` (default: the pocket's), as the window needs it."""
        resolved = self.runtime.resolve_model(model or self.model)
        return lambda text: self.runtime.backend.count_tokens(resolved, text)

    def budget(self, params: GenerationParams, model: str | None = None) -> int:
        context = self.runtime.backend.context_length(self.runtime.resolve_model(
            model or self.model))
        # room for the answer, but never more than half the context: a long max_tokens on a
        # small model must not leave no room for the question
        return max(0, context - min(params.max_tokens, context // 2) - ANSWER_MARGIN)

    # -- context ---------------------------------------------------------------------------

    def index_old_turns(self, name: str, upto: int) -> int:
        """Chunk turns ``[indexed_upto, upto)`` into vector memory; returns chunks stored."""
        if upto <= 0:
            return 0
        conversation = self.store.get(name)
        if upto <= conversation.indexed_upto:
            return 0
        turns = self.store.between(name, conversation.indexed_upto, upto)
        pieces = [Piece(sentence, t.index) for t in turns
                  for sentence in split_sentences(f"{t.role}: {t.content}")]
        stored = 0
        if pieces:
            vectors = self.embedder.embed([p.text for p in pieces])
            for chunk in topic_chunks(pieces, vectors):
                self.memory.remember(chunk.text, kind=chunk_kind(name), vector=chunk.vector,
                                     tags=[f"turns:{chunk.first_turn}-{chunk.last_turn}"])
                stored += 1
        self.store.mark_indexed(name, upto)
        return stored

    def notes(self, question: str) -> list[Recalled]:
        """The user's notes close in meaning to ``question``, best first (none kept: the
        embedder is not even loaded)."""
        if not self.memory.list(kind=NOTE_KIND, limit=1):
            return []
        return [Recalled(h.memory.text, h.score, -1, -1, h.memory.id)
                for h in self.memory.recall(question, NOTES_K, kind=NOTE_KIND)
                if h.vector >= NOTE_MIN_SIMILARITY]

    def remember(self, fact: str) -> str:
        """Keep ``fact`` as a note in the vault's memory; returns its id."""
        return self.memory.remember(fact, kind=NOTE_KIND, importance=0.6).id

    def _recall(self, name: str, question: str) -> list[Recalled]:
        try:
            if self.store.get(name).indexed_upto == 0:
                return []
        except RecordNotFoundError:
            return []
        found = []
        for hit in self.memory.recall(question, RECALL_K, kind=chunk_kind(name)):
            span = next((t[6:] for t in hit.memory.tags if t.startswith("turns:")), "0-0")
            first, _, last = span.partition("-")
            found.append(Recalled(hit.memory.text, hit.score, int(first), int(last or first)))
        return found

    def prepare(self, name: str | None, question: str, params: GenerationParams,
                model: str | None = None) -> tuple[Prompt, int]:
        """The prompt for ``question`` (not yet saved) and how many chunks were indexed.

        Turns are indexed before recall, up to where the window would start if recalled
        chunks took their whole share: every older turn is then findable, and the real
        window (at least that large) shows the rest verbatim. ``name`` None: a one-shot
        question, with the user's notes and no history.
        """
        model = model or self.model
        notes = self.notes(question)
        if name is None:
            return build_prompt(self.system, [], question, [], notes=notes,
                                budget=self.budget(params, model), count=self.counter(model)), 0
        recent = self.store.recent(name, RECENT_FETCH)
        messages = [Message(role=t.role, content=t.content) for t in recent]
        budget = self.budget(params, model)
        count = self.counter(model)
        try:
            narrow = build_prompt(self.system, messages, question, [],
                                  budget=int(budget * (1 - MEMORY_SHARE)), count=count)
            start = narrow.window_start
        except ContextOverflowError:
            start = len(recent)
        first_kept = recent[start].index if start < len(recent) else \
            (recent[-1].index + 1 if recent else 0)
        indexed = self.index_old_turns(name, first_kept)
        prompt = build_prompt(self.system, messages, question, self._recall(name, question),
                              budget=budget, count=count, notes=notes,
                              first_index=recent[0].index if recent else 0)
        return prompt, indexed

    # -- a turn ----------------------------------------------------------------------------

    def ask(self, name: str | None, question: str, params: GenerationParams | None = None,
            cancel: CancelToken | None = None) -> Iterator[StreamEvent]:
        """Stream the answer to ``question`` in conversation ``name``; both turns are saved.
        ``name`` None asks once: no history is read and nothing is saved.

        The last event is the :class:`Finish`; :attr:`last` holds the whole turn's result.
        """
        params = params or GenerationParams()
        power = decide(self.runtime.probe.read(), self.power_policy)
        if power.mode == "paused":
            raise DevicePausedError(f"pocket is paused: {power.reason}. Your conversation is "
                                    "saved; ask again when the device is ready.")
        if power.max_tokens is not None and params.max_tokens > power.max_tokens:
            params = params.model_copy(update={"max_tokens": power.max_tokens})
        text = question.strip()
        if not text:
            raise RecordValidationError("the message is empty; type something to ask.")
        if name is not None:
            self.store.check_name(name)
        model = self.model
        notes = []
        if power.prefer_small_model and self.saver_model:
            model = self.saver_model
            notes.append(f"saver mode: answering with {model}")
        prompt, indexed = self.prepare(name, text, params, model)
        if name is not None:
            self.store.add_turn(name, "user", text)
        self.last = result = TurnResult(prompt=prompt, indexed_chunks=indexed, power=power,
                                        model=self.runtime.resolve_model(model), events=notes)
        parts: list[str] = []
        try:
            session = session_key(name) if name is not None else None
            for event in self.runtime.stream(prompt.messages, model=model, params=params,
                                             session=session, app="pocket", cancel=cancel):
                if isinstance(event, Delta):
                    parts.append(event.text)
                else:
                    result.finish = event
                yield event
        except (GenerationError, MemoryError, KeyboardInterrupt) as exc:
            if parts and name is not None:
                self.store.add_turn(name, "assistant", "".join(parts), complete=False)
            result.events.append(f"answer cut short: {type(exc).__name__}")
            raise
        result.answer = "".join(parts)
        complete = result.finish is not None and result.finish.finish_reason == "stop"
        if name is not None:
            self.store.add_turn(name, "assistant", result.answer, complete=complete)

    def maintain(self, *, force: bool = False) -> tuple[PowerDecision, list[Outcome]]:
        """Run the background jobs that are due (memory consolidation, sync) if power allows."""
        return Background(self.handle, self.memory, self.runtime.probe,
                          policy=self.power_policy, sync=self.sync).run(force=force)

    def history(self, name: str, limit: int = RECENT_FETCH) -> list[Turn]:
        return self.store.recent(name, limit)

    def copy_conversation(self, name: str, to: str) -> int:
        """Copy the turns of ``name`` into a new conversation ``to``; returns how many."""
        self.store.check_name(to)
        try:
            self.store.get(to)
        except RecordNotFoundError:
            pass
        else:
            raise RecordValidationError(f"a conversation named {to!r} exists already; pick "
                                        "another name or `smallhold chat rm` it first.")
        turns = self.store.between(name, 0, 1 << 62)
        for turn in turns:
            self.store.add_turn(to, turn.role, turn.content, complete=turn.complete)
        return len(turns)

    def forget_conversation(self, name: str) -> int:
        """Delete a conversation, its turns, its chunks from memory and the model's saved
        state of it (which spills to disk)."""
        self.runtime.forget_session(session_key(name))  # a cache: harmless to drop first
        removed = self.store.remove(name)
        for archived in (False, True):
            for memory in self.memory.list(kind=chunk_kind(name), archived=archived,
                                           limit=1_000_000):
                self.memory.forget(memory.id, reason=f"conversation {name} deleted")
        return removed


__all__ = ["SYSTEM", "Pocket", "TurnResult", "chunk_kind", "open_pocket", "remember_request",
           "session_key"]


@contextmanager
def open_pocket(profile: str | None = None, model: str | None = None, system: str = SYSTEM, *,
                overrides: Overrides | None = None) -> Iterator[Pocket]:
    """A pocket on the profile's home (one vault, shared by the trace log)."""
    with Home.open(profile, app="pocket", overrides=overrides) as home:
        yield Pocket.on(home, model=model, system=system)
