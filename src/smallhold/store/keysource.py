"""A vault's key: made for a :class:`KeySpec`, found again on open, checked, and forgotten.

:mod:`smallhold.store.keys` holds the primitives (Argon2id, random keys, key files, the OS
keyring); this module is the policy a vault applies with them: which source is asked in
which order (:func:`find_key`), where a new key is kept, and which key is deleted when a
vault stops using it. Init, rekey, wipe and recovery all go through it, so a key is made
and removed the same way whichever of them runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from smallhold.errors import StoreError, VaultLockedError, WrongKeyError
from smallhold.paths import Paths
from smallhold.store import keys
from smallhold.store.session import load_session, session_path
from smallhold.store.vaultfiles import KeySource, VaultMeta, unlink

MIN_PASSPHRASE = 8
ENV_PASSPHRASE = "SMALLHOLD_PASSPHRASE"
ENV_KEY_FILE = "SMALLHOLD_KEY_FILE"
PENDING_SUFFIX = ".pending"


@dataclass(frozen=True)
class KeySpec:
    """How to key a new vault, or the target of a rekey."""

    source: KeySource
    passphrase: str | None = None
    key_file: Path | None = None  # keyfile: where to create it (default: the config folder)


def _check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise StoreError(f"the passphrase is too short: use at least {MIN_PASSPHRASE} "
                         "characters (a few random words is a good choice).")


def pending_file(key_file: Path) -> Path:
    """Where a new key file is written until its vault commits to it."""
    return key_file.with_name(key_file.name + PENDING_SUFFIX)


def key_target(paths: Paths, profile: str, spec: KeySpec, key_id: str) -> Path | None:
    """The key file a ``keyfile`` spec will create (absolute); ``None`` for other sources."""
    if spec.source != "keyfile":
        return None
    target = spec.key_file or keys.default_key_file(paths, profile).with_name(
        f"{profile}-{key_id[:8]}.key")
    return target.expanduser().resolve()


def make_key(paths: Paths, profile: str, spec: KeySpec, key_id: str, target: Path | None
             ) -> tuple[bytes, keys.KdfParams | None]:
    """A new key for ``spec``, stored where the spec says; returns the key and KDF params.

    A key file is written as ``<target>.pending``: it becomes ``target`` only once the vault
    is committed to it (:func:`smallhold.store.recovery.settle_key_journal`), so a kill
    before that leaves no file that looks like a vault's key.
    """
    if spec.source == "passphrase":
        if spec.passphrase is None:
            raise StoreError("a passphrase vault needs a passphrase.")
        _check_passphrase(spec.passphrase)
        params = keys.KdfParams.fresh()
        return keys.derive_key(spec.passphrase, params), params
    key = keys.random_key()
    if spec.source == "keyring":
        if not keys.keyring_usable():
            raise StoreError("this system has no usable OS keyring (no Secret Service, "
                             "Keychain or Credential Locker); use a passphrase or a key file.")
        keys.keyring_store(keys.keyring_entry(profile, key_id), key)
        return key, None
    assert target is not None
    if target.exists():
        raise StoreError(f"the key file {target} already exists; choose another path or remove "
                         "it if it belongs to a vault you wiped.")
    keys.write_key_file(pending_file(target), key)
    return key, None


def forget_key(profile: str, source: str, key_id: str, key_file: str | None) -> None:
    """Remove a key that is no longer needed (after a rekey or wipe, or never committed)."""
    if source == "keyring":
        keys.keyring_delete(keys.keyring_entry(profile, key_id))
    elif source == "keyfile" and key_file:
        unlink(Path(key_file))


def find_key(paths: Paths, profile: str, meta: VaultMeta, *, passphrase: str | None,
             key_file: Path | None, env: Mapping[str, str]) -> tuple[bytes, str]:
    """The key, and in words where it came from; raises when nothing offers one."""
    if passphrase is not None:
        return passphrase_key(meta, passphrase), "passphrase"
    if key_file is not None:
        return keys.read_key_file(key_file), f"key file {key_file}"
    if meta.key_source == "passphrase" and env.get(ENV_PASSPHRASE):
        return passphrase_key(meta, env[ENV_PASSPHRASE]), ENV_PASSPHRASE
    if env.get(ENV_KEY_FILE):
        path = Path(env[ENV_KEY_FILE]).expanduser()
        return keys.read_key_file(path), f"{ENV_KEY_FILE} ({path})"
    if meta.key_source == "keyring":
        return keys.keyring_load(keys.keyring_entry(profile, meta.key_id)), "OS keyring"
    if meta.key_source == "keyfile" and meta.key_file:
        return keys.read_key_file(Path(meta.key_file)), f"key file {meta.key_file}"
    session = load_session(session_path(paths.runtime_dir, profile), meta.vault_id)
    if session is not None:
        return session.key, "unlocked session"
    raise VaultLockedError(
        f"the vault of profile {profile!r} is locked. Run `smallhold vault unlock` (it asks "
        f"for the passphrase), or set {ENV_PASSPHRASE} for scripts."
    )


def passphrase_key(meta: VaultMeta, passphrase: str) -> bytes:
    if meta.kdf is None:
        raise WrongKeyError(f"this vault opens with its {meta.key_source}, not a passphrase. "
                            "Leave the passphrase out.")
    return keys.derive_key(passphrase, meta.kdf)


def verified(meta: VaultMeta, key: bytes, how: str, profile: str) -> bytes:
    if not keys.key_matches(key, meta.key_check):
        noun = "passphrase" if "passphrase" in how.lower() else f"key ({how})"
        raise WrongKeyError(f"the {noun} does not open the vault of profile {profile!r}; "
                            "nothing was changed. Check it and try again.")
    return key


__all__ = [
    "ENV_KEY_FILE",
    "ENV_PASSPHRASE",
    "MIN_PASSPHRASE",
    "PENDING_SUFFIX",
    "KeySpec",
    "find_key",
    "forget_key",
    "key_target",
    "make_key",
    "passphrase_key",
    "pending_file",
    "verified",
]
