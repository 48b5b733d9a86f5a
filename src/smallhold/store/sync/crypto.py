"""End-to-end encryption of sync batches: the relay stores and serves blobs it cannot read.

Every device of a group holds one random 32-byte sync key (inside its own vault). HKDF-SHA256
splits it into three values with separate jobs: the group id (the relay's name for the group),
a bearer token (proves membership to the relay, which keeps only its hash) and the AES-256-GCM
key. Knowing the first two lets the relay route and refuse strangers; only the third decrypts.

A batch is sealed with a random 96-bit nonce and associated data naming the group, the device
and the batch id, so a blob replayed under another device or batch id, or altered by one bit,
fails to open instead of being applied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from smallhold.errors import RelayProtocolError

SYNC_KEY_BYTES = 32
NONCE_BYTES = 12
FORMAT = b"smallhold-sync-v1"


def _derive(key: bytes, label: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=FORMAT, info=label).derive(key)


@dataclass(frozen=True)
class GroupKeys:
    group_id: str
    token: str
    enc: bytes

    @classmethod
    def from_sync_key(cls, key: bytes) -> GroupKeys:
        if len(key) != SYNC_KEY_BYTES:
            raise ValueError(f"a sync key is {SYNC_KEY_BYTES} bytes, got {len(key)}")
        return cls(group_id=_derive(key, b"group id", 16).hex(),
                   token=_derive(key, b"relay token").hex(),
                   enc=_derive(key, b"batch encryption"))


def new_sync_key() -> bytes:
    return os.urandom(SYNC_KEY_BYTES)


def _aad(keys: GroupKeys, device: str, batch_id: str) -> bytes:
    return b"|".join((FORMAT, keys.group_id.encode(), device.encode(), batch_id.encode()))


def seal(keys: GroupKeys, device: str, batch_id: str, payload: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(keys.enc).encrypt(nonce, payload, _aad(keys, device, batch_id))


def open_sealed(keys: GroupKeys, device: str, batch_id: str, blob: bytes) -> bytes:
    """Decrypt a batch; a forged, altered or moved blob is :class:`RelayProtocolError`.

    The message is also the reason a pulling device records when it quarantines the batch.
    """
    if len(blob) < NONCE_BYTES + 16:
        raise RelayProtocolError(f"batch {batch_id} from device {device} is too short to be "
                                 f"a sealed batch ({len(blob)} bytes): no device of this group "
                                 "wrote it; not applied.")
    try:
        return AESGCM(keys.enc).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:],
                                        _aad(keys, device, batch_id))
    except InvalidTag:
        raise RelayProtocolError(
            f"batch {batch_id} from device {device} failed authentication: it was altered, "
            "replayed under another name, or sealed with another group's key; not applied."
            ) from None


__all__ = ["NONCE_BYTES", "SYNC_KEY_BYTES", "GroupKeys", "new_sync_key", "open_sealed", "seal"]
