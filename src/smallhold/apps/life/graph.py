"""The rule-built part of life's knowledge graph: people, organisations, merchants,
places, accounts, habits and goals, and how the person stands to each.

Built by rules from structured fields only (mail headers, calendar organizers, attendees,
summaries and locations, transaction payees and accounts, the stated priorities), never
from bodies or a model: every edge can be derived again from the records, cites the rows it
stands on and says ``source: "rule"``. What the local model reads in free text joins later
(``extract.add_mentions``) on edges of its own. Held-out exports differ, so each rule is
stated for any mailbox and calendar, not for the persona generator:

- **Owner**: ``Values.person.emails``; without them, the addresses on at least half the
  messages (a mailbox export is one person's). The owner is the entity ``me``.
- **Person**: a lower-case email address, named by the display name seen most with it.
  Two addresses are one person only when (a) both carry the same *distinctive* name (two
  words or more, no ``@``: "Sam" or "Support" name too many people), (b) neither is ever
  seen with another distinctive name (a shared mailbox is relabelled by each sender),
  (c) they never appear on one message or event together (one person is not invited
  twice) and (d) they are not at two different organisations. Anything less stays two
  people: a wrong merge hides someone, a missed one only splits their counts. A name
  without an address joins the one person carrying that name, else stands alone.
- **Organisation**: an email domain. The owner's work domain (``daily.work_domain``) is
  one; any other domain is one when it is no public mail provider (``WEBMAIL``) nor one of
  the owner's own other domains (their personal provider), and 2+ distinct addresses other
  than the owner's use it, at least one of them on a calendar event. A single outside
  correspondent says nothing about an organisation.
- **Merchant**: a purchase's, refund's or fee's payee (its description when empty),
  normalised as the money checks do; income, card payments, transfers and cash pay none.
- **Alone**: an event is the person's own when no one else is on it: every attendee is
  the owner or the organizer, and the organizer is the owner (or the owner is unknown, as
  a calendar alone does not say whose it is). A name-only attendee is someone else unless
  it is the owner's name.
- **Place**: an event's LOCATION with URLs taken out and whitespace collapsed; nothing is
  left, or only a video-call or phone word (Zoom, Teams, Google Meet, Webex, "online",
  ...), means no place. Spellings that differ only in case or spacing are one place.
  ``me -[meets_at]-> place`` for events with others, ``visits`` for the person's own
  (not cancelled, started up to ``as_of``; all-day ones count: a holiday is a visit);
  occurrences still to come are the place's ``planned`` references, not relations.
- **Account**: a transaction's account id as the statement gives it; ``me -[holds]->``
  it, valid from its first to its last transaction. An empty id names no account.
- **Habit**: the person's own (see *Alone*), timed, not cancelled event summaries,
  compared without case, extra spaces or end punctuation ("Gym!" is "gym"), on at least
  ``HABIT_WEEKS`` distinct ISO weeks up to ``as_of``: ``me -[does]-> habit``, weighted
  by hours. It is ``lapsed`` when none took place in the ``LAPSED_AFTER`` before the
  span's end (``as_of``, else the calendar's last event), with the date it was last
  done. A meeting with anyone else is no habit.
- **Goal**: each stated priority (``values.Priority``), its statement as the name and its
  targets kept: ``me -[aims_for]-> goal:ID``, ranked in the person's order; its evidence
  is the priority itself (a statement has no date, so the edge has none either).
- **Relations** from ``me``: ``emails`` (messages sent to them or received from them),
  ``meets`` (timed, not cancelled events they organise or attend, starting up to
  ``as_of``: planned ones are not met yet), ``pays``; and ``works_at`` from a person to
  the organisation of their address, valid from the first to the last time it was seen.
  Times are the owner's local times; a relation keeps its monthly counts in full and its
  latest ``MAX_EVIDENCE`` records (kind, natural key, time), newest last.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from smallhold.apps.life.checks.money import merchant, ref, when
from smallhold.apps.life.daily import domain, hours, local, work_domain, zone
from smallhold.apps.life.models import Event, Message, Person, Transaction
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.values import Profile, Values

ME = "me"
MAX_EVIDENCE = 200  # per relation; months keep the full counts
MERCHANT_KINDS = frozenset({"purchase", "refund", "fee"})
WEBMAIL = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
    "yahoo.com", "ymail.com", "icloud.com", "me.com", "mac.com", "aol.com", "proton.me",
    "protonmail.com", "pm.me", "fastmail.com", "hey.com", "tutanota.com", "zoho.com",
    "mail.com", "gmx.de", "gmx.net", "gmx.com", "web.de", "t-online.de", "yandex.com",
    "yandex.ru", "mail.ru", "qq.com", "163.com", "orange.fr", "free.fr", "libero.it",
    "btinternet.com", "comcast.net", "verizon.net", "att.net", "posteo.de"})
_REPLY = re.compile(r"^\s*((re|fwd?|aw|wg|sv|tr)\s*:\s*)+", re.IGNORECASE)
HABIT_WEEKS = 4  # distinct weeks a summary recurs on before it is a habit, not a streak
LAPSED_AFTER = timedelta(weeks=3)  # none in this long before the span's end: lapsed
PLANNED_SHOWN = 20  # upcoming occurrences a place keeps as references
# a URL, or a bare domain with a path (zoom.us/j/1, meet.google.com/abc-defg)
_URL = re.compile(r"\b(?:[a-z][a-z0-9+.-]*://|www\.)\S*|\b[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}/\S*",
                  re.IGNORECASE)
# words of a LOCATION that says how to call in, not where to go ("Join Zoom Meeting")
_CALL_WORDS = frozenset({
    "zoom", "teams", "microsoft", "ms", "meeting", "meet", "google", "hangouts", "webex",
    "skype", "facetime", "whereby", "jitsi", "gotomeeting", "bluejeans", "slack", "huddle",
    "discord", "signal", "whatsapp", "online", "virtual", "remote", "video", "phone", "call",
    "conference", "dial", "in", "join", "link", "id", "passcode", "password", "pin", "tbd",
    "tba", "n", "a", "na", "none"})
_WORDS = re.compile(r"[^\W\d_]+")


@dataclass
class Entity:
    id: str
    kind: str  # person, organisation, merchant, place, account, habit, goal
    name: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Relation:
    src: str
    kind: str  # emails, meets, pays, works_at, meets_at, visits, holds, does, aims_for,
    # mentions (the model's: extract.py)
    dst: str
    first: str
    last: str
    weight: float  # messages, hours, money spent, sightings, visits, transactions
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    entities: list[Entity]
    relations: list[Relation]


def norm_name(name: str) -> str:
    return " ".join(name.strip().strip("\"'").casefold().split())


def distinctive(name: str) -> bool:
    """A display name specific enough to say two addresses are one person's."""
    return len(name.split()) >= 2 and "@" not in name


