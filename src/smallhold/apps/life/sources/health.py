"""Apple Health ``export.xml`` (gigabytes, streamed) and simple sleep/steps CSVs.

export.xml is read with expat directly (``xml.parsers.expat``, the parser under ElementTree)
in 1 MiB chunks: a start-element callback keeps only the attributes of top-level ``Record``
elements, so no tree is built, nothing needs clearing and memory stays flat in the file's
size. It is also faster than ``ElementTree.iterparse``, which builds an Element per tag.

The internal DTD is never parsed. The root element is found by a scan of the prolog and
expat is fed the XML declaration plus the document from the root on, so no entity can be
declared, let alone expanded (a billion-laughs file fails at its first ``&lol;`` as an
undefined entity: one ``Problem``); external entities are never fetched. This also reads
real iOS 16 exports, whose DTD is malformed (expat stops at its line 156), and the control
characters (``\\x0b``) some exports hold are dropped, as XML 1.0 forbids them anyway.
``defusedxml`` was not used: it switches ElementTree to its pure-Python parser (slower) and
would still refuse those broken DTDs.

Only top-level Records count: Apple repeats a Correlation's Records at the top level.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from xml.parsers import expat

from smallhold.apps.life.errors import SourceError
from smallhold.apps.life.models import HealthKind, HealthSample, Problem, Source
from smallhold.apps.life.sources.csvbank import read_text, sniff_delimiter

CHUNK = 1 << 20
PROLOG = 8 << 20  # the DTD is ~10 KB; a root element later than this is not an export
SLEEP = "HKCategoryTypeIdentifierSleepAnalysis"
QUANTITIES: dict[str, HealthKind] = {
    "HKQuantityTypeIdentifierStepCount": "steps",
    "HKQuantityTypeIdentifierHeartRate": "heart_rate",
    "HKQuantityTypeIdentifierRestingHeartRate": "resting_heart_rate"}
STAGES: dict[str, HealthKind] = {
    "InBed": "sleep_in_bed", "Awake": "sleep_awake", "Asleep": "sleep_asleep",
    "AsleepUnspecified": "sleep_asleep", "AsleepCore": "sleep_asleep",
    "AsleepDeep": "sleep_asleep", "AsleepREM": "sleep_asleep"}
OLD_STAGES = {"0": "InBed", "1": "AsleepUnspecified", "2": "Awake", "3": "AsleepCore",
              "4": "AsleepDeep", "5": "AsleepREM"}  # HKCategoryValueSleepAnalysis raw values
_CONTROL = bytes(c for c in range(32) if c not in (9, 10, 13))
_APPLE_DATE = re.compile(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) ?([+-]\d\d)(\d\d)")


def apple_date(text: str) -> str:
    """"2024-03-10 06:41:00 -0400" as ISO 8601 with its offset; "" when unreadable."""
    found = _APPLE_DATE.fullmatch(text)
    if found:
        day, clock, hours, minutes = found.groups()
        return f"{day}T{clock}{hours}:{minutes}"
    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        return ""


def _root_start(head: bytes) -> int:
    """Where the root element starts, skipping the XML declaration, comments and the DTD."""
    at = 0
    while (at := head.find(b"<", at)) >= 0:
        if head.startswith(b"<!--", at):
            at = head.find(b"-->", at) + 3 if b"-->" in head[at:] else -1
            if at < 0:
                return -1
        elif head[at + 1:at + 2].isalpha() or head[at + 1:at + 2] in (b"_", b":"):
            return at
        else:
            at += 1
    return -1


def record_sample(n: int, attrs: dict[str, str], file: str) -> HealthSample | Problem:
    """One Record's attributes as a sample (kind "other" for the types life does not read)."""
    where = f"record {n}"
    kind_of = attrs.get("type", "")
    start, end = apple_date(attrs.get("startDate", "")), apple_date(attrs.get("endDate", ""))
    if not start or not end:
        return Problem(file=file, location=where, reason="Record without a readable "
                       f"startDate/endDate ({attrs.get('startDate')!r})")
    raw = attrs.get("value", "")
    stage, value, kind = "", None, QUANTITIES.get(kind_of, "other")
    if kind_of == SLEEP:
        stage = OLD_STAGES.get(raw, raw.removeprefix("HKCategoryValueSleepAnalysis"))
        if stage not in STAGES:
            return Problem(file=file, location=where, reason=f"unknown sleep value {raw!r}")
        kind = STAGES[stage]
    else:
        try:
            value = float(raw)
        except ValueError:
            if kind != "other":
                return Problem(file=file, location=where, reason=f"value {raw!r} is no number")
    return HealthSample(kind=kind, type=kind_of, start=start, end=end, value=value,
                        stage=stage, unit=attrs.get("unit", ""),
                        device=attrs.get("sourceName", ""),
                        source=Source(file=file, location=where, kind="health"))


