"""Aggregates over call records: pure functions, no database."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from smallhold.trace.records import CallRecord, CallStats


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (0..1) with linear interpolation between ranks; None when empty.

    Same definition as numpy's default (``method="linear"``): rank ``(n - 1) * q``.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {q}")
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(key: str, calls: Iterable[CallRecord]) -> CallStats:
    """Counts, token totals, mean tokens/s and p50/p95 latency and time to first token."""
    items = list(calls)
    latencies = [c.latency_s for c in items]
    ttfts = [c.ttft_s for c in items if c.ttft_s is not None]
    speeds = [s for s in (c.tokens_per_s for c in items) if s is not None]
    return CallStats(
        key=key,
        calls=len(items),
        errors=sum(1 for c in items if c.error is not None),
        tokens_in=sum(c.tokens_in for c in items),
        tokens_out=sum(c.tokens_out for c in items),
        cost=sum(c.cost for c in items),
        tokens_per_s=sum(speeds) / len(speeds) if speeds else None,
        latency_p50_s=percentile(latencies, 0.5),
        latency_p95_s=percentile(latencies, 0.95),
        ttft_p50_s=percentile(ttfts, 0.5),
        ttft_p95_s=percentile(ttfts, 0.95),
    )


__all__ = ["percentile", "summarize"]
