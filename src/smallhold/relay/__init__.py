"""The sync relay (``smallhold sync serve``): an HTTP server beside the API server.

It stores sealed batches for device groups and one-time pairing drops, and never holds a
key or plaintext; the devices' side of sync (sealing, merging, the change log) is
:mod:`smallhold.store.sync`. The app and its SQLite store are in :mod:`.app`.
"""

from smallhold.relay.app import RelayStore, create_relay_app, relay_policy

__all__ = ["RelayStore", "create_relay_app", "relay_policy"]
