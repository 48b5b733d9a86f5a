"""pocket on a simulated 3 GB phone vs a 16 GB laptop: the plan, tokens/s and peak RSS.

Each device runs in its own process (so peak RSS is that device's alone) with the runtime's
probe replaced by a simulated one; the model manager plans from it as on a real device
(weights tier, KV-cache type, fallback to a smaller model when the default does not fit).
Then three pocket turns of up to 128 tokens each in one conversation.

    .venv/bin/python bench/bench_pocket_device.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import _common as common
from _common import fmt, log, md_table

DEVICES = {"phone-3gb": (3.0, 1.8, 2048), "laptop-16gb": (16.0, 11.0, 8192)}
QUESTIONS = ["How do I keep basil alive on a windowsill?",
             "And how often should I water it?",
             "Give me three quick pasta dishes that use it."]


def run_device(name: str) -> dict[str, Any]:
    from smallhold.apps.pocket.assistant import Pocket
    from smallhold.config import load_settings
    from smallhold.kit import Home, Overrides
    from smallhold.runtime import Finish, GenerationParams, simulated

    total, available, n_ctx = DEVICES[name]
    settings = load_settings()
    settings.runtime.n_ctx = n_ctx
    probe = simulated(total, available, cpus=os.cpu_count() or 2)
    with Home.open("default", app="pocket",
                   overrides=Overrides(settings=settings, probe=probe)) as home:
        runtime = home.runtime
        assert runtime.manager is not None
        plan = runtime.manager.plan(None)
        pocket = Pocket.on(home, model=plan.model)
        params = GenerationParams(max_tokens=128, temperature=0.0, seed=1)
        tokens, decode_s, turns = 0, 0.0, []
        for question in QUESTIONS:
            started = time.perf_counter()
            first = None
            for event in pocket.ask("bench", question, params):
                if first is None:
                    first = time.perf_counter()
                if isinstance(event, Finish):
                    tokens += event.usage.completion_tokens
            end = time.perf_counter()
            decode_s += end - (first or end)
            turns.append(round(end - started, 2))
    return {"device": name, "model": plan.model, "tier": plan.tier, "kv_cache": plan.kv_cache,
            "n_ctx": plan.n_ctx, "reasons": plan.reasons, "tokens": tokens,
            "decode_tok_s": tokens / decode_s if decode_s else None, "turn_s": turns,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", choices=sorted(DEVICES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_device(args.one)))
        return 0
    info = common.machine()
    results = []
    for name in DEVICES:
        log(f"{name}: running in its own process")
        with tempfile.TemporaryDirectory(prefix="smallhold-bench-device-") as home:
            env = {**os.environ, "SMALLHOLD_HOME": home,
                   "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
            done = subprocess.run([sys.executable, __file__, "--one", name], env=env,
                                  capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        log(f"  {results[-1]['model']} {results[-1]['tier']}: "
            f"{results[-1]['decode_tok_s']:.1f} tok/s, {results[-1]['peak_rss_mb']:.0f} MB")
    info["loadavg_end"] = list(os.getloadavg())
    rows = [[r["device"], r["model"], r["tier"], r["kv_cache"], f"{r['n_ctx']:,}",
             fmt(r["decode_tok_s"], 1), fmt(r["peak_rss_mb"], 0),
             " / ".join(f"{s:.1f}" for s in r["turn_s"])] for r in results]
    lines = ["### pocket on a simulated 3 GB phone vs a 16 GB laptop", "",
             f"Command: `{common.command_line()}`", "", *common.machine_lines(info, [
                 ("devices", "simulated probes: 3 GB total / 1.8 GB free, n_ctx 2048; 16 GB "
                             "total / 11 GB free, n_ctx 8192 (same CPU for both)"),
                 ("work", "three pocket turns in one conversation, up to 128 tokens each, "
                          "temperature 0"),
             ]), "",
             md_table(["device", "model", "weights tier", "KV cache", "context", "decode tok/s",
                       "peak RSS MB", "turn seconds"], rows, "lllllrrr"), ""]
    for r in results:
        lines.append(f"- {r['device']}: " + "; ".join(r["reasons"]))
    markdown = "\n".join(lines)
    print(markdown)
    common.write_results("pocket_device", {"machine": info, "results": results}, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
