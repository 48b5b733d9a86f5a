"""Model load cost: smallhold's ModelManager against a raw ``llama_cpp.Llama`` of the same file.

For each model, every repeat runs two fresh subprocesses (one per contender, the order
alternating between repeats). Each subprocess measures:

- first load in a fresh process (the file may still be in the OS page cache: dropping it
  needs root; ``--evict-page-cache`` asks the kernel to drop it with ``posix_fadvise``, which
  is best effort and cannot evict pages another process has mapped);
- warm first token: TTFT of a short prompt right after the load;
- unload and reload in the same process (smallhold: ``manager.unload(name)`` then
  ``manager.load(name)``; raw: ``Llama.close()`` then a new ``Llama``), and TTFT after that;
- peak RSS of the process (``ru_maxrss``) at the end.

Both contenders use the KV-cache type and n_ctx that the manager plans on this machine (or
``--kv-cache``/``--n-ctx``), the same threads, and the same file. Run from the repo root:

    .venv/bin/python bench/bench_load.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _common as common
from _common import fmt, fmt_ratio, log, md_table, median, ratio

DEFAULT_MODELS = ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct",
                  "qwen2.5-coder-1.5b-instruct")
PROMPT = [{"role": "system", "content": "You are a helpful assistant."},
          {"role": "user", "content": "Say hello in five words."}]
FIRST_TOKEN_MAX = 8
WORKER_TIMEOUT = 1800


# -- worker (runs in a fresh subprocess) --------------------------------------------------


def _evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _raw_ttft(llm: Any) -> float:
    started = time.perf_counter()
    stream = llm.create_chat_completion(messages=PROMPT, temperature=0.0, seed=1234,
                                        max_tokens=FIRST_TOKEN_MAX, stream=True)
    first: float | None = None
    for chunk in stream:
        if first is None and chunk["choices"][0]["delta"].get("content"):
            first = time.perf_counter()
    return (first or time.perf_counter()) - started


def _smallhold_ttft(manager: Any, name: str) -> float:
    from smallhold.runtime.types import Delta, GenerationParams, Message

    messages = [Message(**m) for m in PROMPT]
    params = GenerationParams(max_tokens=FIRST_TOKEN_MAX, temperature=0.0, seed=1234)
    started = time.perf_counter()
    first: float | None = None
    with manager.use(name) as engine:
        for event in engine.chat(messages, params):
            if first is None and isinstance(event, Delta) and event.text:
                first = time.perf_counter()
    return (first or time.perf_counter()) - started


def worker(args: argparse.Namespace) -> dict[str, Any]:
    path = Path(args.model_path)
    if args.evict_page_cache:
        _evict(path)
    out: dict[str, Any] = {"contender": args.worker, "model": args.model}
    t = time.perf_counter()
    import llama_cpp  # noqa: F401  (timed on its own, out of the load)

    if args.worker == "raw":
        out["import_s"] = time.perf_counter() - t
        from llama_cpp import Llama

        kwargs = common.llama_kwargs(str(path), args.n_ctx, args.threads, args.kv_cache)
        t = time.perf_counter()
        llm = Llama(**kwargs)
        out["load_s"] = time.perf_counter() - t
        out["ttft_s"] = _raw_ttft(llm)
        t = time.perf_counter()
        llm.close()
        del llm
        out["unload_s"] = time.perf_counter() - t
        t = time.perf_counter()
        llm = Llama(**kwargs)
        out["reload_s"] = time.perf_counter() - t
        out["ttft_after_reload_s"] = _raw_ttft(llm)
        out["n_ctx"] = int(llm.n_ctx())
        out["kv_cache"] = args.kv_cache
        llm.close()
    else:
        from smallhold.config import RuntimeSettings
        from smallhold.paths import resolve_paths
        from smallhold.runtime.device import PsutilProbe
        from smallhold.runtime.engine import LlamaEngine
        from smallhold.runtime.manager import ModelManager

        out["import_s"] = time.perf_counter() - t

        def loader(spec: Any, registry_path: Path, options: Any) -> LlamaEngine:
            return LlamaEngine(spec, path, options)  # the file the raw contender loads

        settings = RuntimeSettings(n_threads=args.threads, n_ctx=args.n_ctx,
                                   kv_cache=args.kv_cache)
        manager = ModelManager(settings, resolve_paths(), PsutilProbe(), loader=loader)
        t = time.perf_counter()
        info = manager.load(args.model)
        out["load_s"] = time.perf_counter() - t
        out["engine_load_s"] = info.load_seconds
        if info.name != args.model:
            raise SystemExit(f"the manager loaded {info.name}, not {args.model} (low RAM?)")
        out["ttft_s"] = _smallhold_ttft(manager, args.model)
        t = time.perf_counter()
        if not manager.unload(args.model):
            raise SystemExit(f"manager.unload({args.model!r}) did nothing")
        out["unload_s"] = time.perf_counter() - t
        t = time.perf_counter()
        info = manager.load(args.model)
        out["reload_s"] = time.perf_counter() - t
        out["engine_reload_s"] = info.load_seconds
        out["ttft_after_reload_s"] = _smallhold_ttft(manager, args.model)
        out["n_ctx"] = info.n_ctx
        out["kv_cache"] = info.kv_cache
        manager.close()
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


# -- parent -------------------------------------------------------------------------------


def plan_for(name: str, args: argparse.Namespace) -> tuple[str, int, str]:
    """The KV-cache type, n_ctx and tier the manager would use for ``name`` here."""
    from smallhold.config import RuntimeSettings
    from smallhold.paths import resolve_paths
    from smallhold.runtime.device import PsutilProbe
    from smallhold.runtime.manager import ModelManager

    settings = RuntimeSettings(n_threads=args.threads, n_ctx=args.n_ctx,
                               kv_cache=args.kv_cache)
    plan = ModelManager(settings, resolve_paths(), PsutilProbe()).plan(name)
    if plan.model != name:
        raise SystemExit(f"the manager would load {plan.model} instead of {name}: "
                         + "; ".join(plan.reasons))
    return plan.kv_cache, plan.n_ctx, plan.tier


def run_worker(contender: str, model: common.ModelFile, kv: str, n_ctx: int,
               args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", contender,
           "--models", model.name, "--model-path-resolved", str(model.path),
           "--threads", str(args.threads), "--n-ctx", str(n_ctx), "--kv-cache", kv]
    if args.evict_page_cache:
        cmd.append("--evict-page-cache")
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=WORKER_TIMEOUT,
                          check=False)
    wall = time.perf_counter() - t
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{contender} worker for {model.name} failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(lines[-1])
    result["process_wall_s"] = wall
    return result


METRICS = (
    ("load_s", "first load in a fresh process (ms)", 1e3),
    ("ttft_s", "warm first token right after load (ms)", 1e3),
    ("unload_s", "unload (ms)", 1e3),
    ("reload_s", "reload in the same process (ms)", 1e3),
    ("ttft_after_reload_s", "first token after reload (ms)", 1e3),
    ("peak_rss_bytes", "peak RSS (MiB)", 1 / common.MB),
    ("import_s", "import: llama_cpp (+ smallhold runtime) (ms)", 1e3),
    ("process_wall_s", "whole subprocess (s)", 1.0),
)


def summarise(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = {k for r in runs for k, v in r.items() if isinstance(v, int | float)}
    return {k: median([r[k] for r in runs if k in r]) for k in sorted(keys)}


def md_model(model: common.ModelFile, plan: dict[str, Any], sh: dict[str, float],
             raw: dict[str, float], repeats: int) -> list[str]:
    rows = []
    for key, label, scale in METRICS:
        a, b = sh.get(key), raw.get(key)
        if a is None or b is None:
            continue
        digits = 2 if scale == 1.0 else (0 if key == "peak_rss_bytes" else 1)
        rows.append([label, fmt(a * scale, digits), fmt(b * scale, digits),
                     fmt_ratio(ratio(a, b)), "lower"])
    engine = sh.get("engine_load_s")
    engine2 = sh.get("engine_reload_s")
    return [
        f"### {model.name}",
        "",
        f"`{model.path.name}`, {model.size / common.MB:,.0f} MiB, sha256 {model.sha256[:12]}…; "
        f"KV cache {plan['kv_cache']}, n_ctx {plan['n_ctx']} (manager tier {plan['tier']}); "
        f"median of {repeats} fresh process{'es' if repeats > 1 else ''} per contender.",
        "",
        md_table(["metric", "smallhold (ModelManager)", "raw llama_cpp.Llama", "smallhold/raw",
                  "better when ratio is"], rows),
        "",
        f"smallhold's load is `manager.load(name)` (header check + sidecar check + plan + "
        f"LlamaEngine); the LlamaEngine constructor alone took {fmt((engine or 0) * 1e3)} ms "
        f"(first) and {fmt((engine2 or 0) * 1e3)} ms (reload).",
    ]


def parent(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    overrides = dict(item.split("=", 1) for item in args.model_path)
    models = [common.resolve_model(n, overrides.get(n)) for n in names]
    info = common.machine()
    started = time.perf_counter()
    plans: dict[str, dict[str, Any]] = {}
    for m in models:
        kv, n_ctx, tier = plan_for(m.name, args)
        plans[m.name] = {"kv_cache": kv, "n_ctx": n_ctx, "tier": tier}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        m.name: {"smallhold": [], "raw": []} for m in models}
    for r in range(args.repeats):
        for m in models:
            order = ("smallhold", "raw") if r % 2 == 0 else ("raw", "smallhold")
            for contender in order:
                p = plans[m.name]
                res = run_worker(contender, m, p["kv_cache"], p["n_ctx"], args)
                runs[m.name][contender].append(res)
                log(f"repeat {r + 1}/{args.repeats} {m.name} {contender:9s} "
                    f"load {res['load_s'] * 1e3:7.1f} ms  ttft {res['ttft_s'] * 1e3:7.1f} ms  "
                    f"reload {res['reload_s'] * 1e3:7.1f} ms  "
                    f"rss {res['peak_rss_bytes'] / common.MB:6.0f} MiB")
    info["loadavg_end"] = list(os.getloadavg())
    info["bench_seconds"] = time.perf_counter() - started
    summary = {m.name: {c: summarise(runs[m.name][c]) for c in ("smallhold", "raw")}
               for m in models}
    extra = [
        ("models", "; ".join(m.label for m in models)),
        ("threads", f"{args.threads} (both contenders)"),
        ("n_ctx / KV cache", "; ".join(f"{n}: {p['n_ctx']} / {p['kv_cache']}"
                                       for n, p in plans.items())),
        ("page cache", "evicted with posix_fadvise(DONTNEED) before each first load (best "
                       "effort)" if args.evict_page_cache else
                       "not dropped: a first load in a fresh process may read from RAM"),
    ]
    lines = [
        "## Load benchmark: smallhold ModelManager vs raw llama_cpp.Llama",
        "",
        f"Command: `{common.command_line()}`",
        "",
        *common.machine_lines(info, extra),
        "",
        "All times: lower is better, so a ratio smallhold/raw **below 1 favours smallhold**. "
        f"TTFT uses a short chat prompt (max {FIRST_TOKEN_MAX} tokens, greedy).",
    ]
    for m in models:
        lines += ["", *md_model(m, plans[m.name], summary[m.name]["smallhold"],
                                summary[m.name]["raw"], args.repeats)]
    markdown = "\n".join(lines)
    data = {"bench": "load", "command": common.command_line(), "args": vars(args),
            "machine": info, "plans": plans,
            "models": [{"name": m.name, "path": str(m.path), "size": m.size,
                        "sha256": m.sha256} for m in models],
            "summary": summary, "runs": runs}
    json_path, md_path = common.write_results(args.name or "load", data, markdown)
    print(markdown)
    log(f"done in {info['bench_seconds']:.0f} s; wrote {json_path} and {md_path}")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models", "--model", dest="models", default=",".join(DEFAULT_MODELS),
                   help="comma-separated registry names or aliases")
    p.add_argument("--model-path", action="append", default=[], metavar="NAME=PATH",
                   help="use PATH for model NAME instead of the registry's file (repeatable; "
                        "the registry file must still be installed: the manager verifies it)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-ctx", type=int, default=4096)
    p.add_argument("--kv-cache", choices=("auto", *sorted(common.GGML_TYPES)), default="auto",
                   help="auto = what the manager plans for this machine")
    p.add_argument("--repeats", type=int, default=3, help="fresh processes per contender")
    p.add_argument("--evict-page-cache", action="store_true",
                   help="posix_fadvise(DONTNEED) the file before each first load")
    p.add_argument("--name", help="results file stem (default: load)")
    p.add_argument("--worker", choices=("smallhold", "raw"), help=argparse.SUPPRESS)
    p.add_argument("--model-path-resolved", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for item in args.model_path:
        if "=" not in item:
            p.error(f"--model-path takes NAME=PATH, got {item!r}")
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        args.model = args.models
        args.model_path = args.model_path_resolved
        print(json.dumps(worker(args)), flush=True)
        return 0
    return parent(args)


if __name__ == "__main__":
    raise SystemExit(main())