def subject_of(text: str) -> str:
    return _REPLY.sub("", text).strip()


@dataclass
class _Seen:
    """What one address was seen with: names, the records it is on, when."""

    names: Counter[str] = field(default_factory=Counter)
    records: set[str] = field(default_factory=set)
    first: str = ""
    last: str = ""
    on_events: bool = False


@dataclass
class Tally:
    """One relation's running counts while a graph is built (rules and model alike)."""

    count: int = 0
    weight: float = 0.0
    first: str = ""
    last: str = ""
    months: Counter[str] = field(default_factory=Counter)
    topics: Counter[str] = field(default_factory=Counter)
    refs: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, at: str, reference: dict[str, Any], weight: float, topic: str = "") -> None:
        self.count, self.weight = self.count + 1, self.weight + weight
        self.first, self.last = min(self.first or at, at), max(self.last, at)
        self.months[at[:7]] += 1
        self.refs.append(reference)
        if topic:
            self.topics[topic] += 1

    def relation(self, src: str, kind: str, dst: str) -> Relation:
        refs = sorted(self.refs, key=lambda r: (r["at"], r["key"]))
        data = {"count": self.count, "months": dict(sorted(self.months.items())),
                "topics": dict(self.topics.most_common(50)), **self.extra,
                "evidence": refs[-MAX_EVIDENCE:],
                "evidence_dropped": max(len(refs) - MAX_EVIDENCE, 0)}
        return Relation(src, kind, dst, self.first, self.last, round(self.weight, 4), data)


