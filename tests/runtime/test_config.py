"""Settings come from defaults, then config.toml, then SMALLHOLD_* variables."""

from __future__ import annotations

import pytest

from smallhold.config import load_settings
from smallhold.errors import ConfigError
from smallhold.paths import Paths


def test_defaults_are_local_and_private(paths: Paths) -> None:
    settings = load_settings(paths, env={})
    assert settings.runtime.backend == "llama"
    assert settings.server.host == "127.0.0.1"
    assert settings.runtime.keep_alive == 300


def test_file_then_environment(paths: Paths) -> None:
    paths.ensure(paths.config_dir)
    paths.config_file.write_text("[runtime]\nkeep_alive = 60\nn_ctx = 2048\n")
    settings = load_settings(paths, env={"SMALLHOLD_RUNTIME__KEEP_ALIVE": "0"})
    assert (settings.runtime.keep_alive, settings.runtime.n_ctx) == (0, 2048)


def test_bad_toml_and_bad_values_are_config_errors(paths: Paths) -> None:
    paths.ensure(paths.config_dir)
    paths.config_file.write_text("[runtime\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(paths, env={})
    paths.config_file.write_text("[runtime]\nbackend = 'cloud'\n")
    with pytest.raises(ConfigError, match=r"runtime\.backend"):
        load_settings(paths, env={})
    with pytest.raises(ConfigError, match="SMALLHOLD_RUNTIME__KEEP_ALIVE"):
        load_settings(paths, env={"SMALLHOLD_RUNTIME__N_CTX": "ten"})


def test_api_key_is_never_printed(paths: Paths) -> None:
    settings = load_settings(paths, env={"SMALLHOLD_OPENAI__API_KEY": "sk-secret"})
    assert "sk-secret" not in repr(settings)
    assert "sk-secret" not in settings.model_dump_json()
