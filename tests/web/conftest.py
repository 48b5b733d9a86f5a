"""Web fixtures: a pocket on the scripted backend (vault and embedder: tests/conftest.py),
its pages in the shell, and a TestClient on them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from smallhold.apps.pocket.assistant import Pocket
from smallhold.apps.pocket.web import pages
from smallhold.config import Settings
from smallhold.paths import Paths
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.device import simulated
from smallhold.runtime.runtime import Runtime
from smallhold.runtime.types import ChatRequest
from smallhold.store.handle import VaultHandle
from smallhold.store.memory.store import TextEmbedder
from smallhold.web import build_web


def echo(request: ChatRequest) -> str:
    """A deterministic answer that shows which question it answers."""
    return f"You asked: {request.messages[-1].content}. Here is a short answer."


@pytest.fixture
def web_pocket(vault: VaultHandle, settings: Settings, paths: Paths,
               embedder: TextEmbedder) -> Pocket:
    """A pocket on a plugged-in laptop at 80 %, answering with :func:`echo`."""
    pocket = Pocket(Runtime(settings, paths, backend=ScriptedBackend(reply=echo), app="pocket"),
                    vault, embedder)
    pocket.runtime.probe = simulated(8, battery=80, charging=True)
    return pocket


@pytest.fixture
def client(web_pocket: Pocket) -> Iterator[TestClient]:
    """The shell with pocket's pages; TestClient's host ``testserver`` is allowed in."""
    app = build_web([pages(web_pocket)], extra_hosts=["testserver"])
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client

