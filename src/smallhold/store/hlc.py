"""Hybrid logical clocks: an order of changes that every device agrees on, offline.

A timestamp is (wall milliseconds, counter, device). It never goes backwards on one device,
even when the system clock does, and after seeing a remote change a device's next timestamp
is later than it, so "edit B was made knowing edit A" shows in the order. Encoded as a fixed
width string, timestamps sort as text (in SQL too).
"""

from __future__ import annotations

from dataclasses import dataclass

from smallhold.errors import SyncError

MAX_DRIFT_MS = 24 * 3600 * 1000  # a remote clock a day ahead of ours is a bug, not a timezone


@dataclass(frozen=True, order=True)
class Timestamp:
    wall_ms: int
    counter: int
    device: str

    def encode(self) -> str:
        return f"{self.wall_ms:015d}-{self.counter:06d}-{self.device}"

    @classmethod
    def decode(cls, text: str) -> Timestamp:
        try:
            wall, counter, device = text.split("-", 2)
            return cls(int(wall), int(counter), device)
        except ValueError:
            raise SyncError(f"not a clock timestamp: {text!r}") from None


class HybridClock:
    """The clock of one device; ``last`` is persisted by the caller after each change."""

    def __init__(self, device: str, last: Timestamp | None = None) -> None:
        self.device = device
        self.last = last or Timestamp(0, 0, device)

    def tick(self, now_s: float) -> Timestamp:
        """A timestamp for a local change, later than every one seen so far."""
        wall = max(int(now_s * 1000), self.last.wall_ms)
        counter = self.last.counter + 1 if wall == self.last.wall_ms else 0
        self.last = Timestamp(wall, counter, self.device)
        return self.last

    def observe(self, remote: Timestamp, now_s: float) -> Timestamp:
        """Merge a remote timestamp, so later local ticks order after it."""
        now_ms = int(now_s * 1000)
        if remote.wall_ms > now_ms + MAX_DRIFT_MS:
            raise SyncError(f"a change from device {remote.device} is dated more than a day "
                            "ahead of this device's clock; check the clocks of both devices.")
        wall = max(now_ms, self.last.wall_ms, remote.wall_ms)
        if wall == self.last.wall_ms == remote.wall_ms:
            counter = max(self.last.counter, remote.counter) + 1
        elif wall == self.last.wall_ms:
            counter = self.last.counter + 1
        elif wall == remote.wall_ms:
            counter = remote.counter + 1
        else:
            counter = 0
        self.last = Timestamp(wall, counter, self.device)
        return self.last


__all__ = ["MAX_DRIFT_MS", "HybridClock", "Timestamp"]
