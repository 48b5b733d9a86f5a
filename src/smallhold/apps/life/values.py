"""What the person says matters: who they are and their ordered priorities.

Read from a ``priorities.toml`` the person writes (or exports from ``smallhold life
values``) and kept in the vault. Priorities are stated, not measured: each has the person's
own words (``statement``) and optional ``targets`` that checks can test, for example::

    [person]
    name = "Maya Thompson"
    emails = ["maya@home.example", "maya@work.example"]
    timezone = "America/Chicago"
    currency = "USD"

    [[priority]]                      # most important first
    id = "health_first"
    statement = "Health first: sleep at least 7 hours and walk every day."
    targets = { sleep_hours_min = 7.0, steps_min = 7000 }

Known target keys: ``sleep_hours_min``, ``steps_min``, ``savings_rate_min``,
``meeting_hours_per_week_max``, ``contact`` with ``reply_within_days``, and
``calendar_summary`` with ``weekday`` (a protected recurring event). Unknown keys are kept
(the person's words matter even when no check reads them yet).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smallhold.apps.life.errors import SourceError
from smallhold.store.handle import VaultHandle

META_KEY = "life.values"


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    emails: list[str] = Field(default_factory=list)
    timezone: str = "UTC"
    currency: str = ""

    def owns(self, email: str) -> bool:
        return email.lower() in {e.lower() for e in self.emails}


class Priority(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    statement: str
    targets: dict[str, Any] = Field(default_factory=dict)


class Values(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person: Profile = Field(default_factory=Profile)
    priorities: list[Priority] = Field(default_factory=list, alias="priority")

    def target(self, key: str) -> tuple[Priority, Any] | None:
        """The most important priority that sets ``key``, and its value."""
        for priority in self.priorities:
            if key in priority.targets:
                return priority, priority.targets[key]
        return None


def looks_like_values(path: Path) -> bool:
    if path.suffix.lower() != ".toml":
        return False
    head = path.read_bytes()[:65536]
    return b"[person]" in head or b"[[priority]]" in head


def read_values(path: Path) -> Values:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path.name} is not valid TOML ({exc}); fix it and ingest it "
                          "again.") from exc
    try:
        return Values.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors()[:5])
        raise SourceError(f"{path.name} is not a priorities file ({problems}); see "
                          "`smallhold life values --help` for the format.") from exc


def save_values(handle: VaultHandle, values: Values) -> None:
    handle.set_meta(META_KEY, values.model_dump_json(by_alias=True))


def load_values(handle: VaultHandle) -> Values:
    saved = handle.meta(META_KEY)
    return Values.model_validate(json.loads(saved)) if saved else Values()


__all__ = ["Priority", "Profile", "Values", "load_values", "looks_like_values", "read_values",
           "save_values"]
