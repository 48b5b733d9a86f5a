"""The free-text half of the graph: what the local model reads in mail and event descriptions.

Rules cover the structured fields (graph.py); the places, organisations, habits, goals and
people a message body or an event's DESCRIPTION names need a reader, and that is the local
model, asked for a typed list (``Runtime.structured``: grammar-constrained, so even a small
model gives valid JSON). Its answer is held to the text and to a budget:

- **Never invented**: a name is kept only when it occurs, case- and space-insensitively and
  as whole words, in the text the model was given (the cut text, not the whole body), and
  it is kept as the text spells it. Anything else is dropped and only counted: a small
  model fills silence with guesses.
- **Read once**: a *text* is a message's subject and body (quoted reply lines left out) or
  an event series' summary, location and description (only events that have one); it is
  keyed by its kind, natural key and content. A text read with a model and a
  ``PROMPT_VERSION`` is kept in ``life_extractions`` and never asked again; a changed text,
  another model or a new prompt reads it again. A text the model failed on is kept as
  failed too, so a bad text does not cost a call on every run.
- **Bounded**: a run reads only texts not read yet, newest first, at most ``limit``, each
  cut at ``MAX_CHARS``. It runs when asked (``smallhold life graph --extract``), never at
  ingest: a model call per message would make ingest slow.
- **Kept apart**: the names join the graph as ``me -[mentions]-> entity`` edges with
  ``source: "model:<id>"`` and the texts as evidence (kind, natural key, time), beside the
  rule edges (``source: "rule"``), never merged into them. A mention names an existing
  entity when exactly one has that name (a person's display names, an organisation's domain
  or its first label, a merchant, a place, a habit, a goal's statement or id); otherwise it
  is an entity of its own, marked with the model's source.
- **Forgotten with its source**: each row keeps its record's file, so ``life forget``
  deletes it with the records, and the graph rebuilt after that no longer holds its names.
- **Not traced with its text**: these prompts are the person's mail. The suite's trace log
  keeps every prompt, and would keep a body after ``life forget`` removed it, so the calls
  go through a runtime without the trace (``untraced``); one content-free event per run
  (model, counts, seconds) records that they happened.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from smallhold.apps.life.daily import local, zone
from smallhold.apps.life.graph import ME, Entity, Graph, Tally, habit_key, norm_name
from smallhold.apps.life.models import Event, record_id
from smallhold.apps.life.models import Message as LifeMessage
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.values import Values
from smallhold.errors import ContextOverflowError, StructuredOutputError
from smallhold.runtime import GenerationParams, Message, Runtime

PROMPT_VERSION = 1  # raise when SYSTEM or Mentions change: every text is read again
MAX_CHARS = 2000  # of a text the model reads (a few hundred tokens, even for 135M models)
DEFAULT_LIMIT = 50  # texts a run reads unless told otherwise
PARAMS = GenerationParams(max_tokens=400, temperature=0.0, seed=11)
# no example names: small models copy them into every answer
SYSTEM = ("You list the things a person's own text names. For each place (a venue, street, "
          "town or country), organisation (a company, school, club, shop or team), habit "
          "(an activity the writer does regularly), goal (something the writer aims for) "
          "and person (a person's name) that the text itself mentions, give its kind and "
          "its name copied exactly as the text writes it. Never add a name the text does "
          "not contain. Reply with an empty list when it names none.")
MentionKind = Literal["place", "organisation", "habit", "goal", "person"]
_QUOTED = re.compile(r"^[ \t]*>.*$\n?", re.MULTILINE)
_BLANKS = re.compile(r"\n{3,}")
# where a mention of each kind may find an existing entity, and the id a new one gets
_LOOK_IN: dict[str, tuple[str, ...]] = {
    "person": ("person",), "organisation": ("organisation", "merchant"), "place": ("place",),
    "habit": ("habit",), "goal": ("goal",)}
_NEW_ID = {"person": "person:name:", "organisation": "org:name:", "place": "place:",
           "habit": "habit:", "goal": "goal:name:"}


class Mention(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: MentionKind
    name: str = Field(min_length=1, max_length=80)


class Mentions(BaseModel):
    """What the model is asked for: the named things in one text."""

    model_config = ConfigDict(extra="forbid")

    entities: list[Mention] = Field(max_length=12)


@dataclass(frozen=True)
class Text:
    """One text the model reads: a message, or an event series with a description."""

    unit: str  # record_id(kind, key, text)
    kind: str  # message, event
    key: str  # Message-ID, event UID
    at: str  # the record's own time (the latest occurrence's, for a series)
    file: str
    note: str  # subject or summary, shown beside the evidence
    text: str  # as the model reads it: cut at MAX_CHARS


@dataclass(frozen=True)
class Extraction:
    """One text's kept reading, as the graph uses it."""

    unit: str
    kind: str
    key: str
    at: str
    note: str
    model: str
    mentions: tuple[tuple[str, str], ...]  # (kind, name as the text writes it)