def parse_apple_health(path: Path, *, progress: Callable[[int], None] | None = None,
                       other: bool = False) -> Iterator[HealthSample | Problem]:
    """Sleep, steps, heart-rate and resting-heart-rate Records of an Apple Health export.

    ``progress(n)`` is called after each 1 MiB with the Records read so far. ``other=True``
    also yields every other Record type as kind "other": off by default, since most of
    a real export is energy and distance samples life does not use, and each yielded sample
    costs (bench: a third "other" takes 127 k to 100 k Records/s). A file
    cut short yields everything before the break, then one Problem naming the line.
    """
    wanted = {SLEEP, *QUANTITIES}
    pending: list[tuple[int, dict[str, str]]] = []
    depth, count = 0, 0

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth, count
        depth += 1
        if depth == 2 and name == "Record":
            count += 1
            if other or attrs.get("type") in wanted:
                pending.append((count, attrs))
        elif depth == 1 and name != "HealthData":
            raise SourceError(f"{path.name} is not an Apple Health export (root <{name}>).")

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1

    def refuse_entity(*args: object) -> None:  # unreachable without a DTD; kept as a guard
        raise SourceError(f"{path.name} declares XML entities; refusing to expand them.")

    parser = expat.ParserCreate()
    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.EntityDeclHandler = refuse_entity
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    with path.open("rb") as handle:
        head = handle.read(PROLOG)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise SourceError(f"{path.name} is UTF-16; Apple Health exports are UTF-8.")
        root = _root_start(head)
        if root < 0:
            raise SourceError(f"{path.name} has no root element in its first "
                              f"{PROLOG >> 20} MiB: not an Apple Health export.")
        declaration = re.match(rb"\s*(<\?xml[^>]*\?>)", head)
        skipped = head.count(b"\n", 0, root)  # expat's line numbers start after the DTD
        chunk = (declaration.group(1) if declaration else b"") + head[root:]
        final = False
        while True:
            try:
                parser.Parse(chunk.translate(None, _CONTROL), final)
            except expat.ExpatError as err:
                yield from (record_sample(n, a, path.name) for n, a in pending)
                yield Problem(file=path.name, location=f"line {(err.lineno or 0) + skipped}",
                              reason=f"export.xml breaks here ({expat.ErrorString(err.code)})"
                              f"; the {count} Records before it were read")
                return
            yield from (record_sample(n, a, path.name) for n, a in pending)
            pending.clear()
            if progress:
                progress(count)
            if final:
                return
            chunk = handle.read(CHUNK)
            final = not chunk


# -- sleep and steps CSVs -----------------------------------------------------------------

_HEADS: list[tuple[str, re.Pattern[str]]] = [
    ("resting", re.compile(r"resting|ruhepuls")),
    ("heart", re.compile(r"heart|\bhr\b|\bbpm\b|puls")),
    ("steps", re.compile(r"step|schritte")),
    ("start", re.compile(r"^(start|start ?(time|date)|begin|bedtime|sleep start|von|from)$")),
    ("end", re.compile(r"^(end|end ?(time|date)|wake( ?up| time)?|sleep end|bis|to)$")),
    ("sleep", re.compile(r"sleep|schlaf")),
    ("date", re.compile(r"^(date|day|datum|tag)$"))]
