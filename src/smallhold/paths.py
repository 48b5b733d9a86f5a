"""Where smallhold keeps its files.

``platformdirs`` gives the per-OS defaults; ``SMALLHOLD_HOME`` moves everything under one
folder (tests point it at a tmp dir, so they never touch the user's real data), and
``SMALLHOLD_MODELS_DIR`` puts the reassembled model files (about 2 GB) on another disk.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from smallhold.errors import ConfigError

APP_NAME = "smallhold"
DEFAULT_PROFILE = "default"
# A profile name becomes a folder, a key-file and a session-file name: no separators, no
# leading dot (so never "." or ".."), nothing a shell or file system treats specially.
PROFILE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_profile(name: str) -> str:
    """``name`` if it is a safe profile name, else :class:`ConfigError`.

    Profile names arrive from ``--profile``, ``SMALLHOLD_PROFILE`` and ``config.toml`` and are
    joined onto folders; ``../../evil`` would put a vault (or delete a session file) outside
    the profiles folder, so every path made from a name goes through here.
    """
    if PROFILE_PATTERN.fullmatch(name) is None:
        raise ConfigError(
            f"invalid profile name {name[:80]!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. --profile work).")
    return name


@dataclass(frozen=True)
class Paths:
    """The folders of one installation; nothing is created until asked for."""

    config_dir: Path
    data_dir: Path
    cache_dir: Path
    models_override: Path | None = None
    runtime_override: Path | None = None

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def models_dir(self) -> Path:
        """Reassembled model files, shared by every profile (they hold no user data)."""
        return self.models_override or self.data_dir / "models"

    @property
    def runtime_dir(self) -> Path:
        """Short-lived per-user state (an unlocked vault's session key): RAM-backed on Linux.

        ``$XDG_RUNTIME_DIR`` is a tmpfs that disappears at logout; without it platformdirs
        falls back to a folder under /tmp, which may be on disk (``vault status`` says so).
        """
        if self.runtime_override is not None:
            return self.runtime_override
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the no-XDG_RUNTIME_DIR fallback warns
            return Path(platformdirs.user_runtime_dir(APP_NAME))

    def profile_dir(self, profile: str = DEFAULT_PROFILE) -> Path:
        """The folder of one profile's vault; the name is checked (:func:`check_profile`)."""
        return self.data_dir / "profiles" / check_profile(profile)

    def ensure(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        return path


def resolve_paths(env: dict[str, str] | None = None) -> Paths:
    """Paths for this process, honouring ``SMALLHOLD_HOME``."""
    environ = os.environ if env is None else env
    models = environ.get("SMALLHOLD_MODELS_DIR")
    override = Path(models).expanduser() if models else None
    home = environ.get("SMALLHOLD_HOME")
    if home:
        root = Path(home).expanduser()
        return Paths(config_dir=root / "config", data_dir=root / "data", cache_dir=root / "cache",
                     models_override=override, runtime_override=root / "run")
    return Paths(
        config_dir=Path(platformdirs.user_config_dir(APP_NAME)),
        data_dir=Path(platformdirs.user_data_dir(APP_NAME)),
        cache_dir=Path(platformdirs.user_cache_dir(APP_NAME)),
        models_override=override,
    )
