"""Decision support: the numbers from the data, the prose from the model, the gaps named.

``smallhold life decide "take the job offer in Berlin?"`` gathers facts about money, time,
health and people from what the vault holds (each fact numbered, with its numbers and the
records it stands on), puts the person's priorities beside them in their own order, and
asks the local model to weigh the question against them, citing facts as [F1], [F2]. The
model never supplies a number: the facts are printed from the data, separately from its
prose, and it is told to say what it does not know rather than guess.

The plan is weighed against the priorities by rule, before the model writes a word: the
question's own words say what the plan changes (``CUES``: "job" takes working time, "buy"
spends), ``advice.weigh`` names the priorities each change serves or works against, and
each priority's state in the data ("missed now: 5.6 h of sleep against 7") goes beside it.
A conflict with a target the data shows already missed is the one a person most needs
named. Words the table does not know change nothing: the model may discuss them, but no
conflict is invented for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from smallhold.apps.life.advice import Advice, Aspect, Change, Direction, weigh
from smallhold.apps.life.alerts import Alert
from smallhold.apps.life.checks.money import month_totals
from smallhold.apps.life.daily import Day, Records, build_days, data_span
from smallhold.apps.life.values import Values
from smallhold.runtime import GenerationParams, Message, Runtime

PARAMS = GenerationParams(max_tokens=450, temperature=0.2, seed=5)
SYSTEM = ("You help a person weigh a decision against what they said matters to them. Use "
          "only the numbered facts you are given and cite them like [F2]; never invent a "
          "number. Go through money, time, health, relationships and their priorities in "
          "order, name each trade-off and any conflict with a priority, and end with a short "
          "list headed 'What I do not know' of what the decision depends on that the facts "
          "do not show. Be concise.")


@dataclass(frozen=True)
class Fact:
    topic: str  # money, time, health, people, alerts
    text: str  # the fact in words, numbers included
    cites: list[str] = field(default_factory=list)  # what it stands on (months, dates, ids)


@dataclass
class Decision:
    question: str
    facts: list[Fact]
    priorities: list[str]
    answer: str = ""
    plan: Advice | None = None  # what the question's words change, weighed by rule


# what a plan's words say it changes: (pattern, aspect, direction, how, in words)
CUES: list[tuple[re.Pattern[str], Aspect, Direction, str]] = [
    (re.compile(r"\b(job|offer|promotion|role|position|project|start-?up|side (gig|project|"
                r"hustle)|second job|volunteer\w*|committee|board seat|degree|mba|course)\b",
                re.IGNORECASE), "meeting_hours", "more", "a new role or commitment takes time"),
    (re.compile(r"\b(buy\w*|purchas\w*|car|house|flat|apartment|mortgage|renovat\w*|trip|"
                r"holiday|vacation|wedding|loan|lease|upgrade)\b", re.IGNORECASE),
     "spending", "more", "it costs money"),
    (re.compile(r"\b(quit\w*|resign\w*|part-time|sabbatical|unpaid leave|retire\w*)\b",
                re.IGNORECASE), "spending", "more", "less income makes saving harder"),
    (re.compile(r"\b(quit\w*|resign\w*|part-time|sabbatical|four-day|cut back)\b",
                re.IGNORECASE), "meeting_hours", "less", "it frees working time"),
    (re.compile(r"\b(move|moving|relocat\w*|abroad|emigrat\w*)\b", re.IGNORECASE),
     "contact", "less", "moving away puts distance between you and the people you live near"),
    (re.compile(r"\b(night shifts?|early shifts?|on-call|on call|commut\w*|newborn|baby)\b",
                re.IGNORECASE), "sleep", "less", "it cuts into nights"),
    (re.compile(r"\b(gym|running|marathon|walk\w*|cycling|bike|hiking|sport\w*)\b",
                re.IGNORECASE), "activity", "more", "it gets you moving"),
]


def plan_changes(question: str) -> list[Change]:
    """What the question's own words say the plan changes (``CUES``), each with the word."""
    changes = []
    for pattern, aspect, direction, how in CUES:
        found = pattern.search(question)
        if found:
            changes.append(Change(aspect=aspect, direction=direction,
                                  why=f"'{found.group(0)}' in the question: {how}"))
    return changes


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _money(records: Records, values: Values, as_of: date) -> list[Fact]:
    months = sorted(month_totals(records.transactions, as_of).items())[-3:]
    if not months:
        return []
    income = sum((m[1][0] for m in months), Decimal(0))
    spending = sum((m[1][1] for m in months), Decimal(0))
    rate = float((income - spending) / income) if income else None
    currency = values.person.currency or ""
    goal = values.target("savings_rate_min")
    text = (f"Over the last {len(months)} full month(s) ({months[0][0]} to {months[-1][0]}), "
            f"income {income:,.2f} {currency}, spending {spending:,.2f} {currency}")
    if rate is not None:
        text += f", savings rate {rate:.0%}"
    if goal is not None:
        text += f" against a goal of {float(goal[1]):.0%}"
    return [Fact("money", text + ".", [m[0] for m in months])]


