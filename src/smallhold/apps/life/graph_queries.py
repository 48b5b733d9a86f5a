"""The graph kept in the vault (built by graph.py), and questions answered from it.

``rebuild_graph`` replaces the stored graph in one transaction, after ingest or on first
use; ``graph_is_empty`` tells a command whether to. Each question's answer comes with the
rows that answer it.

Every answer carries the evidence references of the relations it read (kind, natural key,
time), so a caller can show or check the records behind a number. A relation keeps only
its latest ``MAX_EVIDENCE`` references; a windowed answer that may miss older ones says
so (``complete: false``) instead of silently undercounting.

The graph holds the rules' edges and the model's (``mentions``, from ``extract.py``); every
answer row says which (``source``: ``rule`` or ``model:<id>``), so a reader can tell what
was derived from fields from what a model read in free text.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from smallhold.apps.life.daily import local, zone
from smallhold.apps.life.graph import ME, Entity, Graph, Relation, build_graph, norm_name
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.values import Values

EVIDENCE_SHOWN = 20  # references per answer row; the relation keeps more


def save_graph(store: LifeStore, graph: Graph) -> None:
    """Replace the stored graph in one transaction: readers see the old or the new one."""
    with store.handle.transaction() as conn:
        conn.execute("DELETE FROM life_relations")
        conn.execute("DELETE FROM life_entities")
        conn.executemany("INSERT INTO life_entities VALUES (?, ?, ?, ?)",
                         [(e.id, e.kind, e.name, json.dumps(e.data)) for e in graph.entities])
        conn.executemany("INSERT OR REPLACE INTO life_relations VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [(r.src, r.kind, r.dst, r.first, r.last, r.weight,
                           json.dumps(r.data)) for r in graph.relations])


def rebuild_graph(store: LifeStore, values: Values,
                  as_of: datetime | None = None) -> dict[str, int]:
    """Build the graph from everything stored (the rules, then the model's kept readings)
    and keep it; entities counted by kind."""
    from smallhold.apps.life.extract import add_mentions, stored, texts_of

    messages, events = list(store.records("message")), list(store.records("event"))
    graph = build_graph(messages, events, list(store.records("transaction")), values,
                        as_of or data_end(store, zone(values.person)))
    add_mentions(graph, stored(store), values, {t.unit for t in texts_of(messages, events)})
    save_graph(store, graph)
    return dict(Counter(e.kind for e in graph.entities))


def data_end(store: LifeStore, tz: tzinfo) -> datetime | None:
    """The latest time any export but the calendar reaches (health included: the days a
    watch recorded are days lived), at most now; None when there is none."""
    with store.handle.lock:
        rows = store.handle.conn.execute(
            "SELECT max(at) FROM life_records WHERE kind IN ('message', 'transaction', "
            "'health') GROUP BY kind").fetchall()
    ends = [local(at, tz) + (timedelta(days=1, minutes=-1) if len(at) == 10 else timedelta())
            for (at,) in rows if at]
    return min(max(ends), datetime.now(tz)) if ends else None


def graph_is_empty(store: LifeStore) -> bool:
    with store.handle.lock:
        return store.handle.conn.execute("SELECT 1 FROM life_entities LIMIT 1").fetchone() is None


def entities(store: LifeStore, kind: str | None = None) -> dict[str, Entity]:
    with store.handle.lock:
        rows = store.handle.conn.execute(
            "SELECT id, kind, name, data FROM life_entities WHERE ? IS NULL OR kind = ? "
            "ORDER BY id", (kind, kind)).fetchall()
    return {i: Entity(i, k, n, json.loads(d)) for i, k, n, d in rows}


def relations(store: LifeStore, kind: str | None = None, *, src: str | None = None,
              dst: str | None = None) -> list[Relation]:
    with store.handle.lock:
        rows = store.handle.conn.execute(
            "SELECT src, kind, dst, first, last, weight, data FROM life_relations WHERE "
            "(? IS NULL OR kind = ?) AND (? IS NULL OR src = ?) AND (? IS NULL OR dst = ?) "
            "ORDER BY src, kind, dst", (kind, kind, src, src, dst, dst)).fetchall()
    return [Relation(s, k, d, f, la, w, json.loads(data)) for s, k, d, f, la, w, data in rows]


def _refs(relation: Relation | None) -> list[dict[str, Any]]:
    return list(relation.data.get("evidence", [])) if relation else []


def _source(data: dict[str, Any]) -> str:
    return str(data.get("source", "rule"))


def summary(store: LifeStore, limit: int = 10) -> dict[str, Any]:
    """Counts by entity and relation kind, and the people most in touch (messages plus
    meetings), so the first look at a graph shows whether it holds who one expects."""
    found = entities(store)
    kinds: dict[str, int] = {}
    for entity in found.values():
        kinds[entity.kind] = kinds.get(entity.kind, 0) + 1
    edges = relations(store, src=ME)
    by_kind: dict[str, int] = {}
    touch: dict[str, dict[str, Any]] = {}
    by_source: dict[str, int] = {}
    for r in relations(store):
        by_kind[r.kind] = by_kind.get(r.kind, 0) + 1
        origin = "model" if _source(r.data).startswith("model") else "rule"
        by_source[origin] = by_source.get(origin, 0) + 1
    for r in edges:
        if r.kind in ("emails", "meets"):
            row = touch.setdefault(r.dst, {"id": r.dst, "name": found[r.dst].name,
                                           "messages": 0, "meetings": 0, "hours": 0.0})
            row["messages" if r.kind == "emails" else "meetings"] += r.data["count"]
            if r.kind == "meets":
                row["hours"] = round(r.weight, 2)
    top = sorted(touch.values(), key=lambda p: (-(p["messages"] + p["meetings"]), p["id"]))
    return {"entities": kinds, "relations": by_kind, "sources": by_source,
            "top_people": top[:limit]}


def who_did_i_meet_most(store: LifeStore, start: date | None = None, end: date | None = None,
                        limit: int = 10) -> list[dict[str, Any]]:
    """People ranked by meeting hours in [start, end] (local dates, inclusive), then by
    meetings, each with the event occurrences (uid, start, hours) that sum to it."""
    found = entities(store, "person")
    ranked = []
    for r in relations(store, "meets", src=ME):
        events = [ref for ref in _refs(r)
                  if (start is None or date.fromisoformat(ref["at"][:10]) >= start)
                  and (end is None or date.fromisoformat(ref["at"][:10]) <= end)]
        if not events:
            continue
        kept_from = r.data["evidence"][0]["at"][:10] if r.data["evidence"] else ""
        complete = (not r.data.get("evidence_dropped")
                    or (start is not None and kept_from < start.isoformat()))
        person = found.get(r.dst)
        ranked.append({"id": r.dst, "name": person.name if person else r.dst,
                       "emails": person.data.get("emails", []) if person else [],
                       "hours": round(sum(e["hours"] for e in events), 2),
                       "count": len(events), "complete": complete,
                       "events": [{"uid": e["key"], "at": e["at"], "hours": e["hours"],
                                   "summary": e["note"]} for e in events]})
    ranked.sort(key=lambda p: (-p["hours"], -p["count"], p["name"]))
    return ranked[:limit]


def find_person(store: LifeStore, text: str) -> Entity | None:
    """The one person ``text`` names: an address of theirs, their exact name, or the
    start of each word of one name. None when no one or several people fit (a guess
    between two people would answer for the wrong one)."""
    people = entities(store, "person")
    wanted = norm_name(text)
    if "@" in wanted:
        hits = [p for p in people.values() if wanted in p.data.get("emails", [])]
        return hits[0] if len(hits) == 1 else None
    exact = [p for p in people.values()
             if wanted in {norm_name(p.name), *map(norm_name, p.data.get("names", {}))}]
    if exact:
        return exact[0] if len(exact) == 1 else None
    words = wanted.split()
    prefix = [p for p in people.values() if words and all(
        any(n.startswith(w) for n in norm_name(p.name).split()) for w in words)]
    return prefix[0] if len(prefix) == 1 else None


def _timeline(relation: Relation | None, extra: tuple[str, ...]) -> dict[str, Any]:
    if relation is None:
        return {"count": 0}
    data = relation.data
    return {"count": data["count"], "first": relation.first, "last": relation.last,
            "months": data["months"], **{k: data[k] for k in extra if k in data}}


def person(store: LifeStore, name_or_email: str) -> dict[str, Any] | None:
    """Everything the graph holds about one person, with the evidence behind it."""
    found = find_person(store, name_or_email)
    if found is None:
        return None
    mine = {r.kind: r for r in relations(store, src=ME, dst=found.id)}
    works = relations(store, "works_at", src=found.id)
    mail, meets = mine.get("emails"), mine.get("meets")
    contacts = [(r.last, kind) for kind, r in (("mail", mail), ("meeting", meets)) if r]
    last_at, last_kind = max(contacts) if contacts else ("", "")
    evidence = sorted(_refs(mail) + _refs(meets), key=lambda r: (r["at"], r["key"]))
    return {"id": found.id, "name": found.name, "emails": found.data.get("emails", []),
            "names": found.data.get("names", {}),
            "organisations": [{"id": w.dst, "email": w.data["email"], "first": w.first,
                               "last": w.last} for w in works],
            "mail": _timeline(mail, ("sent", "received", "last_sent", "last_received",
                                     "topics")),
            "meetings": {**_timeline(meets, ("topics",)),
                         "hours": round(meets.weight, 2) if meets else 0.0},
            "mentioned": _mentioned(mine.get("mentions")),
            "last_contact": {"at": last_at, "kind": last_kind} if last_at else None,
            "evidence": evidence[-EVIDENCE_SHOWN:]}


def _mentioned(relation: Relation | None) -> dict[str, Any]:
    """Where the model read a name for this entity: its texts, marked with the model."""
    if relation is None:
        return {"count": 0}
    return {**_timeline(relation, ()), "source": _source(relation.data),
            "evidence": _refs(relation)[-EVIDENCE_SHOWN:]}


THINGS = ("place", "habit", "goal", "organisation", "account")


def _thing(store: LifeStore, entity: Entity) -> dict[str, Any]:
    """One place, habit, goal, organisation or account with every edge to it and its rows."""
    edges = relations(store, dst=entity.id)
    shown = ("lapsed", "last", "weeks", "targets", "rank", "domain", "work", "sources",
             "currencies")
    facts: dict[str, Any] = {k: entity.data[k] for k in shown if k in entity.data}
    planned = entity.data.get("planned", [])
    return {"id": entity.id, "kind": entity.kind, "name": entity.name,
            "source": _source(entity.data), **facts,
            **({"planned": planned[:EVIDENCE_SHOWN]} if planned else {}),
            "relations": [{"kind": r.kind, "from": r.src, "source": _source(r.data),
                           "count": r.data.get("count", 0), "first": r.first,
                           "last": r.last, "weight": r.weight,
                           **({"lapsed": r.data["lapsed"]} if "lapsed" in r.data else {}),
                           "evidence": _refs(r)[-EVIDENCE_SHOWN:]} for r in edges]}


def topic(store: LifeStore, word: str) -> dict[str, Any]:
    """People and merchants whose names, mail subjects or event summaries contain
    ``word``, with the matching messages and events as evidence; and the places, habits,
    goals, organisations and accounts whose name (or id) contains it, each with its edges,
    their rows and whether a rule or the model made them."""
    needle = word.casefold().strip()
    found = entities(store)
    people: dict[str, dict[str, Any]] = {}
    for r in relations(store, src=ME):
        other = found.get(r.dst)
        if other is None or r.kind not in ("emails", "meets"):
            continue
        named = needle in other.name.casefold() or any(
            needle in e for e in other.data.get("emails", []))
        hits = [ref for ref in _refs(r) if needle in str(ref.get("note", "")).casefold()]
        if not (named or hits):
            continue
        row = people.setdefault(r.dst, {"id": r.dst, "name": other.name, "named": named,
                                        "messages": 0, "meetings": 0, "evidence": []})
        row["messages" if r.kind == "emails" else "meetings"] += len(hits)
        row["evidence"] = sorted(row["evidence"] + hits, key=lambda x: x["at"])[
            -EVIDENCE_SHOWN:]
    merchants = [{"id": r.dst, "name": found[r.dst].name, "count": r.data["count"],
                  "total": r.data.get("total", {}), "first": r.first, "last": r.last,
                  "evidence": _refs(r)[-EVIDENCE_SHOWN:]}
                 for r in relations(store, "pays", src=ME)
                 if r.dst in found and needle in found[r.dst].name.casefold()]
    orgs = [{"id": o.id, "name": o.name} for o in found.values()
            if o.kind == "organisation" and needle in o.name.casefold()]
    things = [_thing(store, e) for e in found.values() if e.kind in THINGS and needle and (
        needle in e.name.casefold() or needle in e.id.split(":", 1)[-1].casefold())]
    things.sort(key=lambda t: (THINGS.index(t["kind"]), t["name"].casefold()))
    ranked = sorted(people.values(), key=lambda p: (-(p["messages"] + p["meetings"]),
                                                    not p["named"], p["name"]))
    return {"word": word, "people": ranked, "merchants": merchants, "organisations": orgs,
            "things": things}


__all__ = ["data_end", "entities", "find_person", "graph_is_empty", "person", "rebuild_graph",
           "relations", "save_graph", "summary", "topic", "who_did_i_meet_most"]