def place_name(location: str) -> str:
    """A LOCATION as a place's name; "" when it names none (a call link, "Zoom", "TBD")."""
    text = " ".join(_URL.sub(" ", location).split()).strip(" ,;:|/()[]<>-")
    words = [w.casefold() for w in _WORDS.findall(text)]
    return text if words and not set(words) <= _CALL_WORDS else ""


def habit_key(summary: str) -> str:
    """A summary compared case-, space- and end-punctuation-insensitively ("Gym!" is "gym")."""
    return norm_name(summary).strip(" .,;:!?-–—")


def _alone(event: Event, owner: set[str], my_name: str) -> bool:
    """No one but the owner on ``event`` (see the module's rules)."""
    organizer = (event.organizer.email.lower() if event.organizer and event.organizer.email
                 else "")
    if owner and organizer and organizer not in owner:
        return False
    for person in event.attendees:
        email = person.email.lower()
        if email and email not in owner and email != organizer:
            return False
        if not email and norm_name(person.name) not in ("", my_name):
            return False
    return True


def _add_places(entities: dict[str, Entity], accs: dict[tuple[str, str, str], Tally],
                events: list[Event], owner: set[str], my_name: str, tz: tzinfo,
                now: str) -> None:
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    planned: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        name = place_name(e.location)
        if not name or e.status == "cancelled":
            continue
        key = f"place:{norm_name(name)}"
        spellings[key][name] += 1
        at = _stamp(e.start, tz)
        length = 0.0 if e.all_day else round(hours(e, tz), 4)
        reference = {"kind": "event", "key": e.uid, "at": at, "hours": length,
                     "note": e.summary}
        if at > now:
            planned[key].append(reference)
            continue
        acc = accs[(ME, "visits" if _alone(e, owner, my_name) else "meets_at", key)]
        acc.add(at, reference, 1.0, e.summary.strip())
        acc.extra["hours"] = round(acc.extra.get("hours", 0.0) + length, 4)
    for key, spelled in spellings.items():
        upcoming = sorted(planned[key], key=lambda r: (r["at"], r["key"]))
        entities[key] = Entity(key, "place", spelled.most_common(1)[0][0],
                               {"key": key.removeprefix("place:"),
                                "planned": upcoming[:PLANNED_SHOWN]})


def _add_habits(entities: dict[str, Entity], accs: dict[tuple[str, str, str], Tally],
                events: list[Event], owner: set[str], my_name: str, tz: tzinfo, now: str,
                end: date | None) -> None:
    done: dict[str, list[tuple[str, Event]]] = defaultdict(list)
    last_day = ""
    for e in events:
        if e.status == "cancelled":
            continue
        at = _stamp(e.start, tz)
        last_day = max(last_day, at[:10])
        key = habit_key(e.summary)
        if key and not e.all_day and at <= now and _alone(e, owner, my_name):
            done[key].append((at, e))
    span_end = end or (date.fromisoformat(last_day) if last_day else None)
    for key, occurrences in sorted(done.items()):
        weeks = {date.fromisoformat(at[:10]).isocalendar()[:2] for at, _ in occurrences}
        if len(weeks) < HABIT_WEEKS:
            continue
        habit = f"habit:{key}"
        acc = accs[(ME, "does", habit)]
        for at, e in occurrences:
            length = round(hours(e, tz), 4)
            acc.add(at, {"kind": "event", "key": e.uid, "at": at, "hours": length,
                         "note": e.summary}, length)
        last = acc.last[:10]
        lapsed = span_end is not None and date.fromisoformat(last) <= span_end - LAPSED_AFTER
        acc.extra.update({"weeks": len(weeks), "lapsed": lapsed, "last_done": last})
        spelled = Counter(e.summary.strip() for _, e in occurrences)
        entities[habit] = Entity(habit, "habit", spelled.most_common(1)[0][0],
                                 {"key": key, "weeks": len(weeks), "first": acc.first[:10],
                                  "last": last, "lapsed": lapsed})


