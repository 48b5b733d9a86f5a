"""One sync of the profile, as a background job runs it: every enabled collection of every
app, validated against the models the apps declare (not only those opened so far in this
process, which is what a freshly started ``smallhold sync now`` would otherwise know)."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from pydantic import BaseModel

from smallhold.kit import registry
from smallhold.store.handle import VaultHandle
from smallhold.store.sync.client import SyncClient, SyncSettings
from smallhold.store.sync.transport import RelayClient


def sync_if_paired(handle: VaultHandle, http: httpx.Client | None = None,
                   models: Mapping[str, type[BaseModel]] | None = None) -> str | None:
    """Run one sync; None when this device is not paired or shares nothing (a skip).

    ``http`` replaces the network client (tests pass an in-process relay).
    """
    settings = SyncSettings(handle)
    if settings.sync_key is None or not settings.relay or not settings.enabled():
        return None
    known = dict(registry.collection_models() if models is None else models)
    with RelayClient(settings.relay, settings.keys(), http=http) as relay:
        report = SyncClient(handle, relay, models=known).run()
    return (f"sent {report.pushed_changes} change(s), applied {report.applied}, "
            f"{report.merged} kept local")


__all__ = ["sync_if_paired"]
