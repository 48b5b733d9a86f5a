"""Where a vault's 32-byte key comes from: a passphrase through Argon2id, the OS keyring, a file.

Argon2id (``argon2-cffi``) turns a passphrase into the raw SQLCipher key; its parameters and
salt are stored with the vault so they can be raised later (a vault made with weaker ones
says so, and ``vault rekey`` re-derives with today's). Keyring and key-file vaults use a random
key instead: nothing to guess, and the protection is whatever guards the keyring or the file.

A key check (HMAC-SHA256 of a fixed label) is kept beside the database. SQLCipher reports a
wrong key and a damaged file with the same words; the check tells the user which it is, and
it helps a guesser no more than the encrypted first page already does.

Key files live under the config folder by default (:func:`default_key_file`), and
``vault.json`` names one inside it relative to it (``keys/x.key``,
:func:`key_file_ref`, :func:`key_file_path`), so a copied home opens with its own key file,
not the original's.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import os
import secrets
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import argon2.low_level

from smallhold.errors import StoreError, VaultLockedError
from smallhold.paths import Paths, check_profile
from smallhold.store.sqlcipher import KEY_BYTES

KEY_CHECK_LABEL = b"smallhold vault key check v1"
KEYRING_SERVICE = "smallhold"


@dataclass(frozen=True)
class KdfParams:
    """Argon2id settings; defaults are RFC 9106's second recommendation (64 MiB, t=3)."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 4
    salt: str = ""  # base64; empty only in the defaults used for comparison

    @classmethod
    def fresh(cls) -> KdfParams:
        return cls(salt=base64.b64encode(os.urandom(16)).decode("ascii"))

    def weaker_than(self, other: KdfParams) -> bool:
        return self.time_cost < other.time_cost or self.memory_kib < other.memory_kib

    def to_json(self) -> dict[str, Any]:
        return {"algorithm": "argon2id", "version": argon2.low_level.ARGON2_VERSION,
                **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KdfParams:
        if data.get("algorithm") != "argon2id":
            raise StoreError(f"unknown key derivation {data.get('algorithm')!r} in the vault "
                             "metadata; a newer smallhold wrote it. Upgrade smallhold.")
        return cls(time_cost=int(data["time_cost"]), memory_kib=int(data["memory_kib"]),
                   parallelism=int(data["parallelism"]), salt=str(data["salt"]))


CURRENT_KDF = KdfParams()


def derive_key(passphrase: str, params: KdfParams) -> bytes:
    """Argon2id of the passphrase (UTF-8) with the stored salt: the SQLCipher raw key."""
    if not passphrase:
        raise StoreError("the passphrase is empty; choose one with at least 8 characters.")
    return argon2.low_level.hash_secret_raw(
        passphrase.encode("utf-8"), base64.b64decode(params.salt),
        time_cost=params.time_cost, memory_cost=params.memory_kib,
        parallelism=params.parallelism, hash_len=KEY_BYTES, type=argon2.low_level.Type.ID,
    )


def random_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def key_check(key: bytes) -> str:
    return hmac.new(key, KEY_CHECK_LABEL, "sha256").hexdigest()


def key_matches(key: bytes, check: str) -> bool:
    return hmac.compare_digest(key_check(key), check)


# -- key files ------------------------------------------------------------------------------


def default_key_file(paths: Paths, profile: str) -> Path:
    return paths.config_dir / "keys" / f"{check_profile(profile)}.key"


def key_file_ref(config_dir: Path | None, path: str | None) -> str | None:
    """How ``vault.json`` names a key file: relative to the config folder when inside it.

    A copied or moved home then opens with its own key file, not the original's; a key
    file the user keeps elsewhere (a USB stick) keeps its absolute path.
    """
    if path is None or config_dir is None:
        return path
    target = Path(path)
    for base in (config_dir, config_dir.resolve()):
        if target.is_absolute() and target.is_relative_to(base):
            return target.relative_to(base).as_posix()
    return path


def key_file_path(config_dir: Path | None, ref: str | None) -> str | None:
    """The absolute path, in this home, of the key file ``vault.json`` names.

    ``vault.json`` files written before relative names hold an absolute path; when it points
    into a ``keys`` folder and this home's ``keys`` folder has a file of that name, that is
    this home's key (a copied home must not go on using the original home's file).
    """
    if ref is None or config_dir is None:
        return ref
    path = Path(ref)
    if not path.is_absolute():
        return str(config_dir / path)
    local = config_dir / "keys" / path.name
    if path.parent.name == "keys" and local.is_file():
        return str(local)
    return ref


def write_key_file(path: Path, key: bytes) -> None:
    """Create ``path`` (0600, parent 0700) holding the key in hex; an existing file is refused."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise StoreError(f"the key file {path} already exists; choose another path or remove "
                         "it if it belongs to a vault you wiped.") from exc
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_key_file(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise VaultLockedError(f"the vault's key file {path} is missing; restore it from your "
                               "backup, or unlock with the passphrase if the vault has one."
                               ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"cannot read the key file {path} ({exc}).") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise StoreError(f"{path} is not a smallhold key file (expected {KEY_BYTES * 2} hex "
                         "characters).")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise StoreError(f"the key file {path} can be read by other users (mode "
                         f"{stat.filemode(mode)}); run: chmod 600 {path}")
    return key


# -- the OS keyring -------------------------------------------------------------------------


def keyring_usable() -> bool:
    """True when ``keyring`` has a real backend (not the fail or null one of headless boxes)."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:  # pragma: no cover - it is a dependency
        return False
    backend = keyring.get_keyring()
    return not isinstance(backend, fail.Keyring) and getattr(backend, "priority", 0) > 0


def keyring_entry(profile: str, key_id: str) -> str:
    return f"vault:{profile}:{key_id}"


def keyring_store(entry: str, key: bytes) -> None:
    import keyring
    import keyring.errors

    try:
        keyring.set_password(KEYRING_SERVICE, entry, key.hex())
    except keyring.errors.KeyringError as exc:
        raise StoreError(f"the OS keyring refused to store the vault key ({exc}); use a "
                         "passphrase or a key file instead.") from exc


def keyring_load(entry: str) -> bytes:
    import keyring
    import keyring.errors

    try:
        text = keyring.get_password(KEYRING_SERVICE, entry)
    except keyring.errors.KeyringError as exc:
        raise VaultLockedError(f"the OS keyring is not available ({exc}); unlock it (log in "
                               "to the desktop session) and try again.") from exc
    if text is None:
        raise VaultLockedError(f"the OS keyring has no entry {KEYRING_SERVICE}/{entry} for "
                               "this vault; it may have been cleared. Restore the keyring or "
                               "the vault from a backup.")
    return bytes.fromhex(text)


def keyring_delete(entry: str) -> None:
    import keyring
    import keyring.errors

    with contextlib.suppress(keyring.errors.KeyringError):  # already gone is what we wanted
        keyring.delete_password(KEYRING_SERVICE, entry)


__all__ = [
    "CURRENT_KDF",
    "KdfParams",
    "default_key_file",
    "derive_key",
    "key_check",
    "key_file_path",
    "key_file_ref",
    "key_matches",
    "keyring_delete",
    "keyring_entry",
    "keyring_load",
    "keyring_store",
    "keyring_usable",
    "random_key",
    "read_key_file",
    "write_key_file",
]
