"""The checks: pure detectors over the stored records, each alert with cited evidence.

``run_checks`` loads the records once, computes the daily facts up to ``as_of`` and hands
them to small detectors (one module per domain: ``health`` for burnout, ``money`` for
overspending and price rises, ``people`` for unanswered family, ``calendar`` for planned
conflicts and over-commitment). Detectors read only the data and the person's Values:
no merchant, domain or name is known in advance, so they hold on exports the generator
never made. Thresholds are named constants, each with the reason beside it.
"""

from __future__ import annotations

from datetime import date

from smallhold.apps.life.alerts import Alert
from smallhold.apps.life.checks.actions import with_advice
from smallhold.apps.life.checks.calendar import detect_over_commitment, detect_priority_conflict
from smallhold.apps.life.checks.health import detect_burnout
from smallhold.apps.life.checks.money import detect_overspending, detect_subscription_increase
from smallhold.apps.life.checks.people import detect_neglected_relationship
from smallhold.apps.life.daily import Records, build_days, data_span, load_records
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.values import Values


def checks_over(records: Records, values: Values, as_of: date) -> list[Alert]:
    """Every detector over ``records`` as known on ``as_of`` (pure: no store, no clock),
    each alert with its suggested action weighed against the priorities (``advice``)."""
    alerts: list[Alert] = []
    span = data_span(records, values.person)
    if span is not None and span[0] <= as_of:
        days = build_days(records, values.person, span[0], min(span[1], as_of))
        alerts += detect_burnout(days, values)
    alerts += detect_overspending(records.transactions, values, as_of)
    alerts += detect_subscription_increase(records.transactions, records.messages, values,
                                           as_of)
    alerts += detect_neglected_relationship(records.messages, values, as_of)
    alerts += detect_priority_conflict(records.events, values, as_of)
    alerts += detect_over_commitment(records.events, values, as_of)
    return with_advice(alerts, values, records)


def run_checks(store: LifeStore, values: Values, as_of: date) -> list[Alert]:
    """The alerts for what the store holds, as of ``as_of`` (later records are ignored)."""
    return checks_over(load_records(store), values, as_of)


__all__ = ["checks_over", "run_checks"]
