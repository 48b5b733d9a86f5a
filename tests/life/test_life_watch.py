"""The check on demand and as the 6-hourly durable job: alerts kept once, with evidence."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner
from life_data import Personas, smallhold_json

from smallhold.apps.life import APP
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.watch import durable_check, slot_of
from smallhold.cli import main
from smallhold.kit import Home, Overrides, ScriptedIO


def test_check_finds_the_planted_patterns_with_evidence_and_keeps_them_once(
        life_personas: Personas, tmp_path: Path) -> None:
    persona = life_personas.get(2)
    folder = tmp_path / "exports"
    shutil.copytree(persona.folder, folder)
    (folder / "ground_truth.json").unlink()
    smallhold_json("life", "ingest", str(folder))
    as_of = persona.truth["period"]["as_of"]
    first = smallhold_json("life", "check", "--as-of", as_of)
    kinds = sorted(a["kind"] for a in first["alerts"])  # type: ignore[union-attr]
    assert set(persona.truth["patterns"]) <= set(kinds)
    assert first["new"] == len(kinds)
    assert all(a["evidence"] and a["rule"] for a in first["alerts"])  # type: ignore[union-attr]
    again = smallhold_json("life", "check", "--as-of", as_of)
    assert again["new"] == 0  # the same alerts, recognised by their content
    kept = smallhold_json("life", "alerts")["alerts"]
    assert sorted(a["kind"] for a in kept) == kinds  # type: ignore[union-attr]
    one = kept[0]["id"][:8]  # type: ignore[index]
    shown = CliRunner().invoke(main, ["life", "alerts", one])
    assert shown.exit_code == 0 and "rule:" in shown.output


def test_the_durable_check_runs_once_per_six_hour_slot(life_personas: Personas) -> None:
    persona = life_personas.get(0)
    overrides = Overrides(io=ScriptedIO())
    with Home.open(app=APP, overrides=overrides) as home:
        from smallhold.apps.life.ingest import ingest

        ingest(LifeStore(home.vault), [persona.folder / "mail.mbox",
                                       persona.folder / "priorities.toml"])
        noon = datetime(2030, 1, 1, 12, 5, tzinfo=UTC)
        first = durable_check(home, noon)
        assert first.alerts >= 1 and first.new == first.alerts
        again = durable_check(home, noon.replace(hour=17))  # the same 12-18 slot: not re-run
        assert again.new == 0 and again.alerts == first.alerts
        assert slot_of(noon) == "2030-01-01T12" and slot_of(noon.replace(hour=18)) != \
            slot_of(noon)
    listed = smallhold_json("jobs", "list", "life")
    assert [(j["job"], j["power"]) for j in listed["jobs"]] == [  # type: ignore[union-attr]
        ("check", "anytime"), ("consolidate", "background")]


def test_decide_cites_facts_from_the_data_and_the_model_writes_the_prose(
        life_personas: Personas, vault: object, settings: object, paths: object) -> None:
    from datetime import date

    from smallhold.apps.life.daily import load_records
    from smallhold.apps.life.decide import decide
    from smallhold.apps.life.ingest import ingest
    from smallhold.apps.life.values import load_values
    from smallhold.runtime import Runtime
    from smallhold.runtime.backends.scripted import ScriptedBackend

    persona = life_personas.get(1)
    store = LifeStore(vault)  # type: ignore[arg-type]
    ingest(store, [persona.folder])
    backend = ScriptedBackend(["It trades money for time [F1]. What I do not know: the rent."])
    runtime = Runtime(settings, paths, backend=backend, app="life")  # type: ignore[arg-type]
    as_of = date.fromisoformat(persona.truth["period"]["as_of"])
    decision = decide("take the job offer in Berlin?", load_records(store),
                      load_values(vault), [], as_of, runtime)  # type: ignore[arg-type]
    topics = [f.topic for f in decision.facts]
    assert topics[0] == "money" and "time" in topics and "health" in topics
    months = persona.truth["months"][-3:]
    assert months[0]["month"] in decision.facts[0].text  # the numbers come from the data
    sent = backend.requests[0].messages[1].content
    assert "[F1] (money)" in sent and "Health first" in sent.split("Facts")[0]
    assert decision.answer.startswith("It trades money for time [F1]")