_TIMES = ["%Y-%m-%d", "%m/%d/%Y %H:%M", "%m/%d/%Y %I:%M %p", "%d.%m.%Y %H:%M", "%m/%d/%Y",
          "%d.%m.%Y", "%d/%m/%Y %H:%M", "%d/%m/%Y"]


def health_columns(header: list[str]) -> dict[str, int]:
    """Column roles by name: date or start/end, and steps, sleep, heart rate values."""
    roles: dict[str, int] = {}
    for index, column in enumerate(header):
        name = column.replace("\ufeff", "").strip().lower()
        role = next((r for r, pattern in _HEADS if pattern.search(name)), None)
        if role and role not in roles:
            roles[role] = index
    when = "date" in roles or ("start" in roles and "end" in roles)
    return roles if when and {"steps", "sleep", "heart", "resting", "end"} & set(roles) else {}


def _when(text: str) -> str:
    text = text.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        pass
    for fmt in _TIMES:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return parsed.date().isoformat() if "%H" not in fmt else parsed.isoformat()
    raise ValueError(f"{text!r} is not a date")


def _table(path: Path) -> tuple[list[tuple[int, list[str]]], list[str], dict[str, int]]:
    import csv
    import io

    text = read_text(path)
    reader = csv.reader(io.StringIO(text), delimiter=sniff_delimiter(text))
    rows, line = [], 1
    for row in reader:
        rows.append((line, row))
        line = reader.line_num + 1
    for at, (_, row) in enumerate(rows[:20]):
        if roles := health_columns(row):
            return rows[at + 1:], row, roles
    return [], [], {}


def looks_like_health_csv(path: Path) -> bool:
    """Whether a CSV is a sleep/steps/heart-rate table (else ingest treats it as money)."""
    try:
        return bool(_table(path)[2])
    except (OSError, UnicodeError):
        return False


def parse_health_csv(path: Path) -> Iterator[HealthSample | Problem]:
    """Samples from a generic CSV. Accepted: a ``date``/``day``/``Datum`` column with any of
    ``steps``, ``sleep (hours|h|minutes)``, ``heart rate``/``bpm``, ``resting heart rate``;
    or ``start`` and ``end`` times (a sleep interval, value = its hours unless a sleep column
    gives them). Dates are ISO, ``MM/DD/YYYY`` or ``DD.MM.YYYY``, with an optional time; a
    time without an offset stays floating (the person's local time)."""
    rows, header, roles = _table(path)
    if not roles:
        raise SourceError(f"{path.name}: no date (or start/end) column with steps, sleep or "
                          "heart-rate values in its first 20 rows.")
    minutes = "sleep" in roles and "min" in header[roles["sleep"]].lower()
    units = {"steps": ("steps", "count"), "sleep": ("sleep_asleep", "h"),
             "heart": ("heart_rate", "count/min"), "resting": ("resting_heart_rate",
                                                              "count/min")}
    for line, row in rows:
        if not any(c.strip() for c in row):
            continue
        where = Source(file=path.name, location=f"line {line}", kind="health")
        try:
            cell = {role: row[i].strip() if i < len(row) else "" for role, i in roles.items()}
            start = _when(cell.get("start") or cell["date"])
            end = _when(cell["end"]) if cell.get("end") else start
            samples = []
            for role, (kind, unit) in units.items():
                if cell.get(role):
                    value = float(cell[role].replace(",", "."))
                    value = value / 60 if role == "sleep" and minutes else value
                    samples.append(HealthSample(kind=kind, type=header[roles[role]],
                                                start=start, end=end, value=value, unit=unit,
                                                source=where))
            if not samples and "start" in roles and "T" in start:
                hours = (datetime.fromisoformat(end) - datetime.fromisoformat(start))
                samples.append(HealthSample(kind="sleep_asleep", type="sleep", start=start,
                                            end=end, value=hours.total_seconds() / 3600,
                                            unit="h", source=where))
        except (ValueError, KeyError) as err:
            yield Problem(file=path.name, location=f"line {line}",
                          reason=f"unreadable row: {err}")
            continue
        yield from samples
