"""The nightly consolidation: a memory per finished month, from the numbers, written once."""

from __future__ import annotations

from datetime import date

from life_data import Personas, smallhold_json

from smallhold.apps.life.consolidate import KIND, consolidate, month_summaries
from smallhold.apps.life.daily import load_records
from smallhold.apps.life.ingest import ingest
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.values import load_values
from smallhold.store.handle import VaultHandle
from smallhold.store.memory import MemoryStore
from smallhold.store.memory.store import TextEmbedder


def test_each_finished_month_becomes_one_summary_from_the_data(
        life_personas: Personas, vault: VaultHandle, embedder: TextEmbedder) -> None:
    persona = life_personas.get(0)
    store = LifeStore(vault)
    ingest(store, [persona.folder])
    values, records = load_values(vault), load_records(store)
    as_of = date.fromisoformat(persona.truth["period"]["as_of"])
    summaries = month_summaries(records, values, as_of)
    assert summaries and all(s.month < f"{as_of:%Y-%m}" for s in summaries)
    truth = {m["month"]: m for m in persona.truth["months"]}
    for summary in summaries:
        if summary.month in truth:  # the month's money, as the data says it
            assert f"income {truth[summary.month]['income']:,.2f}" in summary.text
    memory = MemoryStore(vault, embedder)
    written, _actions = consolidate(memory, records, values, as_of)
    assert written == len(summaries)
    again, _ = consolidate(memory, records, values, as_of)
    assert again == 0  # safe to run every night
    kept = memory.list(kind=KIND, limit=100)
    assert {t for m in kept for t in m.tags if t.startswith("month:")} == {
        f"month:{s.month}" for s in summaries}


def test_the_nightly_job_is_declared_and_the_cli_shows_what_it_kept(
        life_personas: Personas) -> None:
    persona = life_personas.get(5)
    smallhold_json("life", "ingest", str(persona.folder))
    jobs = smallhold_json("jobs", "list", "life")["jobs"]
    assert [(j["job"], j["power"]) for j in jobs] == [("check", "anytime"),
                                                      ("consolidate", "background")]
    shown = smallhold_json("life", "memory", "--now")
    assert shown["written"] >= 2 and len(shown["memories"]) == shown["written"]
    assert all(m["text"].startswith("In ") for m in shown["memories"])
