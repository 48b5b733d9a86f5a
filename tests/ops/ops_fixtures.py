"""Helpers for the ops tests of the outside world: services wired to the local fakes."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from smallhold.apps.ops.config import OpsConfig, Resilience
from smallhold.apps.ops.fakes import FakeServices, LocalSmtp
from smallhold.apps.ops.models import Event
from smallhold.apps.ops.tools import Call, Ledger

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


class MemoryLedger:
    """The ledger of a worker that has never run anything: a fresh dict."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def done(self, key: str) -> dict[str, Any] | None:
        return self.rows.get(key)

    def record(self, key: str, result: dict[str, Any]) -> None:
        self.rows.setdefault(key, result)


@dataclass
class StubServices:
    """What a worker gives tools, minus the model: config, secrets, ledger."""

    config: OpsConfig
    ledger: Ledger = field(default_factory=MemoryLedger)
    secrets: dict[str, str] = field(default_factory=dict)

    def secret(self, reference: str) -> str:
        if not reference:
            return ""
        return self.secrets[reference.split(":", 1)[1]]

    @property
    def runtime(self) -> Any:
        raise AssertionError("these tools never need the model")

    @property
    def model(self) -> str | None:
        return None


def services_for(fakes: FakeServices | None = None, smtp: LocalSmtp | None = None, *,
                 ledger: Ledger | None = None, sql: dict[str, Any] | None = None,
                 secrets: dict[str, str] | None = None) -> StubServices:
    integrations: dict[str, Any] = fakes.integrations(smtp) if fakes else {}
    if smtp is not None and fakes is None:
        integrations["smtp"] = {"host": smtp.host, "port": smtp.port,
                                "sender": "ops@smallhold.test",
                                "to": ["oncall@smallhold.test"]}
    if sql is not None:
        integrations["sql"] = sql
    config = OpsConfig.model_validate({"integrations": integrations})
    found = dict(fakes.env()) if fakes else {}
    found.update(secrets or {})
    return StubServices(config=config, ledger=ledger or MemoryLedger(), secrets=found)


def event(summary: str = "Checkout 502s") -> Event:
    return Event(source="alertmanager", type="alert.firing", key="am-test",
                 received_at=datetime.now(UTC), summary=summary)


def make_call(params: dict[str, Any], *, workflow: str | None = None,
              step: str = "step") -> Call:
    return Call(workflow=workflow or f"wf-{uuid.uuid4().hex[:10]}", step=step, event=event(),
                params=params)


def fast(**values: Any) -> Resilience:
    """Resilience settings for tests: small waits (the sleep is injected anyway)."""
    base: dict[str, Any] = {"attempts": 4, "backoff": 0.5, "backoff_max": 8.0,
                            "breaker_failures": 3, "breaker_reset": 60.0}
    base.update(values)
    return Resilience.model_validate(base)


class Sleeps:
    """An injected ``sleep`` that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ops"


def load_signer() -> ModuleType:
    """``../shared/data/ops/sign.py``, the standard-library signer the samples come with,
    imported by path (it is not a package); the caller skips when DATA is missing."""
    spec = importlib.util.spec_from_file_location("ops_sign", DATA / "sign.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def smallhold_json(env: dict[str, str], *args: str) -> Any:
    """``smallhold ARGS --json`` in a subprocess with ``env``; its parsed output (it must
    succeed)."""
    done = subprocess.run([sys.executable, "-m", "smallhold.cli", *args, "--json"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               logs: Sequence[Path]) -> None:
    """Poll ``predicate`` (a server not up yet counts as False); on timeout, fail with the
    tails of the processes' logs, which say why."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
                              for log in logs)
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.1)
