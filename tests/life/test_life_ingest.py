"""`smallhold life ingest`: a persona's folder into the vault, once, whole, with problems cited."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from life_data import Personas, smallhold_json

from smallhold.apps.life.ingest import ingest, kind_of
from smallhold.apps.life.models import Problem, Source, Transaction
from smallhold.apps.life.store import LifeStore
from smallhold.store.handle import VaultHandle


def test_a_persona_is_ingested_once_and_counts_match_its_ground_truth(
        life_personas: Personas, tmp_path: Path) -> None:
    persona = life_personas.get(0)
    folder = tmp_path / "exports"
    shutil.copytree(persona.folder, folder)
    (folder / "ground_truth.json").unlink()  # not an export
    first = smallhold_json("life", "ingest", str(folder))
    kinds = {f["file"]: f["kind"] for f in first["files"]}  # type: ignore[index,union-attr]
    assert kinds["calendar.ics"] == "calendar" and kinds["bank.ofx"] == "bank"
    assert kinds["card.csv"] == "card" and kinds["export.xml"] == "health"
    assert kinds["mail.mbox"] == "mail" and first["problems"] == 0
    assert kinds["priorities.toml"] == "values"
    counts = persona.truth["counts"]
    status = smallhold_json("life", "status")
    records = status["records"]
    assert records["message"] == counts["messages"]  # type: ignore[index]
    assert records["transaction"] == counts["card_rows"] + counts["bank_transactions"]  # type: ignore[index]
    assert records["health"] == sum(counts["health_records"].values())  # type: ignore[index]

    again = smallhold_json("life", "ingest", str(folder))
    assert again["added"] == 0
    assert {f["skipped"] for f in again["files"] if f["kind"]} == {"already ingested"}  # type: ignore[union-attr]
    forced = smallhold_json("life", "ingest", "--force", str(folder))
    assert forced["added"] == 0  # read again: every record already known
    assert smallhold_json("life", "status")["records"] == records

    gone = smallhold_json("life", "forget", "mail.mbox")
    assert gone["records"] == counts["messages"]
    after = smallhold_json("life", "status")
    assert "message" not in after["records"]  # type: ignore[operator]
    assert "mail.mbox" not in {s["file"] for s in after["sources"]}  # type: ignore[union-attr]


def test_a_newer_export_adds_only_what_is_new(life_personas: Personas, vault: VaultHandle,
                                              tmp_path: Path) -> None:
    persona = life_personas.get(1)
    newer = persona.folder / "health" / "export.xml"
    lines = newer.read_text(encoding="utf-8").splitlines(keepends=True)
    records = [i for i, line in enumerate(lines) if line.lstrip().startswith("<Record ")]
    older = tmp_path / "older" / "export.xml"  # the same phone's export, a few weeks earlier
    older.parent.mkdir()
    older.write_text("".join(lines[:records[len(records) // 2]]) + "</HealthData>\n",
                     encoding="utf-8")
    store = LifeStore(vault)
    ingest(store, [older])
    before = store.counts()["health"]
    report = ingest(store, [newer])
    after = store.counts()["health"]
    assert 0 < report.files[0].added == after - before < report.files[0].records
    assert after == sum(persona.truth["counts"]["health_records"].values())


def test_the_persons_priorities_are_kept_in_order(life_personas: Personas,
                                                  vault: VaultHandle) -> None:
    from smallhold.apps.life.values import load_values

    persona = life_personas.get(5)
    ingest(LifeStore(vault), [persona.folder / "priorities.toml"])
    values = load_values(vault)
    assert values.person.timezone == persona.timezone
    assert values.person.currency == persona.truth["persona"]["currency"]
    assert [p.id for p in values.priorities][:2] == ["health_first", "family_dinners"]
    priority, minimum = values.target("savings_rate_min") or (None, None)
    assert priority is not None and minimum == 0.2


def test_identical_purchases_on_one_day_stay_two(vault: VaultHandle) -> None:
    def coffee(line: int) -> Transaction:
        return Transaction(account="card", posted="2025-03-03", amount="-4.50", currency="USD",
                           description="BLUE BOTTLE", kind="purchase",
                           source=Source(file="card.csv", location=f"line {line}", kind="card"))

    store = LifeStore(vault)
    assert store.ingest("card.csv", "a", "card", [coffee(2), coffee(3)]).added == 2
    assert store.ingest("card.csv", "b", "card", [coffee(2), coffee(3)]).added == 0


def test_bad_records_are_cited_and_a_failing_file_leaves_nothing(
        vault: VaultHandle, tmp_path: Path) -> None:
    bad = tmp_path / "broken.ics"
    bad.write_text("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\n"
                   "DTSTART:20250301T090000Z\r\nDTEND:20250301T100000Z\r\nSUMMARY:ok\r\n"
                   "END:VEVENT\r\nBEGIN:VEVENT\r\nUID:b\r\nDTSTART:not-a-date\r\n"
                   "END:VEVENT\r\nEND:VCALENDAR\r\n")
    store = LifeStore(vault)
    report = ingest(store, [bad])
    assert report.files[0].added == 1 and report.files[0].problems == 1
    [problem] = store.problems("broken.ics")
    assert problem.location and problem.reason

    def exploding() -> object:
        yield Transaction(account="x", posted="2025-01-01", amount="1", currency="EUR",
                          source=Source(file="x.csv", location="line 2", kind="bank"))
        yield Problem(file="x.csv", location="line 3", reason="bad amount")
        raise OSError("the disk went away")

    with pytest.raises(OSError):
        store.ingest("x.csv", "h", "bank", exploding())  # type: ignore[arg-type]
    assert "transaction" not in store.counts()  # nothing of the file was kept
    assert store.problems("x.csv") == [] and not store.known_source("x.csv", "h")


def test_files_that_are_no_export_are_skipped_not_fatal(tmp_path: Path,
                                                        vault: VaultHandle) -> None:
    tmp_path = tmp_path / "downloads"
    tmp_path.mkdir()
    (tmp_path / "notes.pdf").write_bytes(b"%PDF-1.7")
    sleep = tmp_path / "sleep.csv"
    sleep.write_text("date,sleep hours,steps\n2025-03-01,7.5,8000\n")
    assert kind_of(tmp_path / "notes.pdf") is None and kind_of(sleep) == "health"
    report = ingest(LifeStore(vault), [tmp_path])
    assert [(f.file, f.skipped or f.kind) for f in report.files] == [
        ("notes.pdf", "not an export life reads"), ("sleep.csv", "health")]


def test_values_and_watch_from_the_cli(life_personas: Personas, tmp_path: Path) -> None:
    persona = life_personas.get(2)
    kept = smallhold_json("life", "values", "--set", str(persona.folder / "priorities.toml"))
    assert kept["person"]["timezone"] == persona.timezone
    assert kept["priority"][0]["id"] == "health_first"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    first = smallhold_json("life", "watch", str(inbox), "--once")
    assert first["added"] == 0  # the scheduled work falls due with the first look
    assert {j["job"]: j["action"] for j in first["jobs"]}["check"] == "ran"
    shutil.copy(persona.folder / "mail.mbox", inbox / "mail.mbox")
    landed = smallhold_json("life", "watch", str(inbox), "--once")
    assert landed["added"] == persona.truth["counts"]["messages"]
    assert "check" not in {j["job"] for j in landed["jobs"]}  # not due again for 6 hours
