"""Fixtures: ``serve(backend)`` runs a real server for one test; ``api`` is a scripted one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from server_harness import Served, ServeFactory, served

from smallhold.config import Settings
from smallhold.paths import Paths
from smallhold.runtime.backends.base import ChatBackend
from smallhold.runtime.backends.scripted import ScriptedBackend


@pytest.fixture
def serve(paths: Paths) -> Iterator[ServeFactory]:
    """``serve(backend)`` starts a server for this test; all stop when the test ends."""
    with ExitStack() as stack:

        def start(backend: ChatBackend, settings: Settings | None = None) -> Served:
            return stack.enter_context(served(backend, paths, settings))

        yield start


@pytest.fixture
def api(serve: ServeFactory) -> Served:
    return serve(ScriptedBackend(["Hello there, friend."]))
