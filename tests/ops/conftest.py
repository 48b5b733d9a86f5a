"""ops's shared fixtures: one set of fake Slack, Jira and GitHub per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smallhold.apps.ops.fakes import FakeServices


@pytest.fixture(scope="module")
def fakes() -> Iterator[FakeServices]:
    """Started once per module (a module may define its own, per test, instead)."""
    with FakeServices.start() as running:
        yield running


@pytest.fixture
def clean_fakes(fakes: FakeServices) -> FakeServices:
    """The module's fakes with no faults, latency or records left by an earlier test."""
    fakes.reset()
    return fakes
