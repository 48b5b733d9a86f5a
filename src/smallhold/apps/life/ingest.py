"""Ingest: which export a file is, its parser, and one transaction per file.

A file is recognised by what it holds, not its name alone (a bank's CSV and a sleep app's
CSV share an extension; an Apple Health export is an .xml among many). A file already
ingested with the same content is skipped without reading it; a changed or newer export is
read whole and only its new records are added (records are keyed by content). Bad records
are reported with their location and the good ones still count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from smallhold.apps.life.errors import SourceError
from smallhold.apps.life.models import Problem, Record
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.values import (
    load_values,
    looks_like_values,
    read_values,
    save_values,
)
from smallhold.runtime.assets import sha256_file

SourceKind = Literal["calendar", "bank", "card", "health", "mail", "values"]
SKIP = {".DS_Store", "Thumbs.db"}
Progress = Callable[[str, int], None]  # (file name, records read so far)


@dataclass
class FileReport:
    file: str
    kind: str
    records: int = 0
    added: int = 0
    problems: int = 0
    skipped: str = ""  # why the file was not read (already ingested, not an export)


@dataclass
class IngestReport:
    files: list[FileReport] = field(default_factory=list)

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def problems(self) -> int:
        return sum(f.problems for f in self.files)


def _head(path: Path, size: int = 4096) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)


def kind_of(path: Path) -> SourceKind | None:
    """Which export ``path`` is, from its first bytes (and its name where they are mute)."""
    head = _head(path)
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    upper = text[:2048].upper()
    suffix = path.suffix.lower()
    if looks_like_values(path):
        return "values"
    if upper.startswith(b"BEGIN:VCALENDAR") or suffix == ".ics":
        return "calendar"
    if b"<HEALTHDATA" in upper or (b"HEALTHKIT" in upper and suffix == ".xml"):
        return "health"
    if b"OFXHEADER" in upper or b"<OFX>" in upper or suffix in (".ofx", ".qfx"):
        return "bank"
    if text.startswith(b"From ") or suffix in (".mbox", ".mbx"):
        return "mail"
    if suffix in (".csv", ".txt", ".tsv"):
        from smallhold.apps.life.sources.health import looks_like_health_csv

        return "health" if looks_like_health_csv(path) else "card"
    return None


def _parse(path: Path, kind: SourceKind, store: LifeStore,
           progress: Progress | None) -> Iterator[Record | Problem]:
    if kind == "calendar":
        from smallhold.apps.life.sources.calendar import parse_calendar

        return parse_calendar(path)
    if kind == "mail":
        from smallhold.apps.life.sources.mail import parse_mbox

        return parse_mbox(path)
    if kind == "bank":
        from smallhold.apps.life.sources.money import parse_ofx

        return parse_ofx(path)
    if kind == "health":
        from smallhold.apps.life.sources.health import parse_apple_health, parse_health_csv

        if path.suffix.lower() == ".xml":
            counter = (lambda n: progress(path.name, n)) if progress else None
            return parse_apple_health(path, progress=counter)
        return parse_health_csv(path)
    from smallhold.apps.life.sources.money import parse_csv_remembering

    return parse_csv_remembering(path, store, load_values(store.handle).person.currency)


def walk(paths: list[Path]) -> Iterator[Path]:
    """Files under ``paths`` (folders recursively), in a stable order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.name not in SKIP
                              and not p.name.startswith("."))
        elif path.is_file():
            yield path
        else:
            raise SourceError(f"{path} does not exist.")


def ingest(store: LifeStore, paths: list[Path], *, progress: Progress | None = None,
           force: bool = False) -> IngestReport:
    """Ingest every export under ``paths``; unknown files are listed as skipped."""
    report = IngestReport()
    # the person's values first: a bank CSV with no currency column takes their stated one
    for path in sorted(walk(paths), key=lambda p: not looks_like_values(p)):
        kind = kind_of(path)
        if kind is None:
            report.files.append(FileReport(path.name, "", skipped="not an export life reads"))
            continue
        digest = sha256_file(path)
        if not force and store.known_source(path.name, digest):
            report.files.append(FileReport(path.name, kind, skipped="already ingested"))
            continue
        if kind == "values":  # the person's own words: kept whole, the newest wins
            values = read_values(path)
            changed = values != load_values(store.handle)
            save_values(store.handle, values)
            store.ingest(path.name, digest, kind, [])
            report.files.append(FileReport(path.name, kind, len(values.priorities),
                                           len(values.priorities) if changed else 0))
            continue
        counted = store.ingest(path.name, digest, kind, _parse(path, kind, store, progress))
        report.files.append(FileReport(path.name, kind, counted.records, counted.added,
                                       counted.problems))
    return report


def as_dict(report: IngestReport) -> dict[str, Any]:
    return {"added": report.added, "problems": report.problems,
            "files": [vars(f) for f in report.files]}


__all__ = ["FileReport", "IngestReport", "as_dict", "ingest", "kind_of", "walk"]
