"""Which model, weight tier and KV-cache type fit a device: pure functions over data.

The rule: 4-bit everything on small or old devices (under 6 GB of RAM), 8-bit where there is
room. Weights can only be chosen among the files installed, and every bundled file is 4-bit,
so on a large device the plan says plainly that no 8-bit weight file is installed; the KV cache
is a load-time choice of llama.cpp (``type_k``/``type_v``), so it follows the tier exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from smallhold.runtime.device import GB, MB, DeviceState
from smallhold.runtime.registry import ModelSpec

SMALL_DEVICE_BYTES = 6 * GB
OVERHEAD_BYTES = 160 * MB
KV_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}

# Per token KV elements = 2 (K and V) * layers * kv_heads * head_dim, read from each file's
# GGUF metadata (block_count, head_count_kv, embedding_length / head_count).
_KV_ELEMENTS_PER_TOKEN = {
    "qwen2.5-coder-1.5b-instruct": 2 * 28 * 2 * 128,
    "qwen2.5-coder-0.5b-instruct": 2 * 24 * 2 * 64,
    "smollm2-135m-instruct": 2 * 30 * 3 * 64,
    "gemma-3-270m": 2 * 18 * 1 * 256,
}


@dataclass(frozen=True)
class Footprint:
    weights: int
    kv_cache: int
    overhead: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.overhead


@dataclass(frozen=True)
class Plan:
    model: str
    tier: str
    weights_bits: int
    kv_cache: str
    n_ctx: int
    footprint: Footprint
    reasons: list[str] = field(default_factory=list)
    fallback_from: str | None = None

    def describe(self) -> str:
        """What was chosen in words a user reads without the tier vocabulary: the weights'
        bits and the KV cache's, separately ("tier 8bit" beside a 4-bit file confused)."""
        kv = {"q4_0": "4-bit", "q8_0": "8-bit", "f16": "16-bit"}.get(self.kv_cache,
                                                                   self.kv_cache)
        return (f"{self.weights_bits}-bit weights, {kv} KV cache ({self.kv_cache}), "
                f"context {self.n_ctx:,}")


def footprint(spec: ModelSpec, n_ctx: int, kv_cache: str) -> Footprint:
    per_token = _KV_ELEMENTS_PER_TOKEN.get(spec.name, 2 * 24 * 2 * 128)
    kv = int(per_token * n_ctx * KV_BYTES_PER_ELEMENT[kv_cache])
    return Footprint(weights=spec.size, kv_cache=kv, overhead=OVERHEAD_BYTES)


def tier_for(device: DeviceState) -> str:
    return "4bit" if device.total_ram < SMALL_DEVICE_BYTES else "8bit"


def kv_cache_for(tier: str, requested: str = "auto") -> str:
    if requested != "auto":
        return requested
    return "q4_0" if tier == "4bit" else "q8_0"


def smaller_models(wanted: ModelSpec, installed: Sequence[ModelSpec]) -> list[ModelSpec]:
    """Installed models of the same kind smaller than ``wanted``, largest first."""
    return sorted((s for s in installed if s.kind == wanted.kind and s.name != wanted.name
                   and s.size < wanted.size), key=lambda s: -s.size)


def plan_model(
    device: DeviceState,
    wanted: ModelSpec,
    installed: Sequence[ModelSpec],
    *,
    n_ctx: int,
    kv_request: str = "auto",
    weights_request: str = "auto",
    reserved: int = 0,
) -> Plan | None:
    """Choose a model and tier, falling back to smaller installed chat models when it won't fit.

    ``reserved`` is memory that evicting idle models could free; returns None when nothing fits.
    """
    tier = weights_request if weights_request != "auto" else tier_for(device)
    kv = kv_cache_for(tier, kv_request)
    ram_gb = device.total_ram / GB
    reasons = [
        f"{ram_gb:.1f} GB total RAM is {'under' if tier == '4bit' else 'at least'} "
        f"{SMALL_DEVICE_BYTES / GB:.0f} GB: {tier} tier"
        + (" (set by runtime.weights)" if weights_request != "auto" else ""),
        f"KV cache {kv}" + (" (set by runtime.kv_cache)" if kv_request != "auto" else
                            f" for the {tier} tier"),
    ]
    candidates = [wanted, *smaller_models(wanted, installed)]
    budget = device.available_ram + reserved
    for spec in candidates:
        fp = footprint(spec, n_ctx, kv)
        if fp.total > budget:
            reasons.append(
                f"{spec.name} needs {fp.total / MB:,.0f} MB (weights {fp.weights / MB:,.0f} + KV "
                f"{fp.kv_cache / MB:,.0f} + overhead {fp.overhead / MB:,.0f}) but "
                f"{budget / MB:,.0f} MB is available"
            )
            continue
        bits_note = _weights_note(spec, tier, installed)
        if bits_note:
            reasons.append(bits_note)
        reasons.append(
            f"{spec.name}: {fp.total / MB:,.0f} MB predicted, {budget / MB:,.0f} MB available"
        )
        return Plan(
            model=spec.name, tier=tier, weights_bits=spec.bits, kv_cache=kv, n_ctx=n_ctx,
            footprint=fp, reasons=reasons,
            fallback_from=wanted.name if spec.name != wanted.name else None,
        )
    return None


def _weights_note(spec: ModelSpec, tier: str, installed: Sequence[ModelSpec]) -> str | None:
    if tier == "8bit" and spec.bits < 8:
        eight = [s.name for s in installed if s.family == spec.family and s.bits == 8]
        if not eight:
            return (f"8-bit tier, but no 8-bit weight file of {spec.family} is installed: using "
                    f"the {spec.quantization} ({spec.bits}-bit) file")
    return None
