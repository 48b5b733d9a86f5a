"""Device facts through one injectable probe, so tests can be a 3 GB phone at 5 % battery."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Protocol

import psutil

MB = 1024 * 1024
GB = 1024 * MB


@dataclass(frozen=True)
class DeviceState:
    total_ram: int
    available_ram: int
    cpu_count: int
    battery_percent: float | None = None
    charging: bool | None = None
    thermal_celsius: float | None = None
    idle_seconds: float = 0.0

    @property
    def on_battery(self) -> bool:
        return self.charging is False


class DeviceProbe(Protocol):
    def read(self) -> DeviceState: ...


class PsutilProbe:
    """The real machine. ``idle_seconds`` is time since the runtime last served a request."""

    def __init__(self) -> None:
        self._last_activity = time.monotonic()

    def touch(self) -> None:
        self._last_activity = time.monotonic()

    def read(self) -> DeviceState:
        memory = psutil.virtual_memory()
        battery = psutil.sensors_battery() if hasattr(psutil, "sensors_battery") else None
        temperature: float | None = None
        sensors = getattr(psutil, "sensors_temperatures", None)
        if sensors is not None:
            try:
                readings = [t.current for group in sensors().values() for t in group if t.current]
                temperature = max(readings) if readings else None
            except (OSError, RuntimeError):
                temperature = None
        return DeviceState(
            total_ram=int(memory.total),
            available_ram=int(memory.available),
            cpu_count=psutil.cpu_count(logical=False) or os.cpu_count() or 1,
            battery_percent=float(battery.percent) if battery else None,
            charging=bool(battery.power_plugged) if battery else None,
            thermal_celsius=temperature,
            idle_seconds=time.monotonic() - self._last_activity,
        )


class StaticProbe:
    """A device whose facts the caller sets; tests change ``state`` between reads."""

    def __init__(self, state: DeviceState) -> None:
        self.state = state

    def touch(self) -> None:
        return None

    def read(self) -> DeviceState:
        return self.state


def simulated(total_gb: float, available_gb: float | None = None, *, cpus: int = 4,
              battery: float | None = None, charging: bool | None = None) -> StaticProbe:
    """A probe for a simulated device, e.g. ``simulated(3, battery=5, charging=False)``."""
    available = total_gb * 0.6 if available_gb is None else available_gb
    return StaticProbe(DeviceState(
        total_ram=int(total_gb * GB), available_ram=int(available * GB), cpu_count=cpus,
        battery_percent=battery, charging=charging,
    ))
