"""The device side of the relay's HTTP API, with every failure turned into a typed error.

Nothing here can read a batch: it moves sealed blobs and counts the bytes on the wire (the
sync benchmark reports them). Proxies from the environment are ignored, so a sync never
takes a route the user did not choose.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import httpx

from smallhold.errors import (
    PairingError,
    RelayProtocolError,
    RelayRefusedError,
    RelayUnreachableError,
    SyncError,
)
from smallhold.store.sync.crypto import GroupKeys


@dataclass(frozen=True)
class SealedBatch:
    seq: int
    device: str
    batch_id: str
    blob: bytes


class RelayClient:
    """One relay, one group; ``sent``/``received`` count body bytes both ways."""

    def __init__(self, url: str, keys: GroupKeys | None = None, *, timeout_s: float = 30.0,
                 http: httpx.Client | None = None) -> None:
        """``http`` replaces the network client (tests pass Starlette's in-process one)."""
        self.url = url.rstrip("/")
        self.keys = keys
        self.sent = 0
        self.received = 0
        self._owns_http = http is None  # a client passed in belongs to the caller
        self._http = http or httpx.Client(base_url=self.url, timeout=timeout_s, trust_env=False)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> RelayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise RelayUnreachableError(
                f"the relay at {self.url} did not answer ({type(exc).__name__}). Your data "
                "is safe here; run the sync again when the relay is reachable.") from None
        self.sent += len(response.request.content or b"")
        self.received += len(response.content)
        if response.status_code >= 500 and response.status_code != 507:  # 507: quota, below
            raise RelayUnreachableError(f"the relay at {self.url} failed "
                                        f"(HTTP {response.status_code}); try again later.")
        return response

    def _group(self) -> GroupKeys:
        if self.keys is None:
            raise SyncError("this device is not paired; run `smallhold sync pair` or "
                            "`smallhold sync join CODE` first.")
        return self.keys

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._group().token}"}

    def _body(self, response: httpx.Response, what: str) -> dict[str, Any]:
        if response.status_code == 403:
            raise RelayRefusedError(f"the relay at {self.url} refused this group's token: "
                                    "another group registered the same id, or the relay was "
                                    "reset. Pair the devices again.")
        try:
            data = response.json()
        except ValueError:
            data = None
        error = data.get("error") if isinstance(data, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        if code == "unknown_group":
            raise RelayRefusedError(f"the relay at {self.url} does not know this sync group "
                                    "(it was reset, or is not the relay the group was paired "
                                    "on); run `smallhold sync pair` on a paired device to "
                                    "register the group there, then sync again.")
        if response.status_code == 507 and isinstance(error, dict):
            raise RelayRefusedError(f"the relay at {self.url} refused {what}: "
                                    f"{error.get('message')}. Nothing was lost here; try "
                                    "again once there is room.")
        if isinstance(error, dict):
            raise RelayProtocolError(f"the relay at {self.url} refused {what} (HTTP "
                                     f"{response.status_code}): {error.get('message')}."
                                     " Nothing was applied.")
        if not isinstance(data, dict) or response.status_code not in (200, 201):
            raise RelayProtocolError(f"the relay at {self.url} answered {what} with "
                                     f"HTTP {response.status_code} and no usable JSON; "
                                     "nothing was applied. Is that URL a smallhold relay?")
        return data

    def create_group(self) -> bool:
        """Register this group on the relay (pairing does it); True when it was new.

        The relay never creates a group as a side effect of an upload, so this explicit call
        is the only way in; it is idempotent for the group's own token.
        """
        keys = self._group()
        response = self._request("PUT", f"/v1/groups/{keys.group_id}", headers=self._auth(),
                                 json={})
        if response.status_code == 405:  # a relay older than this call: it registers a group
            return False                 # with the group's first upload
        return bool(self._body(response, "registering the group").get("created"))

    def put_batch(self, device: str, batch_id: str, blob: bytes) -> bool:
        """Upload a sealed batch; True when the relay already had it (a retried upload)."""
        keys = self._group()
        data = self._body(self._request(
            "POST", f"/v1/groups/{keys.group_id}/batches", headers=self._auth(),
            json={"device": device, "batch_id": batch_id,
                  "blob": base64.b64encode(blob).decode("ascii")}), "an upload")
        return bool(data.get("duplicate"))

    def batches(self, after: int, limit: int = 200) -> list[SealedBatch]:
        """The group's batches after relay sequence number ``after``, oldest first."""
        keys = self._group()
        data = self._body(self._request(
            "GET", f"/v1/groups/{keys.group_id}/batches", headers=self._auth(),
            params={"after": after, "limit": limit}), "a download")
        try:
            page = [SealedBatch(int(b["seq"]), str(b["device"]), str(b["batch_id"]),
                                base64.b64decode(b["blob"], validate=True))
                    for b in data["batches"]]
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise RelayProtocolError(f"the relay at {self.url} sent a page of batches in a "
                                     "shape smallhold does not know; nothing was applied."
                                     ) from None
        if any(b.seq <= after for b in page) or [b.seq for b in page] != sorted(
                {b.seq for b in page}):
            raise RelayProtocolError(f"the relay at {self.url} sent batches out of order; "
                                     "nothing was applied.")
        return page

    def put_pairing(self, pair_id: str, blob: bytes, ttl_s: float) -> None:
        self._body(self._request("PUT", f"/v1/pairings/{pair_id}",
                                 json={"blob": base64.b64encode(blob).decode("ascii"),
                                       "ttl_s": ttl_s}), "a pairing offer")

    def take_pairing(self, pair_id: str) -> bytes:
        response = self._request("GET", f"/v1/pairings/{pair_id}")
        if response.status_code == 404:
            raise PairingError("no pairing offer with that code on the relay: it is mistyped, "
                               "expired, or already used. Run `smallhold sync pair` again on "
                               "the first device.")
        data = self._body(response, "a pairing request")
        try:
            return base64.b64decode(str(data["blob"]), validate=True)
        except (KeyError, ValueError, binascii.Error):
            raise RelayProtocolError("the relay sent a pairing offer that is not base64."
                                     ) from None


__all__ = ["RelayClient", "SealedBatch"]
