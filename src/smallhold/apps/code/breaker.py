"""When the agent loop stops: pure decisions over what the iterations so far produced.

The loop stops with a reason the user can read: solved; the same failure came back N times
in a row, the same check with the same wrong values (the model is stuck); the passing count
did not rise for N iterations (no progress); the wall-clock, token or iteration budget is
spent. Circuit breaking here means that: a failing loop is cut off early, and the reason
names the evidence. While an iteration that starts over is still ahead, being stuck is no
reason to stop: the start does not see the code the loop is stuck on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    max_iterations: int = 5
    same_failure: int = 3
    # Four, not three: retries are sampled attempts, and a one-test task (all of MBPP) shows
    # no progress until it is solved, so three cut every such run at its third try.
    no_progress: int = 4
    seconds: float = 1800.0
    tokens: int = 200_000


@dataclass(frozen=True)
class Outcome:
    """What one iteration's tests said, as the breaker needs it."""

    passed: int
    ok: bool
    signature: str | None
    tokens: int
    seconds: float


@dataclass(frozen=True)
class Stop:
    reason: str  # solved | same-failure | no-progress | iterations | time | tokens
    detail: str


def _stuck(outcomes: Sequence[Outcome], budget: Budget, baseline_passed: int) -> Stop | None:
    """Same failure N times in a row, or no more tests passing in the last N iterations."""
    signature = outcomes[-1].signature
    if signature is not None and len(outcomes) >= budget.same_failure and all(
            o.signature == signature for o in outcomes[-budget.same_failure:]):
        return Stop("same-failure", f"the same failure ({signature}) came back "
                                    f"{budget.same_failure} times in a row")
    if len(outcomes) >= budget.no_progress:
        best_before = max([baseline_passed, *(o.passed for o in outcomes[:-budget.no_progress])])
        recent = max(o.passed for o in outcomes[-budget.no_progress:])
        if recent <= best_before:
            return Stop("no-progress", f"no more tests passed in the last {budget.no_progress} "
                                       f"iterations (best {recent}, before {best_before})")
    return None


def should_stop(outcomes: Sequence[Outcome], budget: Budget, baseline_passed: int = 0,
                start_ahead: bool = False) -> Stop | None:
    """The reason to stop after ``outcomes`` (oldest first), or None to go on.

    ``start_ahead``: an iteration that starts over from the files as they were is still to
    come within the budget. A loop stuck on its own code is then not stuck (the start does
    not see that code), so the same failure or no progress does not stop it; the budgets do.
    """
    if not outcomes:
        return None
    last = outcomes[-1]
    if last.ok:
        return Stop("solved", f"the tests pass after {len(outcomes)} iteration(s)")
    stuck = None if start_ahead else _stuck(outcomes, budget, baseline_passed)
    if stuck is not None:
        return stuck
    spent_tokens = sum(o.tokens for o in outcomes)
    if spent_tokens >= budget.tokens:
        return Stop("tokens", f"{spent_tokens:,} tokens used of a budget of {budget.tokens:,}")
    spent = sum(o.seconds for o in outcomes)
    if spent >= budget.seconds:
        return Stop("time", f"{spent:.0f} s used of a budget of {budget.seconds:.0f} s")
    if len(outcomes) >= budget.max_iterations:
        return Stop("iterations", f"{len(outcomes)} iterations, the maximum, without passing")
    return None