def _add_accounts(entities: dict[str, Entity], accs: dict[tuple[str, str, str], Tally],
                  transactions: list[Transaction]) -> None:
    seen: dict[str, tuple[set[str], set[str]]] = {}
    for t in transactions:
        account = " ".join(t.account.split())
        if not account:
            continue
        key, at = f"account:{account}", str(when(t))
        accs[(ME, "holds", key)].add(at, {"kind": "transaction", "key": ref(t).key, "at": at,
                                          "amount": t.amount, "note": t.description}, 1.0)
        kinds, currencies = seen.setdefault(key, (set(), set()))
        kinds.add(t.source.kind)
        currencies.add(t.currency)
    for key, (kinds, currencies) in seen.items():
        entities.setdefault(key, Entity(key, "account", key.removeprefix("account:"), {
            "sources": sorted(kinds), "currencies": sorted(currencies)}))


def _goals(values: Values) -> tuple[list[Entity], list[Relation]]:
    found: list[Entity] = []
    edges: list[Relation] = []
    for rank, priority in enumerate(values.priorities, start=1):
        goal = f"goal:{priority.id}"
        found.append(Entity(goal, "goal", priority.statement,
                            {"priority": priority.id, "rank": rank,
                             "targets": dict(priority.targets)}))
        edges.append(Relation(ME, "aims_for", goal, "", "", 1.0, {
            "rank": rank, "count": 1, "evidence": [
                {"kind": "priority", "key": priority.id, "at": "",
                 "note": priority.statement}]}))
    return found, edges


def _people(record: Message | Event) -> list[Person]:
    if isinstance(record, Message):
        return [record.sender, *record.to, *record.cc]
    return [*([record.organizer] if record.organizer else []), *record.attendees]


def owner_emails(profile: Profile, messages: list[Message]) -> set[str]:
    """The owner's addresses: as they say, else those on at least half the messages."""
    if profile.emails:
        return {e.lower() for e in profile.emails}
    on: Counter[str] = Counter()
    for message in messages:
        on.update({p.email.lower() for p in _people(message) if p.email})
    return {e for e, n in on.items() if n * 2 >= len(messages)} if messages else set()


def _stamp(value: str, tz: tzinfo) -> str:
    return local(value, tz).isoformat(timespec="minutes")


def _sightings(messages: list[Message], events: list[Event],
               tz: tzinfo) -> dict[str, _Seen]:
    seen: dict[str, _Seen] = defaultdict(_Seen)
    records: Iterable[tuple[str, str, Message | Event]] = [
        *((f"m:{m.message_id}", m.date, m) for m in messages),
        *((f"e:{e.uid}:{e.occurrence}", e.start, e) for e in events)]
    for key, at, record in records:
        stamp = _stamp(at, tz)
        for person in _people(record):
            if not person.email:
                continue
            s = seen[person.email.lower()]
            if person.name.strip():
                s.names[" ".join(person.name.strip().strip("\"'").split())] += 1
            s.records.add(key)
            s.first, s.last = min(s.first or stamp, stamp), max(s.last, stamp)
            s.on_events = s.on_events or isinstance(record, Event)
    return dict(seen)


