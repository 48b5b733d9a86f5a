"""life's checks against the synthetic personas' planted patterns: recall, precision, evidence.

Generates ``--seeds`` personas (``make_persona.py`` in the shared data folder beside the
repository) of ``--days`` days, ingests each into a temporary vault, runs
``run_checks(as_of = the data's last day)`` and scores every alert kind: an alert is a
true positive when it matches its planted pattern (burnout: overlaps ``start..end`` by at
least half and begins no earlier than ``baseline_window``; months, merchants, contacts and
uids exactly), else a false positive; alerts on the README's negatives are counted apart.
Every cited data point is checked against ``ground_truth.json`` (meeting uids, months'
income and spending, card rows, unanswered Message-IDs, event uids and times).
stdout: a markdown table, then the raw numbers as JSON. Run from the repository root:

    .venv/bin/python bench/bench_life_checks.py --seeds 20 --days 120
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import _common as common
from _common import log, md_table
from smallhold.apps.life.alerts import Alert
from smallhold.apps.life.checks import run_checks
from smallhold.apps.life.ingest import ingest
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.values import load_values
from smallhold.store import sqlcipher
from smallhold.store.handle import VaultHandle

MAKE_PERSONA = common.REPO_DIR.parent / "shared" / "data" / "life" / "make_persona.py"
PLANTED = ("burnout", "overspending", "subscription_increase", "neglected_relationship",
           "priority_conflict")


def _keys(alert: Alert, kind: str) -> list[str]:
    return [r.key for e in alert.evidence for r in e.records if r.kind == kind]


def matches(alert: Alert, truth: dict[str, Any]) -> bool:
    """Does ``alert`` find its planted pattern (the README's matching rules)?"""
    p = truth["patterns"].get(alert.kind)
    if p is None:
        return False
    if alert.kind == "burnout":
        start, end = date.fromisoformat(p["start"]), date.fromisoformat(p["end"])
        overlap = (min(end, alert.end) - max(start, alert.start)).days + 1
        return (overlap * 2 >= (end - start).days + 1
                and alert.start >= date.fromisoformat(p["baseline_window"][0]))
    if alert.kind == "overspending":
        return f"{alert.start:%Y-%m}" == p["month"]
    if alert.kind == "subscription_increase":
        return bool(alert.title.startswith(p["merchant"] + " "))
    if alert.kind == "neglected_relationship":
        return p["contact"] in alert.rule
    return p["event_uid"] in _keys(alert, "event")


def evidence_errors(alert: Alert, truth: dict[str, Any]) -> list[str]:
    """Cited data points that disagree with the ground truth (empty: all verified)."""
    p, errors = truth["patterns"][alert.kind], []
    if not alert.evidence or any(not e.records and not e.values for e in alert.evidence):
        errors.append("empty evidence")
    if alert.kind == "burnout":
        cited = set(_keys(alert, "event"))
        missing = set(p["evidence"]["extra_meeting_uids"]) - cited
        inside = {u for u in p["evidence"]["extra_meeting_uids"]}
        if len(missing) * 2 > len(inside):
            errors.append(f"{len(missing)} extra meetings not cited")
        days = {d["date"]: d for d in truth["daily"]}
        for key in _keys(alert, "day"):
            if key not in days:
                errors.append(f"day {key} not in data")
    elif alert.kind == "overspending":
        month = next(m for m in truth["months"] if m["month"] == p["month"])
        got = alert.evidence[0].values
        if abs(float(got["income"] or 0) - month["income"]) > 0.005 or abs(
                float(got["spending"] or 0) - month["spending"]) > 0.005:
            errors.append(f"income/spending {got} vs {month}")
        cited = set(_keys(alert, "transaction"))
        for row in p["evidence"]["card_rows"]:
            if not any(k.startswith(f"{row['date']} {row['amount']:.2f} {row['description']}")
                       for k in cited):
                errors.append(f"card row {row} not cited")
    elif alert.kind == "subscription_increase":
        cited = {k.split(" ")[0] + " " + k.split(" ")[1] for k in _keys(alert, "transaction")}
        want = {f"{r['date']} {r['amount']:.2f}" for r in p["evidence"]["card_rows"]}
        if cited != want:
            errors.append(f"charges {sorted(cited)} vs {sorted(want)}")
        subjects = [e.values.get("subject") for e in alert.evidence if e.what.startswith("price")]
        if subjects != [p["evidence"]["notice_email_subject"]]:
            errors.append(f"notice {subjects}")
    elif alert.kind == "neglected_relationship":
        got = [(r.key, r.at, e.values.get("subject")) for e in alert.evidence
               if e.what == "unanswered message" for r in e.records]
        want = [(u["message_id"], u["date"], u["subject"]) for u in p["evidence"]["unanswered"]]
        if got != want:
            errors.append(f"unanswered {got} vs {want}")
        last = [(r.key, r.at) for e in alert.evidence if e.what == "last reply" for r in e.records]
        if last != [(p["last_reply"]["message_id"], p["last_reply"]["date"])]:
            errors.append(f"last reply {last}")
    elif alert.kind == "priority_conflict":
        planned, protected = alert.evidence[0], alert.evidence[1]
        if (planned.records[0].key != p["event_uid"]
                or not str(planned.values["start"]).startswith(p["start"])
                or protected.records[0].key != p["evidence"]["conflicts_with_uid"]
                or not str(protected.values["start"]).startswith(
                    p["evidence"]["occurrence_start"])):
            errors.append("conflict uids/times differ")
    if sorted(alert.violates) != sorted(p.get("violates", alert.violates)):
        errors.append(f"violates {alert.violates} vs {p.get('violates')}")
    return errors


def on_negative(alert: Alert, truth: dict[str, Any]) -> bool:
    """Does ``alert`` point at one of the README's negatives?"""
    text = alert.title + " " + alert.rule
    for neg in truth["negatives"]:
        if "sender" in neg and neg["sender"] in text:
            return True
        if "merchant" in neg and neg["merchant"] in text.upper():
            return True
        if "start" in neg and alert.kind == "burnout" and alert.start <= date.fromisoformat(
                neg["end"]) and date.fromisoformat(neg["start"]) <= alert.end:
            return True
        if "date" in neg and alert.kind == "burnout" and alert.start <= date.fromisoformat(
                neg["date"]) <= alert.end:
            return True
    texts = " ".join(r.key for e in alert.evidence for r in e.records if r.kind == "transaction")
    return alert.kind == "overspending" and any(
        w in texts for w in ("PAYMENT", "TRANSFER TO SAVINGS", "AUSGLEICH"))


def one(seed: int, days: int, root: Path) -> dict[str, Any]:
    folder = root / f"seed{seed}"
    subprocess.run([sys.executable, str(MAKE_PERSONA), str(folder), "--seed", str(seed),
                    "--days", str(days)], check=True, capture_output=True, timeout=120)
    truth = json.loads((folder / "ground_truth.json").read_text(encoding="utf-8"))
    (folder / "ground_truth.json").unlink()  # not an export
    path = root / f"vault{seed}.db"
    handle = VaultHandle(sqlcipher.connect(path, os.urandom(32)), path=path, profile="bench")
    try:
        store = LifeStore(handle)
        ingest(store, [folder])
        began = time.perf_counter()
        alerts = run_checks(store, load_values(handle), date.fromisoformat(
            truth["period"]["as_of"]))
        seconds = time.perf_counter() - began
    finally:
        handle.close()
    out: dict[str, Any] = {"seed": seed, "seconds": round(seconds, 3), "found": {},
                           "false": [], "negatives": [], "evidence_errors": []}
    for alert in alerts:
        if on_negative(alert, truth):
            out["negatives"].append(f"{alert.kind}: {alert.title}")
        if matches(alert, truth):
            out["found"][alert.kind] = True
            out["evidence_errors"] += [f"{alert.kind}: {e}" for e in
                                       evidence_errors(alert, truth)]
        elif alert.kind in PLANTED:
            out["false"].append(f"{alert.kind}: {alert.title}")
        else:
            out.setdefault("other", []).append(f"{alert.kind}: {alert.title}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=120)
    args = parser.parse_args()
    if not MAKE_PERSONA.is_file():
        sys.exit(f"the persona generator is not at {MAKE_PERSONA}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            log(f"seed {seed}")
            results.append(one(seed, args.days, Path(tmp)))
    rows, summary = [], {}
    for kind in PLANTED:
        tp = sum(bool(r["found"].get(kind)) for r in results)
        fp = sum(f.startswith(kind + ":") for r in results for f in r["false"])
        bad = sum(e.startswith(kind + ":") for r in results for e in r["evidence_errors"])
        negs = sum(n.startswith(kind + ":") for r in results for n in r["negatives"])
        recall, precision = tp / len(results), tp / (tp + fp) if tp + fp else 1.0
        summary[kind] = {"recall": recall, "precision": precision, "tp": tp, "fp": fp,
                         "on_negatives": negs, "evidence_errors": bad}
        rows.append([kind, f"{tp}/{len(results)}", f"{recall:.2f}", f"{precision:.2f}",
                     str(fp), str(negs), str(bad)])
    table = md_table(["pattern", "found", "recall", "precision", "false alerts",
                      "on negatives", "evidence errors"], rows)
    print(f"`{common.command_line()}`\n\n{table}\n")
    print(json.dumps({"seeds": args.seeds, "days": args.days, "summary": summary,
                      "per_seed": results}, indent=1))


if __name__ == "__main__":
    main()