def _rate(records: Records, as_of: date) -> tuple[float, list[str]] | None:
    months = sorted(month_totals(records.transactions, as_of).items())[-3:]
    income = sum((m[1][0] for m in months), Decimal(0))
    spending = sum((m[1][1] for m in months), Decimal(0))
    return (float((income - spending) / income), [m[0] for m in months]) if income else None


def priority_status(records: Records, values: Values, alerts: list[Alert], days: list[Day],
                    as_of: date) -> dict[str, str]:
    """Each priority's state in the data now, in words with its numbers ("missed now: ...",
    "met now: ...", the misses first), and the alerts that went against it, with their
    dates (an old alert is history, not now); priorities the data cannot speak to are left
    out."""
    recent = days[-14:]
    sleep = _mean([d.sleep_hours for d in recent if d.sleep_hours is not None])
    steps = _mean([float(d.steps) for d in recent if d.steps])
    weekly = sum(d.meeting_hours for d in days[-28:]) / max(1, len(days[-28:])) * 7
    rate = _rate(records, as_of)
    status: dict[str, str] = {}
    for priority in values.priorities:
        said: list[tuple[bool, str]] = []
        for key, target in priority.targets.items():
            try:
                goal = float(target)
            except (TypeError, ValueError):
                continue
            if key == "sleep_hours_min" and sleep is not None:
                said.append((sleep >= goal, f"{sleep:.1f} h of sleep a night over the last "
                             f"two weeks against {goal:g}"))
            elif key == "steps_min" and steps is not None:
                said.append((steps >= goal, f"{steps:,.0f} steps a day against {goal:,.0f}"))
            elif key == "savings_rate_min" and rate is not None:
                said.append((rate[0] >= goal, f"saved {rate[0]:.0%} over {rate[1][0]} to "
                             f"{rate[1][-1]} against {goal:.0%}"))
            elif key == "meeting_hours_per_week_max" and days:
                said.append((weekly <= goal, f"{weekly:.1f} h of meetings a week over the "
                             f"last four weeks against {goal:g}"))
        missed = [text for ok, text in said if not ok]
        parts = (["missed now: " + "; ".join(missed)] if missed else
                 ["met now: " + "; ".join(text for _, text in said)] if said else [])
        parts += [f"alert {a.start} to {a.end}: {a.title}" for a in alerts
                  if priority.id in a.violates]
        if parts:
            status[priority.id] = "; ".join(parts)
    return status


