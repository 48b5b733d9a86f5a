"""Decision support: the numbers from the data, the prose from the model, the gaps named.

``smallhold life decide "take the job offer in Berlin?"`` gathers facts about money, time,
health and people from what the vault holds (each fact numbered, with its numbers and the
records it stands on), puts the person's priorities beside them in their own order, and
asks the local model to weigh the question against them, citing facts as [F1], [F2]. The
model never supplies a number: the facts are printed from the data, separately from its
prose, and it is told to say what it does not know rather than guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

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


def gather(records: Records, values: Values, alerts: list[Alert], as_of: date) -> list[Fact]:
    """The facts a decision can stand on, from the data only."""
    facts = _money(records, values, as_of)
    span = data_span(records, values.person)
    if span is not None:
        end = min(span[1], as_of)
        days = build_days(records, values.person, max(span[0], end - timedelta(days=60)), end)
        facts += _time_and_health(days, values)
    return facts + _alerts(alerts)


def prompt(question: str, facts: list[Fact], values: Values) -> str:
    lines = [f"[F{i}] ({f.topic}) {f.text}" for i, f in enumerate(facts, start=1)]
    priorities = [f"{i}. {p.statement}" for i, p in enumerate(values.priorities, start=1)]
    return (f"Decision: {question}\n\nTheir priorities, most important first:\n"
            + ("\n".join(priorities) or "(none stated)")
            + "\n\nFacts from their own data:\n" + ("\n".join(lines) or "(no data yet)"))


def decide(question: str, records: Records, values: Values, alerts: list[Alert],
           as_of: date, runtime: Runtime, *, model: str | None = None) -> Decision:
    facts = gather(records, values, alerts, as_of)
    reply = runtime.chat([Message(role="system", content=SYSTEM),
                          Message(role="user", content=prompt(question, facts, values))],
                         model=model, params=PARAMS, app="life")
    return Decision(question, facts, [p.statement for p in values.priorities],
                    reply.text.strip())


__all__ = ["Decision", "Fact", "decide", "gather", "prompt"]