def organisations(seen: dict[str, _Seen], owner: set[str], work: str | None) -> set[str]:
    """Domains that are organisations (see the module's rules)."""
    users: dict[str, set[str]] = defaultdict(set)
    met: set[str] = set()
    for email, s in seen.items():
        if email not in owner and domain(email):
            users[domain(email)].add(email)
            if s.on_events:
                met.add(domain(email))
    own = {domain(e) for e in owner}
    orgs = {d for d, u in users.items()
            if len(u) >= 2 and d in met and d not in WEBMAIL and d not in own}
    return orgs | ({work} if work else set())


def merge(seen: dict[str, _Seen], owner: set[str], orgs: set[str]) -> dict[str, str]:
    """Each address -> the address that names its person (itself unless merged)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for email, s in seen.items():
        labels = {n for n in map(norm_name, s.names) if distinctive(n)}
        if email not in owner and len(labels) == 1:
            groups[labels.pop()].append(email)

    def compatible(a: str, b: str) -> bool:
        apart = not (seen[a].records & seen[b].records)
        da, db = domain(a), domain(b)
        return apart and not (da in orgs and db in orgs and da != db)

    canon = {email: email for email in seen}
    for emails in groups.values():
        clusters: list[list[str]] = []
        for email in sorted(emails, key=lambda e: (-len(seen[e].records), e)):
            home = next((c for c in clusters if all(compatible(email, o) for o in c)), None)
            if home is None:
                clusters.append([email])
            else:
                home.append(email)
                canon[email] = home[0]
    return canon


def build_graph(messages: list[Message], events: list[Event],
                transactions: list[Transaction], values: Values,
                as_of: datetime | None = None) -> Graph:
    """The graph from records alone (pure: ``graph_queries`` reads and keeps it). Events
    starting after ``as_of`` are planned, not met; None counts them all."""
    profile, tz = values.person, zone(values.person)
    now = as_of.astimezone(tz).isoformat(timespec="minutes") if as_of else "~"
    owner = owner_emails(profile, messages)
    seen = _sightings(messages, events, tz)
    work = work_domain(events, Profile(emails=sorted(owner)))
    orgs = organisations(seen, owner, work)
    canon = merge(seen, owner, orgs)
    members: dict[str, list[str]] = defaultdict(list)
    for email in sorted(seen, key=lambda e: (-len(seen[e].records), e)):
        if email not in owner:
            members[canon[email]].append(email)
    by_label: dict[str, set[str]] = defaultdict(set)
    for email in members:
        for name in seen[email].names:
            by_label[norm_name(name)].add(email)
    entities = {ME: Entity(ME, "person", profile.name or min(owner, default="me"),
                           {"self": True, "emails": sorted(owner)})}
    for head, emails in members.items():
        names = sum((seen[e].names for e in emails), Counter[str]())
        best = max(names.items(), key=lambda kv: (distinctive(norm_name(kv[0])), kv[1]),
                   default=(head, 0))[0]
        entities[f"person:{head}"] = Entity(
            f"person:{head}", "person", best,
            {"emails": emails, "names": dict(names.most_common()),
             "organisations": sorted({f"org:{domain(e)}" for e in emails
                                      if domain(e) in orgs})})

    def who(person: Person) -> str | None:
        if person.email:
            email = person.email.lower()
            return ME if email in owner else f"person:{canon.get(email, email)}"
        label = norm_name(person.name)
        if not label:
            return None
        if len(heads := {canon[e] for e in by_label.get(label, set())}) == 1:
            return f"person:{heads.pop()}"
        entities.setdefault(f"person:name:{label}", Entity(
            f"person:name:{label}", "person", person.name.strip(), {"emails": []}))
        return f"person:name:{label}"

    accs: dict[tuple[str, str, str], Tally] = defaultdict(Tally)
    for m in messages:
        at = _stamp(m.date, tz)
        sent = m.sender.email.lower() in owner
        others = [*m.to, *m.cc] if sent else [m.sender]
        for dst in {d for d in map(who, others) if d and d != ME}:
            acc = accs[(ME, "emails", dst)]
            direction = "sent" if sent else "received"
            acc.add(at, {"kind": "message", "key": m.message_id, "at": at, "dir": direction,
                         "note": m.subject}, 1.0, subject_of(m.subject))
            acc.extra[direction] = acc.extra.get(direction, 0) + 1
            if at >= acc.extra.get(f"last_{direction}", {}).get("at", ""):
                acc.extra[f"last_{direction}"] = {"key": m.message_id, "at": at}
    for e in events:
        at = _stamp(e.start, tz)
        if e.all_day or e.status == "cancelled" or at > now:
            continue
        length = round(hours(e, tz), 4)
        for dst in {d for d in map(who, _people(e)) if d and d != ME}:
            accs[(ME, "meets", dst)].add(at, {"kind": "event", "key": e.uid, "at": at,
                                              "hours": length, "note": e.summary},
                                         length, e.summary.strip())
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for t in transactions:
        name = merchant(t)
        if t.kind not in MERCHANT_KINDS or not name:
            continue
        spellings[name][(t.payee or t.description).strip()] += 1
        acc = accs[(ME, "pays", f"merchant:{name.casefold()}")]
        spent = -Decimal(t.amount)
        acc.add(str(when(t)), {"kind": "transaction", "key": ref(t).key, "at": str(when(t)),
                               "amount": t.amount, "note": t.description}, float(spent))
        totals = acc.extra.setdefault("total", {})
        totals[t.currency] = str(Decimal(totals.get(t.currency, "0")) + spent)
    for name, spelled in spellings.items():
        key = f"merchant:{name.casefold()}"
        entities[key] = Entity(key, "merchant", spelled.most_common(1)[0][0], {"key": name})
    my_name = norm_name(profile.name)
    _add_places(entities, accs, events, owner, my_name, tz, now)
    _add_habits(entities, accs, events, owner, my_name, tz, now,
                as_of.astimezone(tz).date() if as_of else None)
    _add_accounts(entities, accs, transactions)
    relations = [acc.relation(*k) for k, acc in sorted(accs.items())]
    works: dict[tuple[str, str], Relation] = {}  # two addresses at one org: one edge
    for email, s in sorted(seen.items()):
        if domain(email) in orgs:
            src = ME if email in owner else f"person:{canon[email]}"
            edge = works.setdefault((src, f"org:{domain(email)}"), Relation(
                src, "works_at", f"org:{domain(email)}", s.first, s.last, 0.0,
                {"email": email, "emails": [], "count": 0}))
            edge.first, edge.last = min(edge.first, s.first), max(edge.last, s.last)
            edge.weight += len(s.records)
            edge.data["count"] += len(s.records)
            edge.data["emails"].append(email)
    relations += works.values()
    for org in sorted(orgs):
        people = {r.src for r in relations if r.kind == "works_at" and r.dst == f"org:{org}"}
        entities[f"org:{org}"] = Entity(f"org:{org}", "organisation", org,
                                        {"domain": org, "work": org == work,
                                         "people": len(people - {ME})})
    goals, aims = _goals(values)
    entities.update((g.id, g) for g in goals)
    relations += aims
    for data in [*(e.data for e in entities.values()), *(r.data for r in relations)]:
        data.setdefault("source", "rule")
    return Graph(list(entities.values()), relations)


def rebuild_graph(store: LifeStore, values: Values,
                  as_of: datetime | None = None) -> dict[str, int]:
    """Build the graph from everything stored and keep it (``graph_queries.rebuild_graph``,
    named here too because this is where callers look for it)."""
    from smallhold.apps.life.graph_queries import rebuild_graph as rebuild

    return rebuild(store, values, as_of)


__all__ = ["HABIT_WEEKS", "LAPSED_AFTER", "MAX_EVIDENCE", "ME", "WEBMAIL", "Entity", "Graph",
           "Relation", "Tally", "build_graph", "distinctive", "habit_key", "merge",
           "norm_name", "organisations", "owner_emails", "place_name", "rebuild_graph",
           "subject_of"]
