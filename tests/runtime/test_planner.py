"""Tier and fallback decisions for simulated devices: pure functions, no model needed."""

from __future__ import annotations

from smallhold.runtime.device import GB, simulated
from smallhold.runtime.planner import footprint, plan_model
from smallhold.runtime.registry import QWEN_0_5B, QWEN_1_5B, SMOLLM2_135M

INSTALLED = [QWEN_1_5B, QWEN_0_5B, SMOLLM2_135M]


def test_phone_gets_4bit_weights_and_kv() -> None:
    phone = simulated(3, available_gb=1.8).read()
    plan = plan_model(phone, QWEN_1_5B, INSTALLED, n_ctx=4096)
    assert plan is not None
    assert (plan.tier, plan.kv_cache, plan.model) == ("4bit", "q4_0", QWEN_1_5B.name)
    assert any("under 6 GB" in r for r in plan.reasons)


def test_laptop_gets_8bit_kv_and_says_no_8bit_weights_installed() -> None:
    laptop = simulated(16, available_gb=12).read()
    plan = plan_model(laptop, QWEN_1_5B, INSTALLED, n_ctx=4096)
    assert plan is not None
    assert (plan.tier, plan.kv_cache, plan.weights_bits) == ("8bit", "q8_0", 4)
    assert any("no 8-bit weight file" in r for r in plan.reasons)
    # said as what it is, not as "tier 8bit" beside a 4-bit file
    assert plan.describe() == "4-bit weights, 8-bit KV cache (q8_0), context 4,096"


def test_falls_back_to_a_smaller_model_when_ram_is_short() -> None:
    tight = simulated(3, available_gb=0.9).read()
    plan = plan_model(tight, QWEN_1_5B, INSTALLED, n_ctx=4096)
    assert plan is not None
    assert plan.model == QWEN_0_5B.name
    assert plan.fallback_from == QWEN_1_5B.name
    assert any("needs" in r and "available" in r for r in plan.reasons)


def test_nothing_fits() -> None:
    assert plan_model(simulated(1, available_gb=0.05).read(), QWEN_1_5B, INSTALLED,
                      n_ctx=4096) is None


def test_evictable_memory_counts() -> None:
    device = simulated(8, available_gb=0.5).read()
    fallback = plan_model(device, QWEN_1_5B, INSTALLED, n_ctx=2048, reserved=0)
    assert fallback is not None and fallback.fallback_from == QWEN_1_5B.name
    plan = plan_model(device, QWEN_1_5B, INSTALLED, n_ctx=2048, reserved=2 * GB)
    assert plan is not None and plan.model == QWEN_1_5B.name


def test_kv_footprint_scales_with_context_and_type() -> None:
    small = footprint(QWEN_1_5B, 2048, "f16").kv_cache
    assert footprint(QWEN_1_5B, 4096, "f16").kv_cache == 2 * small
    assert footprint(QWEN_1_5B, 4096, "q4_0").kv_cache < footprint(QWEN_1_5B, 4096, "q8_0").kv_cache
    # 28 layers x 2 KV heads x 128 dims x 2 (K,V) x 2 bytes = 28 KiB per token at f16
    assert small == 28 * 1024 * 2048
