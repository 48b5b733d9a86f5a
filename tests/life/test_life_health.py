"""life's health sources: Apple Health export.xml against the personas' ground truth, the
ways real exports break (cut files, iOS 16's broken DTD, control characters), entity bombs,
and generic sleep/steps CSVs."""

from __future__ import annotations

import resource
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from life_data import SEEDS, Personas

from smallhold.apps.life.errors import SourceError
from smallhold.apps.life.models import HealthSample, Problem
from smallhold.apps.life.sources.health import (
    apple_date,
    looks_like_health_csv,
    parse_apple_health,
    parse_health_csv,
)


def split(items: list[HealthSample | Problem]) -> tuple[list[HealthSample], list[Problem]]:
    return ([i for i in items if isinstance(i, HealthSample)],
            [i for i in items if isinstance(i, Problem)])


def nightly_sleep(samples: list[HealthSample]) -> dict[str, float]:
    """The README's rule: Asleep* stages inside an InBed interval, on the InBed's end date."""
    asleep = [(datetime.fromisoformat(s.start), datetime.fromisoformat(s.end))
              for s in samples if s.kind == "sleep_asleep"]
    nights: dict[str, float] = defaultdict(float)
    for bed in (s for s in samples if s.kind == "sleep_in_bed"):
        start, end = datetime.fromisoformat(bed.start), datetime.fromisoformat(bed.end)
        nights[bed.end[:10]] += sum((b - a).total_seconds() for a, b in asleep
                                    if a >= start and b <= end) / 3600
    return nights


@pytest.mark.parametrize("seed", SEEDS)
def test_persona_health_matches_ground_truth(life_personas: Personas, seed: int) -> None:
    persona = life_personas.get(seed)
    seen: list[int] = []
    samples, problems = split(list(parse_apple_health(persona.folder / "health" / "export.xml",
                                                      progress=seen.append)))
    counts = persona.truth["counts"]
    assert not problems and seen and seen[-1] == sum(counts["health_records"].values())
    assert Counter(s.type for s in samples) == Counter(counts["health_records"])
    steps: dict[str, float] = defaultdict(float)
    for s in samples:
        if s.kind == "steps":
            steps[s.start[:10]] += s.value or 0
    assert sum(steps.values()) == counts["steps_total"]
    sleep = nightly_sleep(samples)
    assert sum(sleep.values()) == pytest.approx(counts["sleep_hours_total"], abs=0.02)
    for day in persona.truth["daily"]:
        assert steps[day["date"]] == day["steps"], day["date"]
        assert sleep[day["date"]] == pytest.approx(day["sleep_hours"], abs=1e-3), day["date"]
    first = samples[0]
    assert first.device.endswith("iPhone") and "’" in first.device
    assert first.source.location == "record 1" and first.start[10] == "T"
    assert {s.stage for s in samples if s.kind == "sleep_asleep"} == {
        "AsleepCore", "AsleepDeep", "AsleepREM"}


def test_truncated_export_keeps_what_came_before(life_personas: Personas,
                                                 tmp_path: Path) -> None:
    data = (life_personas.get(0).folder / "health" / "export.xml").read_bytes()
    cut = data[: int(len(data) * 0.6)]
    path = tmp_path / "export.xml"
    path.write_bytes(cut)
    samples, problems = split(list(parse_apple_health(path)))
    complete = cut.count(b"<Record ") - (0 if cut.endswith(b"/>\n") else 1)  # the cut one
    assert len(samples) == complete and len(problems) == 1
    lines = cut.count(b"\n") + 1
    assert problems[0].location == f"line {lines}"


HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n'
RECORD = (b' <Record type="HKQuantityTypeIdentifierStepCount" sourceName="P" unit="count" '
          b'startDate="2024-03-10 06:41:00 -0400" endDate="2024-03-10 06:50:00 -0400" '
          b'value="%d"/>\n')


def _export(path: Path, dtd: bytes, records: bytes) -> Path:
    path.write_bytes(HEAD + dtd + b'<HealthData locale="en_US">\n' + records +
                     b"</HealthData>\n")
    return path


