"""Settings: a TOML file plus ``SMALLHOLD_*`` environment variables, validated by pydantic.

Precedence, lowest first: built-in defaults, ``config.toml``, environment. A nested key is
spelled with a double underscore in the environment: ``[runtime] keep_alive = 60`` is
``SMALLHOLD_RUNTIME__KEEP_ALIVE=60``. pydantic-settings reads and merges the sources
(:func:`load_settings`); ``SMALLHOLD_HOME``, ``SMALLHOLD_PASSPHRASE``, ``SMALLHOLD_KEY_FILE``
and ``SMALLHOLD_MODELS_DIR`` name places and secrets, not settings, and are skipped.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from smallhold.errors import ConfigError
from smallhold.paths import DEFAULT_PROFILE, Paths, check_profile, resolve_paths

ENV_PREFIX = "SMALLHOLD_"
_NOT_SETTINGS = {"HOME", "PASSPHRASE", "KEY_FILE", "MODELS_DIR"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class RuntimeSettings(_Section):
    backend: Literal["llama", "openai", "scripted"] = "llama"
    default_model: str = "qwen2.5-coder-1.5b-instruct"
    embedding_model: str = "all-minilm-l6-v2"
    n_ctx: int = Field(4096, ge=256, description="context length requested for chat models")
    n_threads: int | None = Field(
        None, ge=1, description="llama.cpp threads; None = physical cores"
    )
    keep_alive: float = Field(
        300.0,
        description="seconds an idle model stays loaded; 0 = unload after each call, -1 = forever",
    )
    max_loaded_models: int = Field(2, ge=1)
    low_memory_mb: int = Field(
        768, ge=0, description="unload idle models when available RAM falls under this"
    )
    recover_memory_mb: int = Field(
        1536, ge=0, description="reload unloaded models when available RAM is back above this"
    )
    idle_preload_seconds: float = Field(
        120.0, description="preload the likely next model after this much idle time; <0 disables"
    )
    kv_cache: Literal["auto", "f16", "q8_0", "q4_0"] = "auto"
    weights: Literal["auto", "4bit", "8bit"] = "auto"
    state_cache_mb: int = Field(
        768, ge=0, description="RAM for saved per-conversation KV states before spilling to disk"
    )
    speculative: Literal["auto", "off", "prompt-lookup"] = "auto"


class OpenAISettings(_Section):
    """A remote OpenAI-compatible endpoint; used only when ``runtime.backend = "openai"``."""

    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: SecretStr = SecretStr("")
    model: str | None = None
    timeout: float = 120.0


class ServerSettings(_Section):
    """``smallhold serve``: where it listens and who may call it (see smallhold.httpguard)."""

    host: str = "127.0.0.1"
    port: int = Field(8737, ge=1, le=65535)
    api_key: SecretStr = Field(
        SecretStr(""), description="callers must send 'Authorization: Bearer <key>'; empty = "
        "no key (loopback only: --allow-remote needs one)")
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="larger request bodies get 413, unread")
    cors_origins: list[str] = Field(
        default_factory=list, description="web origins (https://app.example) whose pages may "
        "call the API; empty = none")
    allowed_hosts: list[str] = Field(
        default_factory=list, description="extra names the Host header may carry (besides the "
        "bound address and localhost); '*' = any, only with an api_key")

    @field_validator("cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """SMALLHOLD_SERVER__CORS_ORIGINS=a,b: an environment variable is one string."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    aliases: dict[str, str] = Field(
        default_factory=dict, description="model names clients hard-code, answered by a "
        "smallhold model: {\"gpt-4o-mini\" = \"qwen2.5-coder-1.5b-instruct\", "
        "\"text-embedding-3-small\" = \"all-minilm-l6-v2\"}")

    @field_validator("aliases", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        """SMALLHOLD_SERVER__ALIASES=gpt-4o-mini=qwen2.5-coder-1.5b-instruct,b=c."""
        if isinstance(value, str) and not value.lstrip().startswith("{"):
            pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
            if any(len(p) != 2 for p in pairs):
                raise ValueError("aliases are NAME=MODEL pairs separated by commas")
            return {a.strip(): b.strip() for a, b in pairs}
        return value


class DurableSettings(_Section):
    url: str | None = Field(
        None, description="DBOS system database; empty = a SQLite file in the profile "
        "(postgresql://... to share runs between workers)")


class Settings(BaseSettings):
    """All settings. Built like any model, ``Settings(...)`` takes only its arguments;
    :func:`load_settings` adds ``config.toml`` and the environment as pydantic-settings
    sources."""

    model_config = SettingsConfigDict(
        extra="forbid", validate_default=True, env_prefix=ENV_PREFIX, env_nested_delimiter="__",
        case_sensitive=False,
        enable_decoding=False,  # values are plain strings: no JSON; lists are comma-separated
    )

    profile: str = DEFAULT_PROFILE
    runtime: RuntimeSettings = RuntimeSettings()
    openai: OpenAISettings = OpenAISettings()
    server: ServerSettings = ServerSettings()
    durable: DurableSettings = DurableSettings()

    @field_validator("profile")
    @classmethod
    def _safe_profile(cls, value: str) -> str:
        """A profile name becomes a folder name: refuse ``../x`` when the settings load."""
        try:
            return check_profile(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """No implicit sources: a test's ``Settings(runtime=...)`` never reads the process
        environment; :func:`load_settings` passes the file and environment sources."""
        return (init_settings,)


class _Environment(EnvSettingsSource):
    """``SMALLHOLD_*`` variables from a given mapping rather than always ``os.environ``.

    Only upper-case ``SMALLHOLD_`` names count (the rest of a name is case-insensitive), and
    the variables that name files or secrets rather than settings (``SMALLHOLD_HOME``, ...)
    are left out. A name pydantic-settings would ignore (``SMALLHOLD_TYPO``) is passed on,
    so ``extra="forbid"`` refuses it like an unknown key in the file.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self.names = {key: value for key, value in environ.items()
                      if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX):]
                      and key[len(ENV_PREFIX):] not in _NOT_SETTINGS}
        _refuse_clashes(self.names)
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key.lower(): value for key, value in self.names.items()}

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        fields = self.settings_cls.model_fields
        for key, value in self.env_vars.items():
            top = key[len(self.env_prefix):].split("__", 1)[0]
            if top not in fields:
                data.setdefault(top, value)
        return data


def _refuse_clashes(names: Mapping[str, str]) -> None:
    """``SMALLHOLD_RUNTIME`` (a whole section) beside ``SMALLHOLD_RUNTIME__N_CTX`` (a key in
    it): pydantic-settings would keep one silently; say which two clash instead."""
    lowered = {key.lower(): key for key in names}
    for low, whole in sorted(lowered.items()):
        inner = next((lowered[other] for other in sorted(lowered)
                      if other.startswith(low + "__")), None)
        if inner is not None:
            raise ConfigError(f"{whole} and {inner} clash: one sets a whole section to a "
                              "value, the other a key inside it. Unset one of them.")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        text = ""  # no config file: the defaults
    except OSError as exc:  # a directory, unreadable, ...: say so instead of a traceback
        raise ConfigError(f"cannot read the config file {path} ({exc.strerror or exc}); it must "
                          "be a readable TOML file: fix its permissions, or move it aside."
                          ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or delete the file.") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or delete the file.") from exc


def _origin(loc: tuple[int | str, ...], names: Mapping[str, str], path: Path) -> str:
    """Where the value at ``loc`` came from: the variable that set it, else the file."""
    lowered = {key.lower(): key for key in names}
    parts = [str(part) for part in loc]
    for depth in range(len(parts), 0, -1):
        key = (ENV_PREFIX + "__".join(parts[:depth])).lower()
        if key in lowered:
            return lowered[key]
    under = (ENV_PREFIX + "__".join(parts) + "__").lower()  # SMALLHOLD_FOO__BAR for "foo"
    return next((lowered[key] for key in sorted(lowered) if key.startswith(under)), str(path))


def load_settings(
    paths: Paths | None = None, env: dict[str, str] | None = None, file: Path | None = None
) -> Settings:
    """Read and validate settings; a bad value raises :class:`ConfigError` naming its source.

    pydantic-settings merges the sources, highest first: the environment (``env``, or
    ``os.environ`` when it is None), then ``config.toml``; fields it sets in neither keep
    their defaults.
    """
    environ = dict(os.environ if env is None else env)
    paths = paths or resolve_paths(environ)
    path = file or paths.config_file
    environment = _Environment(Settings, environ)
    sources = (environment, InitSettingsSource(Settings, init_kwargs=_read_file(path)))
    try:
        return Settings(_build_sources=(sources, {}))
    except SettingsError as exc:
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise ConfigError(f"cannot read the SMALLHOLD_* variables ({exc}{cause}); nested keys "
                          "use '__', e.g. SMALLHOLD_RUNTIME__KEEP_ALIVE=60.") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']} "
            f"(from {_origin(err['loc'], environment.names, path)})" for err in exc.errors()
        )
        raise ConfigError(
            f"invalid settings ({problems}). Check {path} and SMALLHOLD_* variables "
            "(nested keys use '__', e.g. SMALLHOLD_RUNTIME__KEEP_ALIVE=60)."
        ) from exc