@dataclass
class ExtractReport:
    model: str
    prompt: int
    read: int = 0  # texts the model read in this run
    cached: int = 0  # texts already read with this model and prompt (no call)
    left: int = 0  # texts still unread after this run (over the limit)
    kept: int = 0  # names kept: each is in its text
    dropped: int = 0  # names the model gave that its text does not contain
    failed: int = 0  # texts the model gave no valid answer for (kept as failed)
    seconds: float = 0.0


def _flat(text: str) -> str:
    return " ".join(text.casefold().split())


def _cut(text: str) -> str:
    text = _BLANKS.sub("\n\n", _QUOTED.sub("", text.replace("\r\n", "\n"))).strip()
    return text[:MAX_CHARS]


def _instant(at: str) -> datetime:
    """A record's time for ordering: floating and date-only times read as UTC."""
    moment = datetime.fromisoformat(at)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def texts(store: LifeStore) -> list[Text]:
    """Every text the model could read in the store, newest first."""
    return texts_of(store.records("message"), store.records("event"))


def texts_of(messages: Iterable[LifeMessage], events: Iterable[Event]) -> list[Text]:
    """Every text the model could read in these records, newest first."""
    found: dict[str, Text] = {}
    for m in messages:
        text = _cut(f"{m.subject}\n\n{m.body}")
        if text:
            unit = record_id("message", m.message_id, text)
            found[unit] = Text(unit, "message", m.message_id, m.date, m.source.file,
                               m.subject, text)
    for e in events:  # a series keeps its latest occurrence
        if not e.description.strip() or e.status == "cancelled":
            continue
        text = _cut("\n".join(p for p in (e.summary, e.location, e.description) if p))
        unit = record_id("event", e.uid, text)
        known = found.get(unit)
        if known is None or _instant(e.start) > _instant(known.at):
            found[unit] = Text(unit, "event", e.uid, e.start, e.source.file, e.summary, text)
    return sorted(found.values(), key=lambda t: (_instant(t.at), t.unit), reverse=True)


def grounded(mentions: Iterable[Mention], text: str) -> tuple[list[Mention], int]:
    """The mentions whose name is in ``text`` (whole words, any case or spacing), once
    each and spelled as the text spells it, and how many were dropped for not being there."""
    kept: list[Mention] = []
    seen: set[tuple[str, str]] = set()
    dropped = 0
    for mention in mentions:
        words = mention.name.strip(" \t\n\"'.,;:!?()[]").split()
        pattern = r"\s+".join(map(re.escape, words))
        found = re.search(rf"(?<!\w){pattern}(?!\w)", text, re.IGNORECASE) if words else None
        name = " ".join(found.group().split()) if found else ""
        if len(name) < 2:
            dropped += 1
            continue
        if (mention.kind, _flat(name)) not in seen:
            seen.add((mention.kind, _flat(name)))
            kept.append(Mention(kind=mention.kind, name=name))
    return kept, dropped


def untraced(runtime: Runtime) -> Runtime:
    """``runtime``'s backend without the trace log (see the module's last rule)."""
    return Runtime(runtime.settings, runtime.paths, backend=runtime.backend,
                   probe=runtime.probe, trace=None, app="life")


def _read(runtime: Runtime, text: Text, model: str) -> tuple[list[Mention], int, str]:
    kind = "email" if text.kind == "message" else "calendar event"
    try:
        answer = runtime.structured(
            [Message(role="system", content=SYSTEM),
             Message(role="user", content=f"The {kind}:\n\n{text.text}")],
            Mentions, model=model, params=PARAMS, retries=1, app="life")
    except (StructuredOutputError, ContextOverflowError) as err:
        return [], 0, str(err)[:300]
    kept, dropped = grounded(answer.entities, text.text)
    return kept, dropped, ""