def test_entity_bomb_is_never_expanded(tmp_path: Path) -> None:
    lol = b'<!ENTITY lol0 "lollollollollollollollollollol">\n' + b"".join(
        b'<!ENTITY lol%d "%s">\n' % (i, b"".join(b"&lol%d;" % (i - 1) for _ in range(10)))
        for i in range(1, 10))
    dtd = b"<!DOCTYPE HealthData [\n" + lol + b"]>\n"
    bomb = RECORD.replace(b'sourceName="P"', b'sourceName="&lol9;"')
    path = _export(tmp_path / "export.xml", dtd, RECORD % 1 + bomb % 2 + RECORD % 3)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    samples, problems = split(list(parse_apple_health(path)))
    assert time.monotonic() - started < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB
    assert [s.value for s in samples] == [1]
    assert len(problems) == 1 and "undefined entity" in problems[0].reason
    assert problems[0].location == "line 16"  # the bomb Record's own line
    # declared but never used: the DTD is skipped, every Record is read
    path = _export(tmp_path / "declared.xml", dtd, RECORD % 1 + RECORD % 2)
    assert [s.value for s in parse_apple_health(path) if isinstance(s, HealthSample)] == [1, 2]


def test_ios16_broken_dtd_and_control_characters(tmp_path: Path) -> None:
    dtd = (b"<!DOCTYPE HealthData [\n<!ATTLIST VisionPrescription\n  type CDATA #REQUIRED\n"
           b"<!ELEMENT Record ((MetadataEntry)*)>\n]>\n")
    records = (RECORD % 5).replace(b'sourceName="P"', b'sourceName="Watch\x0b"') + \
        b' <Correlation type="X">\n' + RECORD % 99 + b" </Correlation>\n"
    samples, problems = split(list(parse_apple_health(_export(tmp_path / "e.xml", dtd,
                                                              records))))
    assert not problems and [(s.value, s.device) for s in samples] == [(5.0, "Watch")]


def test_other_types_and_not_an_export(tmp_path: Path) -> None:
    energy = (RECORD % 7).replace(b"StepCount", b"ActiveEnergyBurned")
    path = _export(tmp_path / "e.xml", b"", energy)
    assert list(parse_apple_health(path)) == []
    [sample] = list(parse_apple_health(path, other=True))
    assert isinstance(sample, HealthSample) and (sample.kind, sample.value) == ("other", 7.0)
    wrong = tmp_path / "w.xml"
    wrong.write_bytes(HEAD + b"<rss><channel/></rss>")
    with pytest.raises(SourceError):
        list(parse_apple_health(wrong))


def test_apple_date() -> None:
    assert apple_date("2024-03-10 06:41:00 -0400") == "2024-03-10T06:41:00-04:00"
    assert apple_date("2024-03-10 06:41:00 +0530") == "2024-03-10T06:41:00+05:30"
    assert apple_date("2024-03-10T06:41:00+01:00") == "2024-03-10T06:41:00+01:00"
    assert apple_date("yesterday") == ""


def test_health_csvs(tmp_path: Path) -> None:
    steps = tmp_path / "steps.csv"
    steps.write_text("date,steps\n2024-03-01,8000\n2024-03-02,lots\n", encoding="utf-8")
    samples, problems = split(list(parse_health_csv(steps)))
    assert [(s.kind, s.start, s.value) for s in samples] == [("steps", "2024-03-01", 8000)]
    assert [p.location for p in problems] == ["line 3"]
    sleep = tmp_path / "sleep.csv"
    sleep.write_text("Date,Sleep (hours),Resting HR\n03/01/2024,7.5,55\n", encoding="utf-8")
    samples, _ = split(list(parse_health_csv(sleep)))
    assert [(s.kind, s.value) for s in samples] == [("sleep_asleep", 7.5),
                                                    ("resting_heart_rate", 55.0)]
    spans = tmp_path / "spans.csv"
    spans.write_text("start;end\n2024-03-01 23:00;2024-03-02 06:30\n", encoding="utf-8")
    [night] = list(parse_health_csv(spans))
    assert isinstance(night, HealthSample) and night.value == 7.5
    money = tmp_path / "card.csv"
    money.write_text("Date,Description,Amount\n2024-03-01,X,-1\n", encoding="utf-8")
    assert looks_like_health_csv(steps) and not looks_like_health_csv(money)
    with pytest.raises(SourceError):
        list(parse_health_csv(money))
