"""Pairing codes: hand the group's sync key to a new device through the relay, sealed.

The first device makes a random 80-bit code (16 base-32 letters, shown in groups of four),
derives from it a drop id and a wrapping key, and leaves the sync key sealed under that id on
the relay for a few minutes. The new device types the code, fetches the drop (the relay
deletes it as it is read) and opens it. The relay sees a random id and ciphertext; 80 random
bits need no slow key derivation, and a one-time drop with an expiry leaves nothing to guess
at later.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from smallhold.errors import PairingError
from smallhold.store.sync.crypto import NONCE_BYTES, SYNC_KEY_BYTES

ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ0123456789"  # Crockford-like: no I, L, O, U
CODE_LETTERS = 16
_FORMAT = b"smallhold-pair-v1"


def new_code() -> str:
    letters = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LETTERS))
    return "-".join(letters[i:i + 4] for i in range(0, CODE_LETTERS, 4))


def normalise(code: str) -> str:
    """Accept lower case, spaces and the look-alikes people type for 0 and 1."""
    text = code.upper().replace("-", "").replace(" ", "")
    text = text.translate(str.maketrans("OIL", "011"))
    if len(text) != CODE_LETTERS or any(c not in ALPHABET for c in text):
        raise PairingError(f"{code!r} is not a pairing code: it has {CODE_LETTERS} letters and "
                           "digits in groups of four, like ABCD-EFGH-JKMN-PQRS.")
    return text


def _derive(code: str, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_FORMAT,
                info=label).derive(normalise(code).encode())


def drop_id(code: str) -> str:
    return _derive(code, b"drop id")[:16].hex()


@dataclass(frozen=True)
class Invitation:
    sync_key: bytes
    relay: str
    from_device: str


def seal_invitation(code: str, invitation: Invitation) -> bytes:
    payload = json.dumps({"sync_key": invitation.sync_key.hex(), "relay": invitation.relay,
                          "from_device": invitation.from_device}).encode()
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(_derive(code, b"wrap key")).encrypt(nonce, payload, _FORMAT)


def open_invitation(code: str, blob: bytes) -> Invitation:
    try:
        payload = AESGCM(_derive(code, b"wrap key")).decrypt(
            blob[:NONCE_BYTES], blob[NONCE_BYTES:], _FORMAT)
        data = json.loads(payload)
        key = bytes.fromhex(data["sync_key"])
        if len(key) != SYNC_KEY_BYTES:
            raise ValueError("short key")
        return Invitation(key, str(data["relay"]), str(data["from_device"]))
    except (InvalidTag, ValueError, KeyError, TypeError):
        raise PairingError("the pairing offer did not open with that code; it was altered "
                           "or made for another code. Pair again.") from None


__all__ = ["Invitation", "drop_id", "new_code", "normalise", "open_invitation",
           "seal_invitation"]
