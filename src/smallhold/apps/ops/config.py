"""ops's configuration: ``ops.toml`` in the profile folder (or ``--config PATH``).

Secrets are never written in the file itself: a secret field holds a reference,
``env:NAME`` (read from the environment when the worker starts) or ``vault:NAME`` (kept in
the profile's encrypted vault by ``smallhold ops secret set NAME``), so the file can be
reviewed and versioned. Every external service has a configurable base URL: a test points
them at fake servers on loopback, a site at its own Jira.

    [receiver]
    port = 8740
    allowed_hosts = ["ops.example.com"]      # the public name a tunnel forwards, if any

    [sources.slack]
    secrets = ["env:SLACK_SIGNING_SECRET"]   # two while a secret is being rotated

    [integrations.slack]
    base_url = "https://slack.com/api/"
    token = "vault:slack_bot_token"
    channel = "#incidents"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from smallhold.apps.ops.errors import OpsError
from smallhold.errors import ConfigError

FILE_NAME = "ops.toml"
VAULT_PREFIX = "ops.secret."


def _reference(value: str) -> str:
    if value and not value.startswith(("env:", "vault:")):
        raise ValueError("a secret is a reference, env:NAME or vault:NAME, never the secret "
                         "itself (the file is meant to be reviewed and versioned)")
    return value


SecretRef = Annotated[str, AfterValidator(_reference)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Receiver(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8740, ge=1, le=65535)
    max_body: int = Field(1 << 20, ge=1024, description="bytes; Slack and GitHub send < 1 MB")
    allowed_hosts: list[str] = Field(default_factory=list)
    clock_skew: float = Field(300.0, ge=1, description="seconds a signed timestamp may be off")
    # inbound mail: an SMTP listener on ``host`` (0: off). Mail carries no signature, so
    # keep it on loopback behind the site's own mail server, which forwards to it.
    smtp_port: int = Field(0, ge=0, le=65535)


class SourceConfig(_Section):
    secrets: list[SecretRef] = Field(default_factory=list)



class Slack(_Section):
    base_url: str = "https://slack.com/api/"
    token: SecretRef = ""
    channel: str = "#incidents"


class Http(_Section):
    """Jira or GitHub: a REST base URL and a bearer token."""

    base_url: str = ""
    token: SecretRef = ""


class Smtp(_Section):
    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    sender: str = "ops@localhost"
    to: list[str] = Field(default_factory=list)
    starttls: bool = False
    username: str = ""
    password: SecretRef = ""


class Sql(_Section):
    """The database the data agent may read (read-only, always)."""

    url: str = ""  # sqlite:///path or postgresql://...
    # named queries templates use as {{ queries.NAME }}: the SQL is the operator's, never
    # taken from an event (the built-in incident template reads queries.incident)
    queries: dict[str, str] = Field(default_factory=dict)
    row_limit: int = Field(200, ge=1, le=10_000)
    timeout: float = Field(10.0, gt=0)


class Integrations(_Section):
    slack: Slack = Slack()
    jira: Http = Http(base_url="")
    github: Http = Http(base_url="https://api.github.com/")
    smtp: Smtp = Smtp()
    sql: Sql = Sql()


class Resilience(_Section):
    attempts: int = Field(5, ge=1, le=20, description="tries of a transient failure")
    backoff: float = Field(0.5, gt=0, description="first wait in seconds; doubles, jittered")
    backoff_max: float = Field(30.0, gt=0)
    breaker_failures: int = Field(5, ge=1, description="failures in a row that open it")
    breaker_reset: float = Field(60.0, gt=0, description="seconds before a half-open trial")


class Workflows(_Section):
    templates: list[Path] = Field(default_factory=list)  # folders of *.yaml, after ours
    approval_timeout: str = "30m"
    min_confidence: float = Field(0.6, ge=0, le=1, description="below: a person decides")
    model: str | None = None  # the local model agents use; None: the suite's default
    # Slack user ids whose approve/deny buttons count; empty: approvals only from the CLI
    # (anyone in a Slack channel can press a button)
    approvers: list[str] = Field(default_factory=list)


class OpsConfig(_Section):
    receiver: Receiver = Receiver()
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    integrations: Integrations = Integrations()
    resilience: Resilience = Resilience()
    workflows: Workflows = Workflows()


def load_config(path: Path | None, profile_dir: Path) -> OpsConfig:
    """``path``, else ``ops.toml`` in the profile folder, else the defaults."""
    target = path or profile_dir / FILE_NAME
    if not target.exists():
        if path is not None:
            raise ConfigError(f"ops config {path} does not exist")
        return OpsConfig()
    try:
        data = tomllib.loads(target.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read ops config {target}: {exc}") from None
    try:
        return OpsConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{target}: {where}: {first['msg']}") from None


def resolve(reference: str, vault_get: Callable[[str], str | None]) -> str:
    """The secret a reference names; an unset one is an error that says how to set it."""
    if not reference:
        return ""
    kind, _, name = reference.partition(":")
    value = os.environ.get(name) if kind == "env" else vault_get(VAULT_PREFIX + name)
    if not value:
        how = (f"export {name}=..." if kind == "env"
               else f"smallhold ops secret set {name}")
        raise OpsError(f"the secret {reference} is not set: {how}")
    return value


__all__ = [
    "FILE_NAME",
    "VAULT_PREFIX",
    "Http",
    "Integrations",
    "OpsConfig",
    "Receiver",
    "Resilience",
    "Slack",
    "Smtp",
    "SourceConfig",
    "Sql",
    "Workflows",
    "load_config",
    "resolve",
]
