"""The unlocked state of a passphrase vault between commands, like sudo's timestamp.

``smallhold vault unlock`` derives the key once (Argon2id is slow on purpose) and leaves it in
a 0600 file in the user's runtime dir (a tmpfs on Linux desktops, gone at logout) with an
expiry; later commands use it until then, and ``vault lock`` deletes it. The file names the
vault it belongs to, so a session left over from a wiped vault never opens a new one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from smallhold.paths import check_profile

FOREVER = 0.0


@dataclass(frozen=True)
class Session:
    vault_id: str
    key: bytes
    expires_at: float  # unix time; FOREVER = until ``vault lock`` or logout

    def expired(self, now: float) -> bool:
        return self.expires_at != FOREVER and now >= self.expires_at


def session_path(runtime_dir: Path, profile: str) -> Path:
    """The session file of ``profile``; the name is checked, as ``vault lock`` deletes it."""
    return runtime_dir / "sessions" / f"{check_profile(profile)}.json"


def save_session(path: Path, session: Session) -> None:
    """Write atomically with mode 0600 from the start (never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        json.dump({"vault_id": session.vault_id, "key": session.key.hex(),
                   "expires_at": session.expires_at}, handle)
    os.replace(tmp, path)


def load_session(path: Path, vault_id: str, now: float | None = None) -> Session | None:
    """The live session for ``vault_id``, or ``None``; expired or foreign ones are removed."""
    try:
        data = json.loads(path.read_text(encoding="ascii"))
        session = Session(vault_id=str(data["vault_id"]), key=bytes.fromhex(data["key"]),
                          expires_at=float(data["expires_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if session.vault_id != vault_id or session.expired(time.time() if now is None else now):
        clear_session(path)
        return None
    return session


def clear_session(path: Path) -> bool:
    """Remove the session file; True when there was one."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def parse_duration(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"8h"``, ``"2d"`` or ``"forever"`` to seconds (forever = 0)."""
    value = text.strip().lower()
    if value in {"forever", "0"}:
        return FOREVER
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (value[:-1], value[-1]) if value[-1:] in units else (value, "m")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 8h, 2d or forever)") from None
    if seconds <= 0:
        raise ValueError(f"the duration must be positive, got {text!r}")
    return seconds


__all__ = ["FOREVER", "Session", "clear_session", "load_session", "parse_duration",
           "save_session", "session_path"]