def extract(store: LifeStore, runtime: Runtime, *, model: str | None = None,
            limit: int = DEFAULT_LIMIT,
            progress: Callable[[int, int], None] | None = None) -> ExtractReport:
    """Read up to ``limit`` texts not read yet with ``model``, newest first, and keep what
    each names (each text in its own transaction: an interrupted run keeps what it read)."""
    started = time.perf_counter()
    model_id = runtime.resolve_model(model)
    report = ExtractReport(model=model_id, prompt=PROMPT_VERSION)
    with store.handle.lock:
        done = {unit for (unit,) in store.handle.conn.execute(
            "SELECT unit FROM life_extractions WHERE model = ? AND prompt = ?",
            (model_id, PROMPT_VERSION))}
    every = texts(store)
    todo = [t for t in every if t.unit not in done]
    report.cached = len(every) - len(todo)
    batch = todo[:max(limit, 0)]
    report.left = len(todo) - len(batch)
    for n, text in enumerate(batch):
        if progress is not None:
            progress(n, len(batch))
        kept, dropped, error = _read(runtime, text, model_id)
        report.read += 1
        report.kept += len(kept)
        report.dropped += dropped
        report.failed += bool(error)
        data = {"note": text.note, "mentions": [m.model_dump() for m in kept],
                "dropped": dropped, "error": error}
        with store.handle.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO life_extractions VALUES "
                         "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (text.unit, model_id, PROMPT_VERSION, text.kind, text.key, text.at,
                          text.file, time.time(), json.dumps(data)))
    if progress is not None:
        progress(len(batch), len(batch))
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def stored(store: LifeStore) -> list[Extraction]:
    """Each text's latest answered reading (any model or prompt: a failed one leaves the
    one before it standing), those that named nothing left out."""
    with store.handle.lock:
        rows = store.handle.conn.execute(
            "SELECT unit, kind, key, at, model, data FROM life_extractions "
            "ORDER BY unit, extracted_at").fetchall()
    latest: dict[str, Extraction] = {}
    for unit, kind, key, at, model, data in rows:
        parsed = json.loads(data)
        if not parsed.get("error"):
            latest[unit] = Extraction(unit, kind, key, at, parsed.get("note", ""), model, tuple(
                (m["kind"], m["name"]) for m in parsed.get("mentions", [])))
    return [reading for reading in latest.values() if reading.mentions]


def _labels(entity: Entity) -> set[str]:
    """The names a mention may call ``entity`` by."""
    labels = {norm_name(entity.name)}
    if entity.kind == "person":
        labels |= {norm_name(n) for n in entity.data.get("names", {})}
    elif entity.kind == "organisation":
        labels.add(norm_name(entity.name).split(".")[0])
    elif entity.kind in ("merchant", "place"):
        labels.add(norm_name(str(entity.data.get("key", ""))))
    elif entity.kind == "habit":
        labels.add(habit_key(entity.name))
    elif entity.kind == "goal":
        labels.add(norm_name(str(entity.data.get("priority", ""))))
    return labels - {""}


class _Index:
    """Entities by kind and name, growing as the model's own entities are added."""

    def __init__(self, entities: list[Entity]) -> None:
        self.ids = {e.id for e in entities}
        self.named: dict[tuple[str, str], set[str]] = defaultdict(set)
        for entity in entities:
            for label in _labels(entity):
                self.named[(entity.kind, label)].add(entity.id)
        self.new: list[Entity] = []

    def resolve(self, kind: str, name: str, model: str) -> str:
        label = habit_key(name) if kind == "habit" else norm_name(name)
        hits = set().union(*(self.named.get((k, label), set()) for k in _LOOK_IN[kind]))
        if len(hits) == 1:
            return hits.pop()
        own = _NEW_ID[kind] + label  # none, or several: the name stands on its own
        if own not in self.ids:
            self.ids.add(own)
            entity = Entity(own, kind, name, {"source": f"model:{model}"} | (
                {"emails": []} if kind == "person" else {}))
            self.new.append(entity)
            if not hits:
                self.named[(kind, label)].add(own)
        return own


def add_mentions(graph: Graph, readings: Iterable[Extraction], values: Values,
                 present: set[str]) -> int:
    """Join the model's readings to ``graph`` as ``mentions`` edges (see the module's
    rules); ``present`` is the unit of every text the stored records still hold, so a
    reading of a record no longer there, or of a text since changed, adds nothing.
    Returns the edges added."""
    tz, me = zone(values.person), norm_name(values.person.name)
    index = _Index(graph.entities)
    accs: dict[str, Tally] = defaultdict(Tally)
    models: dict[str, set[str]] = defaultdict(set)
    for reading in readings:
        if reading.unit not in present:
            continue
        at = local(reading.at, tz).isoformat(timespec="minutes")
        named: dict[str, list[str]] = defaultdict(list)
        for kind, name in reading.mentions:
            if kind in _LOOK_IN and not (kind == "person" and norm_name(name) == me):
                named[index.resolve(kind, name, reading.model)].append(name)
        for dst, names in named.items():  # one text counts once per entity
            accs[dst].add(at, {"kind": reading.kind, "key": reading.key, "at": at,
                               "note": reading.note, "names": names,
                               "source": f"model:{reading.model}"}, 1.0)
            models[dst].add(reading.model)
    graph.entities.extend(index.new)
    for dst, acc in sorted(accs.items()):
        acc.extra["source"] = "model:" + "+".join(sorted(models[dst]))
        graph.relations.append(acc.relation(ME, "mentions", dst))
    return len(accs)


__all__ = ["DEFAULT_LIMIT", "MAX_CHARS", "PROMPT_VERSION", "ExtractReport", "Extraction",
           "Mention", "Mentions", "Text", "add_mentions", "extract", "grounded", "stored",
           "texts", "texts_of", "untraced"]