def _time_and_health(days: list[Day], values: Values) -> list[Fact]:
    facts: list[Fact] = []
    recent = days[-28:]
    if not recent:
        return facts
    span = f"{recent[0].date} to {recent[-1].date}"
    weekly = sum(d.meeting_hours for d in recent) / max(1, len(recent)) * 7
    limit = values.target("meeting_hours_per_week_max")
    facts.append(Fact("time", f"Meetings averaged {weekly:.1f} hours a week ({span})"
                      + (f"; the stated limit is {limit[1]} hours." if limit else "."),
                      [span]))
    sleep = _mean([d.sleep_hours for d in recent[-14:] if d.sleep_hours is not None])
    if sleep is not None:
        target = values.target("sleep_hours_min")
        facts.append(Fact("health", f"Sleep averaged {sleep:.1f} hours a night over the last "
                          f"two weeks" + (f"; the target is {target[1]} hours." if target
                                          else "."), [span]))
    steps = _mean([float(d.steps) for d in recent[-14:] if d.steps])
    if steps is not None:
        facts.append(Fact("health", f"Steps averaged {steps:,.0f} a day over the last two "
                          "weeks.", [span]))
    return facts


def _alerts(alerts: list[Alert]) -> list[Fact]:
    return [Fact("alerts", f"Open warning: {a.title} ({a.start} to {a.end}).", [a.id])
            for a in alerts]


def _days(records: Records, values: Values, as_of: date) -> list[Day]:
    span = data_span(records, values.person)
    if span is None or span[0] > as_of:
        return []
    end = min(span[1], as_of)
    return build_days(records, values.person, max(span[0], end - timedelta(days=60)), end)


def gather(records: Records, values: Values, alerts: list[Alert], as_of: date) -> list[Fact]:
    """The facts a decision can stand on, from the data only."""
    facts = _money(records, values, as_of)
    days = _days(records, values, as_of)
    if days:
        facts += _time_and_health(days, values)
    facts += _alerts(alerts)
    status = priority_status(records, values, alerts, days, as_of)
    for rank, priority in enumerate(values.priorities, start=1):
        if priority.id in status:  # each stated target against the data, met or missed
            facts.append(Fact("values", f"Priority {rank} ({priority.id}): "
                              f"{status[priority.id]}.", [priority.id]))
    return facts


def weigh_plan(question: str, records: Records, values: Values, alerts: list[Alert],
               as_of: date) -> Advice:
    """The question's plan (``plan_changes``) against the priorities, each priority's state
    in the data beside it (``priority_status``)."""
    status = priority_status(records, values, alerts, _days(records, values, as_of), as_of)
    return weigh(question, plan_changes(question), values, status)


def prompt(question: str, facts: list[Fact], values: Values,
           plan: Advice | None = None) -> str:
    lines = [f"[F{i}] ({f.topic}) {f.text}" for i, f in enumerate(facts, start=1)]
    priorities = [f"{i}. {p.statement}" for i, p in enumerate(values.priorities, start=1)]
    text = (f"Decision: {question}\n\nTheir priorities, most important first:\n"
            + ("\n".join(priorities) or "(none stated)")
            + "\n\nFacts from their own data:\n" + ("\n".join(lines) or "(no data yet)"))
    if plan is not None and plan.conflicts:
        text += "\n\nConflicts with their priorities, found by rule:\n" + "\n".join(
            f"- {n.priority} (priority {n.rank}): {n.reason}" for n in plan.conflicts)
    return text


def decide(question: str, records: Records, values: Values, alerts: list[Alert],
           as_of: date, runtime: Runtime, *, model: str | None = None) -> Decision:
    facts = gather(records, values, alerts, as_of)
    plan = weigh_plan(question, records, values, alerts, as_of)
    reply = runtime.chat([Message(role="system", content=SYSTEM),
                          Message(role="user", content=prompt(question, facts, values, plan))],
                         model=model, params=PARAMS, app="life")
    return Decision(question, facts, [p.statement for p in values.priorities],
                    reply.text.strip(), plan)


__all__ = ["CUES", "Decision", "Fact", "decide", "gather", "plan_changes", "priority_status",
           "prompt", "weigh_plan"]
