"""The people graph: one person per human, organisations by rule, rankings with their rows.

Persona numbers are checked against the ground truth or against the raw export read by the
standard library (``mailbox``), not against the ingester's own view, so a graph bug and an
ingest bug cannot cancel out. The merge rule is checked on a hand-made mailbox.
"""

from __future__ import annotations

import mailbox
import shutil
from datetime import date, timedelta
from email.utils import getaddresses
from pathlib import Path

import pytest
from life_data import Persona, Personas, smallhold_json

from smallhold.apps.life import graph_queries as queries
from smallhold.apps.life.daily import hours, local, zone
from smallhold.apps.life.graph import ME, build_graph, rebuild_graph
from smallhold.apps.life.ingest import ingest
from smallhold.apps.life.models import Event, Message, Person, Source
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.values import Profile, Values, load_values
from smallhold.store.handle import VaultHandle

SEEDS = (0, 5, 2)  # Chicago, Berlin (EUR, German card file), New York


def _graph(persona: Persona, vault: VaultHandle) -> LifeStore:
    store = LifeStore(vault)
    ingest(store, [persona.folder])
    rebuild_graph(store, load_values(vault))
    return store


@pytest.mark.parametrize("seed", SEEDS)
def test_the_family_contact_is_one_person_with_their_mail_and_last_reply(
        life_personas: Personas, vault: VaultHandle, seed: int) -> None:
    persona = life_personas.get(seed)
    store = _graph(persona, vault)
    family = persona.truth["persona"]["family_contact"]
    exchanged = 0
    for message in mailbox.mbox(persona.mbox):
        people = getaddresses([message.get(h, "") for h in ("From", "To", "Cc")])
        exchanged += family["email"] in {address.lower() for _, address in people}
    view = queries.person(store, family["email"])
    assert view is not None and view["name"] == family["name"]
    assert view["emails"] == [family["email"]]
    assert view["mail"]["count"] == exchanged > 0
    truth = persona.truth["patterns"]["neglected_relationship"]
    assert view["mail"]["last_sent"]["key"] == truth["last_reply"]["message_id"]
    assert view["mail"]["last_sent"]["at"][:10] == truth["last_reply"]["date"]
    assert view["organisations"] == []  # a family member's mail provider is no employer
    assert queries.person(store, family["name"]) == view  # by name: the same one person
    assert view["last_contact"]["at"] >= view["mail"]["last_sent"]["at"]
    assert {e["kind"] for e in view["evidence"]} == {"message"}


@pytest.mark.parametrize("seed", SEEDS)
def test_colleagues_work_at_the_employer_and_webmail_is_no_organisation(
        life_personas: Personas, vault: VaultHandle, seed: int) -> None:
    persona = life_personas.get(seed)
    store = _graph(persona, vault)
    employer = persona.truth["persona"]["employer_domain"]
    orgs = queries.entities(store, "organisation")
    assert set(orgs) == {f"org:{employer}"}  # not the persona's, family's or partner's mail
    assert orgs[f"org:{employer}"].data["work"] is True
    colleagues = [p for p in queries.entities(store, "person").values()
                  if p.id != ME and any(e.endswith(f"@{employer}")
                                        for e in p.data["emails"])]
    assert len(colleagues) >= 3
    works = {(r.src, r.dst) for r in queries.relations(store, "works_at")}
    assert all((p.id, f"org:{employer}") in works for p in colleagues)
    assert (ME, f"org:{employer}") in works
    family = persona.truth["persona"]["family_contact"]["email"]
    assert not any(src == f"person:{family}" for src, _ in works)


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_who_i_met_most_last_month_ranks_by_hours_and_cites_real_events(
        life_personas: Personas, vault: VaultHandle, seed: int) -> None:
    persona = life_personas.get(seed)
    store = _graph(persona, vault)
    end = date.fromisoformat(persona.truth["period"]["end"])
    start = end - timedelta(days=29)
    ranked = queries.who_did_i_meet_most(store, start, end, limit=50)
    assert len(ranked) >= 3
    assert [p["hours"] for p in ranked] == sorted((p["hours"] for p in ranked), reverse=True)
    tz = zone(load_values(vault).person)
    events = list(store.records("event"))
    uids = {e.uid for e in events}
    for row in ranked:
        assert row["complete"] and row["count"] == len(row["events"])
        assert {e["uid"] for e in row["events"]} <= uids
        assert all(start <= date.fromisoformat(e["at"][:10]) <= end for e in row["events"])
        # the same sum straight from the records: timed, not cancelled, they were invited
        theirs = [e for e in events if not e.all_day and e.status != "cancelled"
                  and start <= local(e.start, tz).date() <= end
                  and set(row["emails"]) & {p.email for p in
                                            [*e.attendees, *([e.organizer] if e.organizer
                                                             else [])]}]
        assert row["count"] == len(theirs)
        assert row["hours"] == pytest.approx(sum(hours(e, tz) for e in theirs), abs=0.01)
    employer = persona.truth["persona"]["employer_domain"]
    assert ranked[0]["emails"][0].endswith(f"@{employer}")  # a colleague, in a work month


