"""Fixtures for the store: an open encrypted vault on a random key, no passphrase needed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from smallhold.store import sqlcipher
from smallhold.store.handle import VaultHandle


@pytest.fixture
def vault_handle(tmp_path: Path) -> Iterator[VaultHandle]:
    path = tmp_path / "vault.db"
    handle = VaultHandle(sqlcipher.connect(path, os.urandom(sqlcipher.KEY_BYTES)), path=path,
                         profile="test")
    yield handle
    handle.close()
