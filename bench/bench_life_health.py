"""life's Apple Health parser on large exports: records/s and peak RSS, flat in file size.

Writes ``export.xml`` files of ``--sizes`` Records into a temporary folder (Apple's DTD head,
then sleep, step, heart-rate and resting-heart-rate Records in the mix of a real Watch
export, plus a share of types life skips), parses each in a fresh child process and reports
the child's records/s and peak RSS (``ru_maxrss``), next to its RSS after imports alone
(stdout: a markdown table, then the raw numbers as JSON; nothing is written to the repo).
The goal is an RSS that does not grow with the file. Run from the repository root:

    .venv/bin/python bench/bench_life_health.py --sizes 100000,1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import _common as common
from _common import fmt, log, md_table

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!-- HealthKit Export Version: 13 -->
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary)*)>
<!ATTLIST HealthData
  locale CDATA #REQUIRED
>
<!ELEMENT Record ((MetadataEntry|HeartRateVariabilityMetadataList)*)>
]>
<HealthData locale="en_US">
 <ExportDate value="2025-04-29 08:00:00 -0500"/>
"""
DEVICE = ('device="&lt;&lt;HKDevice: 0x2830f1a40&gt;, name:Apple Watch, manufacturer:Apple '
          'Inc., model:Watch, hardware:Watch6,2, software:10.4&gt;"')
LINES = [
    ('HKQuantityTypeIdentifierHeartRate', 'unit="count/min" ', 'value="72"'),
    ('HKQuantityTypeIdentifierStepCount', 'unit="count" ', 'value="431"'),
    ('HKCategoryTypeIdentifierSleepAnalysis', "",
     'value="HKCategoryValueSleepAnalysisAsleepCore"'),
    ('HKQuantityTypeIdentifierActiveEnergyBurned', 'unit="Cal" ', 'value="0.83"'),
    ('HKQuantityTypeIdentifierRestingHeartRate', 'unit="count/min" ', 'value="55"'),
    ('HKQuantityTypeIdentifierDistanceWalkingRunning', 'unit="km" ', 'value="0.12"'),
]


def generate(path: Path, records: int) -> None:
    """Records 30 s apart from 2024-01-01 on, so each is its own record (an ingest keys
    records by content: identical ones would be stored once)."""
    start = datetime(2024, 1, 1, 0, 0, 0)
    with path.open("w", encoding="utf-8") as out:
        out.write(HEAD)
        for i in range(records):
            kind, unit, value = LINES[i % len(LINES)]
            begin = (start + timedelta(seconds=30 * i)).strftime("%Y-%m-%d %H:%M:%S")
            end = (start + timedelta(seconds=30 * i + 30)).strftime("%Y-%m-%d %H:%M:%S")
            out.write(f' <Record type="{kind}" sourceName="Maya’s Apple Watch" '
                      f'sourceVersion="10.4" {DEVICE} {unit}creationDate="{begin} -0500" '
                      f'startDate="{begin} -0500" endDate="{end} -0500" {value}>\n'
                      '  <MetadataEntry key="HKMetadataKeyHeartRateMotionContext" value="0"/>\n'
                      " </Record>\n")
        out.write("</HealthData>\n")


def child(path: Path, other: bool, store: bool) -> dict[str, Any]:
    """Runs in a fresh interpreter: parse everything (and with ``store``, ingest it into a
    fresh encrypted vault the way `smallhold life ingest` does), count, measure."""
    from smallhold.apps.life.sources.health import parse_apple_health

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    samples = problems = 0
    if store:
        import os

        from smallhold.apps.life.ingest import ingest
        from smallhold.apps.life.store import LifeStore
        from smallhold.store import sqlcipher
        from smallhold.store.handle import VaultHandle

        db = path.with_suffix(".db")
        handle = VaultHandle(sqlcipher.connect(db, os.urandom(32)), path=db, profile="bench")
        report = ingest(LifeStore(handle), [path])
        samples, problems = report.files[0].added, report.files[0].problems
        handle.close()
    else:
        for item in parse_apple_health(path, other=other):
            if item.__class__.__name__ == "Problem":
                problems += 1
            else:
                samples += 1
    seconds = time.perf_counter() - started
    return {"samples": samples, "problems": problems, "seconds": seconds,
            "rss_after_imports_kib": baseline,
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--other", action="store_true", help="also yield skipped types")
    parser.add_argument("--ingest", action="store_true",
                        help="ingest into an encrypted vault (the whole `life ingest` path), "
                             "not only parse")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.other, args.ingest)))
        return
    rows, results = [], []
    with tempfile.TemporaryDirectory(prefix="bench-life-health-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            path = Path(tmp) / f"export-{size}.xml"
            log(f"writing {size:,} Records to {path} ...")
            generate(path, size)
            log("parsing in a child process ...")
            out = subprocess.run([sys.executable, __file__, "--child", str(path)]
                                 + (["--other"] if args.other else [])
                                 + (["--ingest"] if args.ingest else []),
                                 capture_output=True, text=True, check=True)
            result = json.loads(out.stdout) | {"records": size,
                                               "file_bytes": path.stat().st_size}
            results.append(result)
            rows.append([f"{size:,}", fmt(result["file_bytes"] / common.MB, 0),
                         f"{result['samples']:,}", fmt(size / result["seconds"], 0),
                         fmt(result["seconds"], 2),
                         fmt(result["rss_after_imports_kib"] / 1024, 1),
                         fmt(result["peak_rss_kib"] / 1024, 1)])
            path.unlink()
            path.with_suffix(".db").unlink(missing_ok=True)
    table = md_table(["Records", "file MB", "samples stored" if args.ingest else
                      "samples yielded", "Records/s", "seconds",
                      "RSS after imports MB", "peak RSS MB"], rows)
    print(f"`{common.command_line()}`\n\n{table}\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