def test_the_cli_answers_each_mode_in_json(life_personas: Personas, tmp_path: Path) -> None:
    persona = life_personas.get(0)
    folder = tmp_path / "exports"
    shutil.copytree(persona.folder, folder)
    (folder / "ground_truth.json").unlink()
    smallhold_json("life", "ingest", str(folder))
    summary = smallhold_json("life", "graph")["summary"]  # built on first use
    assert summary["entities"]["organisation"] == 1 and summary["top_people"]
    end = persona.truth["period"]["end"]
    start = (date.fromisoformat(end) - timedelta(days=29)).isoformat()
    ranked = smallhold_json("life", "graph", "--met-most", "--since", start, "--until",
                            end, "--limit", "3")["met_most"]
    assert 0 < len(ranked) <= 3 and all(p["events"] for p in ranked)  # type: ignore[union-attr]
    family = persona.truth["persona"]["family_contact"]
    person = smallhold_json("life", "graph", family["name"])["person"]
    assert person["emails"] == [family["email"]]  # type: ignore[index]
    subscription = persona.truth["patterns"]["subscription_increase"]
    topic = smallhold_json("life", "graph", subscription["merchant"])["topic"]
    [shop] = topic["merchants"]  # type: ignore[index]
    assert shop["count"] == len(subscription["evidence"]["card_rows"])
    notice = subscription["evidence"]["notice_email_subject"].split()[-1]
    about = smallhold_json("life", "graph", "--rebuild", notice)["topic"]
    assert any(p["messages"] for p in about["people"])  # type: ignore[index]


def _mail(n: int, sender: Person, *to: Person) -> Message:
    return Message(message_id=f"<{n}@x>", thread=f"<{n}@x>", sender=sender, to=list(to),
                   subject=f"note {n}", date=f"2025-03-{n:02d}T10:00:00+00:00",
                   source=Source(file="mail.mbox", location=f"message {n}", kind="mail"))


def _meeting(n: int, *people: Person) -> Event:
    return Event(uid=f"ev{n}", occurrence="", summary="sync",
                 start=f"2025-03-{n:02d}T09:00:00+00:00",
                 end=f"2025-03-{n:02d}T10:00:00+00:00", attendees=list(people),
                 source=Source(file="c.ics", location=f"VEVENT uid=ev{n}", kind="calendar"))


def test_addresses_merge_only_on_one_distinctive_name_and_no_contradiction() -> None:
    me, work = Person(email="me@acme.example", name="Me Myself"), "acme.example"
    alice_w = Person(email="alice@acme.example", name="Alice Smith")
    alice_g = Person(email="Alice.Smith@gmail.com", name="Alice Smith")
    bob_a, bob_b = (Person(email=f"bob@{d}", name="Bob Jones") for d in ("a.example",
                                                                          "b.example"))
    sam_1, sam_2 = Person(email="sam@gmail.com", name="Sam"), Person(email="sam@yahoo.com",
                                                                     name="Sam")
    carol_1 = Person(email="carol@one.example", name="Carol King")
    carol_2 = Person(email="carol@two.example", name="Carol King")
    carol_2b = Person(email="carol@two.example", name="Caroline Price")  # a shared box
    dan_1, dan_2 = Person(email="dan@acme.example", name="Dan Brown"), Person(
        email="dan@globex.example", name="Dan Brown")
    globex = [Person(email=f"{n}@globex.example", name=n) for n in ("eve", "fay")]
    pals = [Person(email=f"{n}@gmail.com", name=f"{n} Pal") for n in ("gus", "hal")]
    messages = [_mail(1, alice_w, me), _mail(2, alice_g, me), _mail(3, me, alice_g),
                _mail(4, bob_a, me, bob_b), _mail(5, sam_1, me), _mail(6, sam_2, me),
                _mail(7, carol_1, me), _mail(8, carol_2, me), _mail(9, carol_2b, me),
                _mail(10, dan_1, me), _mail(11, dan_2, me), _mail(15, alice_w, me)]
    events = [_meeting(12, me, alice_w, dan_1), _meeting(13, me, *globex, dan_2),
              _meeting(14, me, *pals)]
    values = Values(person=Profile(name="Me Myself", emails=[me.email]))
    graph = build_graph(messages, events, [], values)
    people = {e.id: e for e in graph.entities if e.kind == "person"}
    alice = people["person:alice@acme.example"]  # seen most: names the merged person
    assert alice.data["emails"] == ["alice@acme.example", "alice.smith@gmail.com"]
    assert "person:alice.smith@gmail.com" not in people
    for apart in ("bob@a.example", "bob@b.example", "sam@gmail.com", "sam@yahoo.com",
                  "carol@one.example", "carol@two.example", "dan@acme.example",
                  "dan@globex.example"):
        assert people[f"person:{apart}"].data["emails"] == [apart]  # never merged
    orgs = {e.id for e in graph.entities if e.kind == "organisation"}
    assert orgs == {f"org:{work}", "org:globex.example"}  # gmail: 3 on events, still no org
    mail = {r.dst: r for r in graph.relations if r.kind == "emails"}
    assert mail[alice.id].data["count"] == 4 and mail[alice.id].data["sent"] == 1
    assert mail[alice.id].data["last_sent"]["key"] == "<3@x>"
    works = {(r.src, r.dst) for r in graph.relations if r.kind == "works_at"}
    assert (alice.id, f"org:{work}") in works and (ME, f"org:{work}") in works
    assert ("person:dan@globex.example", "org:globex.example") in works
    assert len(works) == len([r for r in graph.relations if r.kind == "works_at"])
    meets = {r.dst: r.weight for r in graph.relations if r.kind == "meets"}
    assert meets[alice.id] == 1.0 and ME not in meets
