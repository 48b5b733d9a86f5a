"""Settings: a TOML file plus ``SMALLHOLD_*`` environment variables, validated by pydantic.

Precedence, lowest first: built-in defaults, ``config.toml``, environment. A nested key is
spelled with a double underscore in the environment: ``[runtime] keep_alive = 60`` is
``SMALLHOLD_RUNTIME__KEEP_ALIVE=60``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

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


class DurableSettings(_Section):
    url: str | None = Field(
        None, description="DBOS system database; empty = a SQLite file in the profile "
        "(postgresql://... to share runs between workers)")


class Settings(_Section):
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


def _env_overrides(env: dict[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):]
        if name in _NOT_SETTINGS or not name:
            continue
        parts = name.lower().split("__")
        node = tree
        for depth, part in enumerate(parts[:-1], start=1):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # SMALLHOLD_RUNTIME=x, then SMALLHOLD_RUNTIME__N_CTX
                section = ENV_PREFIX + "__".join(name.split("__")[:depth])
                raise _clash(section, key)
        if isinstance(node.get(parts[-1]), dict):  # the same, the other way round
            raise _clash(key, f"{key}__*")
        node[parts[-1]] = value
    return tree


def _clash(whole: str, inner: str) -> ConfigError:
    return ConfigError(f"{whole} and {inner} clash: one sets a whole section to a value, the "
                       "other a key inside it. Unset one of them.")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_settings(
    paths: Paths | None = None, env: dict[str, str] | None = None, file: Path | None = None
) -> Settings:
    """Read and validate settings; a bad value raises :class:`ConfigError` naming its source."""
    environ = dict(os.environ if env is None else env)
    paths = paths or resolve_paths(environ)
    path = file or paths.config_file
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
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or delete the file.") from exc
    merged = _merge(data, _env_overrides(environ))
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(
            f"invalid settings ({problems}). Check {path} and SMALLHOLD_* variables "
            "(nested keys use '__', e.g. SMALLHOLD_RUNTIME__KEEP_ALIVE=60)."
        ) from exc
