"""pocket: recall of planted facts (semantic context vs plain sliding window), battery policy.

**Recall.** A generated conversation of ``--turns`` turns on rotating everyday topics, with 50
facts planted at random points ("by the way, my bike lock combination is 3391"). Then 50
questions, one per fact. Both contenders get the same token budget (the real model's context
minus room for the answer, counted with the model's own tokenizer):

- **semantic**: pocket's prompt: a block-sliding window of recent turns plus topic chunks of
  older turns recalled from vector memory (bundled all-MiniLM-L6-v2);
- **plain window**: the same window code with nothing recalled: what a chat app that keeps
  the last N tokens gives.

Reported: how often the fact's value is in the prompt, and (``--answers``) how often the real
model's answer contains it.

**Battery.** A simulated day (08:00-24:00) of questions and background jobs on a phone that
starts at 80 %, runs on battery and charges 18:00-19:00, under pocket's power policy and
under no policy. The energy model is an assumption, stated in the output, not a measurement.

    .venv/bin/python bench/bench_pocket.py --model qwen2.5-coder-0.5b-instruct --answers
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as common
from _common import fmt, log, md_table
from smallhold.apps.pocket.assistant import Pocket
from smallhold.apps.pocket.window import build_prompt
from smallhold.config import load_settings
from smallhold.kit.power import Job, PowerPolicy, PowerScheduler
from smallhold.paths import resolve_paths
from smallhold.runtime.device import simulated
from smallhold.runtime.runtime import Runtime
from smallhold.runtime.types import Delta, GenerationParams, Message
from smallhold.store import sqlcipher
from smallhold.store.handle import VaultHandle

ATTRIBUTES = [
    "locker code", "bike lock combination", "gym membership number", "cabin wifi password",
    "flight number to Lisbon", "dentist's name", "favourite tea", "car's licence plate",
    "passport expiry year", "landlord's name", "library card number", "blood type",
    "sister's birthday month", "shoe size", "boss's first name", "garage door code",
    "allergy", "childhood pet's name", "apartment number", "train seat number",
    "favourite painter", "insurance policy number", "locker room number", "piano teacher's name",
    "hotel room in Rome", "first car model", "preferred airline", "home town",
    "favourite cheese", "tax office reference", "vet's name", "wedding anniversary month",
    "daughter's teacher", "safe deposit box number", "neighbour's dog", "running club name",
    "bank branch city", "dream holiday island", "lucky number", "pharmacy's street",
    "guitar brand", "favourite author", "nephew's name", "office floor", "parking spot number",
    "old school's name", "coffee order", "book club's current book", "hiking boot brand",
    "mobile plan name",
]
VALUES = ["Marlow", "Okonkwo", "Fenwick", "Tamsin", "Quillon", "Brightwater", "Vasquez",
          "Halvorsen", "Zephyrine", "Corrigan", "Ashdown", "Pemberton", "Lindqvist", "Ravello"]
TOPICS = ["the garden and the tomato seedlings", "the train to the conference",
          "a lentil soup recipe with cumin", "guitar strings going out of tune",
          "the budget for the summer trip", "a podcast about volcanoes",
          "the office printer jamming", "learning Portuguese verbs", "the leaking kitchen tap",
          "choosing a new laptop", "a birthday party for a friend", "morning running routine"]


@dataclass(frozen=True)
class Fact:
    attribute: str
    value: str
    turn: int


def value_for(rng: random.Random, i: int) -> str:
    return str(rng.randint(1000, 9999)) if i % 2 == 0 else f"{rng.choice(VALUES)}{i}"


def build_conversation(rng: random.Random, turns: int) -> tuple[list[tuple[str, str]], list[Fact]]:
    slots = sorted(rng.sample(range(0, int(turns * 0.9) // 2), len(ATTRIBUTES)))
    planted = dict(zip(slots, ATTRIBUTES, strict=True))
    out: list[tuple[str, str]] = []
    facts: list[Fact] = []
    for exchange in range(turns // 2):
        if exchange in planted:
            attribute = planted[exchange]
            value = value_for(rng, len(facts))
            facts.append(Fact(attribute, value, len(out)))
            out.append(("user", f"By the way, my {attribute} is {value}."))
            out.append(("assistant", f"Noted: your {attribute} is {value}."))
            continue
        topic = TOPICS[(exchange // 5) % len(TOPICS)]
        out.append(("user", f"Can you help me think about {topic}? Point {rng.randint(1, 99)} "
                            "is what worries me today."))
        out.append(("assistant", f"Of course. For {topic}, start small and write down the "
                                 f"next step; point {rng.randint(1, 99)} can wait a day."))
    return out, facts


def answer(runtime: Runtime, model: str, messages: list[Message]) -> str:
    params = GenerationParams(max_tokens=24, temperature=0.0)
    return "".join(e.text for e in runtime.stream(messages, model=model, params=params,
                                                   app="bench") if isinstance(e, Delta))


def run_recall(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    conversation, facts = build_conversation(rng, args.turns)
    with tempfile.TemporaryDirectory(prefix="smallhold-bench-pocket-") as tmp:
        os.environ["SMALLHOLD_HOME"] = tmp
        paths = resolve_paths()
        settings = load_settings(paths)
        settings.runtime.n_ctx = args.n_ctx
        runtime = Runtime(settings, paths, app="bench")
        path = Path(tmp) / "vault.db"
        handle = VaultHandle(sqlcipher.connect(path, os.urandom(32)), path=path, profile="b")
        pocket = Pocket(runtime, handle, runtime.embedder, model=args.model)
        for role, text in conversation:
            pocket.store.add_turn("long", role, text)  # type: ignore[arg-type]
        params = GenerationParams(max_tokens=24)
        started = time.perf_counter()
        pocket.prepare("long", "warm-up question", params)  # indexes the old turns once
        index_s = time.perf_counter() - started
        rows = []
        for n, fact in enumerate(facts):
            question = f"What is my {fact.attribute}? Reply with just the answer."
            semantic, _ = pocket.prepare("long", question, params)
            recent = pocket.store.recent("long", 400)
            plain = build_prompt(pocket.system, [Message(role=t.role, content=t.content)
                                                 for t in recent], question, [],
                                 budget=pocket.budget(params), count=pocket.counter())
            row = {"fact": fact.attribute, "turn": fact.turn,
                   "semantic_in_prompt": any(fact.value in m.content
                                             for m in semantic.messages),
                   "plain_in_prompt": any(fact.value in m.content for m in plain.messages),
                   "semantic_tokens": semantic.tokens, "plain_tokens": plain.tokens}
            if args.answers:
                row["semantic_answer"] = fact.value in answer(runtime, args.model,
                                                              semantic.messages)
                row["plain_answer"] = fact.value in answer(runtime, args.model, plain.messages)
            rows.append(row)
            log(f"  {n + 1}/{len(facts)} {fact.attribute}: semantic "
                f"{row['semantic_in_prompt']}, plain {row['plain_in_prompt']}")
        chunks = len(pocket.memory.list(kind="pocket.chunk.long", limit=1_000_000))
        budget = pocket.budget(params)
        handle.close()
        runtime.close()
    return {"rows": rows, "index_s": index_s, "chunks": chunks, "budget": budget,
            "turns": len(conversation)}


# -- battery ---------------------------------------------------------------------------------

WAKE_COST = 0.15      # % battery to load the model once
TOKEN_COST = 0.004    # % battery per generated token
BACKGROUND_COST = 0.6  # % battery per background job (consolidation, indexing, sync)
IDLE_PER_HOUR = 1.5   # % battery per hour doing nothing
CHARGE_PER_HOUR = 60.0


def simulate_day(policy_on: bool, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    minutes = range(8 * 60, 24 * 60)
    questions = sorted(rng.sample(list(minutes), 60))
    background = list(range(9 * 60, 24 * 60, 60))
    battery = 80.0
    clock = [0.0]
    charging = [False]
    probe_state = [simulated(3, battery=battery, charging=False)]

    class Probe:
        def read(self) -> Any:
            return probe_state[0].read()

    scheduler = PowerScheduler(Probe(), PowerPolicy(), clock=lambda: clock[0])
    done = {"answered": 0, "tokens": 0, "tokens_on_battery": 0, "wakes": 0,
            "background_done": 0, "background_on_battery": 0, "refused": 0,
            "min_battery": battery, "died_at": None}
    for minute in minutes:
        clock[0] = minute * 60.0
        charging[0] = 18 * 60 <= minute < 19 * 60
        battery = min(100.0, battery + (CHARGE_PER_HOUR / 60 if charging[0] else 0)
                      - IDLE_PER_HOUR / 60)
        probe_state[0] = simulated(3, battery=battery, charging=charging[0])
        if minute in questions:
            scheduler.submit(Job(f"q{minute}", "chat", clock[0]))
        if minute in background:
            scheduler.submit(Job(f"bg{minute}", "background", clock[0]))
        if battery <= 0:
            done["died_at"] = done["died_at"] or f"{minute // 60:02d}:{minute % 60:02d}"
            continue
        if policy_on:
            decision, ready = scheduler.release()
            cap = decision.max_tokens
        else:
            ready, scheduler.queue, cap = list(scheduler.queue), [], None
        chats = [j for j in ready if j.kind == "chat"]
        if chats:
            done["wakes"] += 1 if policy_on else len(chats)
            battery -= WAKE_COST * (1 if policy_on else len(chats))
        for _ in chats:
            tokens = min(cap or 400, 400)
            done["answered"] += 1
            done["tokens"] += tokens
            if not charging[0]:
                done["tokens_on_battery"] += tokens
            battery -= TOKEN_COST * tokens
        for _ in [j for j in ready if j.kind == "background"]:
            done["background_done"] += 1
            if not charging[0]:
                done["background_on_battery"] += 1
            battery -= BACKGROUND_COST
        done["min_battery"] = min(done["min_battery"], battery)
    done["end_battery"] = battery
    done["queued_at_end"] = len(scheduler.queue)
    done["deferred"] = len({n.job for n in scheduler.notes if n.action == "deferred"})
    done["paused"] = len({n.job for n in scheduler.notes if n.action == "paused"})
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--answers", action="store_true", help="also ask the real model")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    info = common.machine()
    log(f"recall: {args.turns} turns, 50 facts, model {args.model}")
    recall = run_recall(args)
    battery = {"policy": simulate_day(True, args.seed), "none": simulate_day(False, args.seed)}
    info["loadavg_end"] = list(os.getloadavg())
    rows = recall["rows"]

    def share(key: str) -> str:
        values = [r[key] for r in rows if key in r]
        return f"{sum(values)}/{len(values)}" if values else "—"

    lines = ["### pocket: recall of 50 planted facts, semantic context vs plain sliding window",
             "", f"Command: `{common.command_line()}`", "", *common.machine_lines(info, [
                 ("conversation", f"{recall['turns']:,} generated turns, 50 facts planted in "
                                  "the first 90 %"),
                 ("budget", f"{recall['budget']:,} prompt tokens for both ({args.model}'s "
                            f"tokenizer, n_ctx {args.n_ctx})"),
                 ("memory", f"{recall['chunks']:,} topic chunks indexed in "
                            f"{recall['index_s']:.1f} s (all-MiniLM-L6-v2)"),
             ]), "",
             md_table(["measure", "semantic (pocket)", "plain sliding window"], [
                 ["fact in the prompt", share("semantic_in_prompt"), share("plain_in_prompt")],
                 ["model's answer contains the fact", share("semantic_answer"),
                  share("plain_answer")],
                 ["mean prompt tokens",
                  fmt(sum(r["semantic_tokens"] for r in rows) / len(rows), 0),
                  fmt(sum(r["plain_tokens"] for r in rows) / len(rows), 0)],
             ], "lrr"), "",
             "### pocket: battery policy over a simulated day (3 GB phone, 80 % at 08:00, "
             "charger 18:00-19:00)", "",
             f"Energy model (an assumption, not a measurement): model wake {WAKE_COST} %, "
             f"{TOKEN_COST} % per generated token, background job {BACKGROUND_COST} %, idle "
             f"{IDLE_PER_HOUR} %/h, charging +{CHARGE_PER_HOUR} %/h. 60 questions at random "
             "minutes, a background job every hour.", ""]
    p, n = battery["policy"], battery["none"]
    lines.append(md_table(["", "pocket policy", "no policy"], [
        ["questions answered", p["answered"], n["answered"]],
        ["tokens generated on battery", f"{p['tokens_on_battery']:,}",
         f"{n['tokens_on_battery']:,}"],
        ["model wakes", p["wakes"], n["wakes"]],
        ["background jobs run (on battery)", f"{p['background_done']} "
         f"({p['background_on_battery']})", f"{n['background_done']} "
         f"({n['background_on_battery']})"],
        ["jobs deferred / paused", f"{p['deferred']} / {p['paused']}", "0 / 0"],
        ["lowest battery", f"{p['min_battery']:.1f} %", f"{n['min_battery']:.1f} %"],
        ["battery at midnight", f"{p['end_battery']:.1f} %", f"{n['end_battery']:.1f} %"],
        ["battery ran out at", p["died_at"] or "never", n["died_at"] or "never"],
    ], "lrr"))
    markdown = "\n".join(lines)
    print(markdown)
    common.write_results("pocket", {"machine": info, "recall": recall, "battery": battery},
                         markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
