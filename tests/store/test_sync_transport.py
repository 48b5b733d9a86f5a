"""The relay client against relays that misbehave: typed errors, nothing applied."""

from __future__ import annotations

import httpx
import pytest

from smallhold.errors import RelayProtocolError, RelayUnreachableError, SyncError
from smallhold.store.sync import crypto
from smallhold.store.sync.transport import RelayClient

KEYS = crypto.GroupKeys.from_sync_key(bytes(32))


def client(handler: object) -> RelayClient:
    http = httpx.Client(base_url="http://relay", transport=httpx.MockTransport(handler))  # type: ignore[arg-type]
    return RelayClient("http://relay", KEYS, http=http)


def test_html_instead_of_json_is_a_protocol_error() -> None:
    relay = client(lambda request: httpx.Response(200, text="<html>captive portal</html>"))
    with pytest.raises(RelayProtocolError, match="no usable JSON"):
        relay.batches(0)


def test_a_page_in_the_wrong_shape_or_order_is_refused() -> None:
    relay = client(lambda request: httpx.Response(200, json={"batches": [{"seq": "x"}]}))
    with pytest.raises(RelayProtocolError, match="shape"):
        relay.batches(0)
    page = {"batches": [{"seq": s, "device": "d", "batch_id": "b", "blob": "AAAA"}
                        for s in (5, 3)]}
    relay = client(lambda request: httpx.Response(200, json=page))
    with pytest.raises(RelayProtocolError, match="out of order"):
        relay.batches(0)
    relay = client(lambda request: httpx.Response(200, json={"batches": page["batches"][1:]}))
    with pytest.raises(RelayProtocolError, match="out of order"):
        relay.batches(4)  # a batch at or before the cursor is a replay of old pages


def test_server_errors_and_refusals_say_what_to_do() -> None:
    relay = client(lambda request: httpx.Response(503, text="busy"))
    with pytest.raises(RelayUnreachableError, match="try again later"):
        relay.put_batch("d", "1-1", b"x" * 40)
    relay = client(lambda request: httpx.Response(403, json={"error": {"code": "forbidden"}}))
    with pytest.raises(SyncError, match="Pair the devices again"):
        relay.batches(0)
    relay = client(lambda request: httpx.Response(
        413, json={"error": {"code": "too_large", "message": "the request is over 1 bytes"}}))
    with pytest.raises(RelayProtocolError, match="over 1 bytes"):
        relay.put_batch("d", "1-1", b"x")
    with pytest.raises(SyncError, match="not paired"):
        RelayClient("http://relay").batches(0)
