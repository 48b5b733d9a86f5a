"""smallhold's LlamaEngine against raw llama-cpp-python, side by side in one process.

Same GGUF file, same threads, same n_ctx, same KV-cache type, temperature 0, fixed seed.

1. decode: tokens/s and time to first token (TTFT) of one fresh prompt per repeat;
2. interleaved: two scripted conversations taking turns (A1 B1 A2 B2 …), TTFT per turn,
   smallhold (one session per conversation) vs raw re-sending the history, with and without
   ``LlamaRAMCache``;
3. sliding: the same with a small context, so history must be trimmed (smallhold:
   ``fit_window(block=8)``; raw: drop the oldest user+assistant pair until it fits).

Prints a markdown section on stdout (progress on stderr) and writes the raw numbers to
``bench/results/<name>.json``. Run from the repository root:

    .venv/bin/python bench/bench_runtime.py --model qwen2.5-coder-1.5b-instruct
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import _common as common
from _common import fmt, fmt_ratio, log, md_table, mean, median, ratio
from smallhold.runtime.context import PER_MESSAGE_OVERHEAD, fit_window
from smallhold.runtime.types import Delta, Finish, GenerationParams, Message

CountFn = Callable[[str], int]

# -- scripted text ------------------------------------------------------------------------

DECODE_SYSTEM = (
    "You are a knowledgeable teacher. You always answer with long, detailed, multi-paragraph "
    "explanations and never stop early."
)
DECODE_TOPICS = (
    "how hash tables handle collisions", "the history of the printing press",
    "how vaccines train the immune system", "why the sky is blue and sunsets are red",
    "how a compiler turns source code into machine code", "the water cycle on Earth",
    "how public-key cryptography works", "the causes of the French Revolution",
    "how bees make honey and organise their hive", "how TCP recovers from lost packets",
    "the life cycle of a star", "how garbage collectors find unused memory",
)


def decode_prompt(topic: str) -> list[Message]:
    return [
        Message(role="system", content=DECODE_SYSTEM),
        Message(role="user", content=(
            f"Write a long, detailed essay about {topic}. Explain its history, how it works "
            "step by step, common misconceptions, and give several worked examples."
        )),
    ]


WARMUP = [Message(role="system", content="You are a helpful assistant."),
          Message(role="user", content="Say hello.")]

SYSTEMS = {
    "A": ("You are Ada, a terse senior Python reviewer. You answer in short technical "
          "sentences about the inventory service the user is building. Never use lists."),
    "B": ("You are Bram, a cheerful allotment gardener. You give practical, concrete advice "
          "about growing vegetables on a small plot in a cool and wet climate."),
}

_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "A": {
        "thing": ("stock ledger", "order queue", "price cache", "warehouse importer",
                  "audit log", "barcode parser", "supplier client", "reorder job"),
        "verb": ("retries three times", "validates the quantity", "writes to Postgres",
                 "batches its updates", "holds a row lock", "emits a metric",
                 "checks the idempotency key", "rounds prices to cents"),
        "event": ("a supplier times out", "two orders arrive together", "the nightly import runs",
                  "the cache is cold", "a quantity goes negative", "the schema migrates"),
        "ask": ("move the transaction boundary", "add an index on the SKU column",
                "split the importer into two tasks", "replace the lock with a version column",
                "log the payload before parsing", "cache supplier prices for an hour"),
    },
    "B": {
        "thing": ("runner beans", "leeks", "compost heap", "raspberry canes",
                  "early potatoes", "brassica bed", "water butt", "cold frame"),
        "verb": ("got slug damage", "bolted early", "needs more nitrogen", "sits in shade",
                 "was mulched with straw", "grew leggy", "drains slowly", "was netted"),
        "event": ("the frost came late", "it rained for a week", "the soil warmed up",
                  "the pigeons found them", "the wind knocked the canes", "the days shortened"),
        "ask": ("sow a green manure", "move the bed to the sunny side", "add wood ash",
                "lift them before winter", "plant garlic in the gap", "build a second heap"),
    },
}


def user_turn(conv: str, turn: int) -> str:
    """A deterministic user message of roughly 40–80 tokens."""
    rng = random.Random(f"smallhold-bench-{conv}-{turn}")
    w = _WORDS[conv]
    pick = rng.choice
    return (
        f"Update {turn}: the {pick(w['thing'])} {pick(w['verb'])} when {pick(w['event'])}. "
        f"Before that, the {pick(w['thing'])} {pick(w['verb'])}, and the {pick(w['thing'])} "
        f"{pick(w['verb'])} whenever {pick(w['event'])}. Should I {pick(w['ask'])}, or "
        f"{pick(w['ask'])} first? Answer in one or two sentences."
    )


# -- contenders ---------------------------------------------------------------------------


@dataclass
class Turn:
    text: str
    ttft: float  # seconds from the call to the first streamed content
    total: float  # seconds from the call to the end of the stream
    completion_tokens: int
    prompt_tokens: int
    cached_tokens: int | None
    finish: str
    sent_messages: int

    @property
    def decode_tps(self) -> float:
        span = self.total - self.ttft
        return (self.completion_tokens - 1) / span if span > 0 and self.completion_tokens > 1 \
            else float("nan")


class SmallholdRunner:
    label = "smallhold"

    def __init__(self, model: common.ModelFile, n_ctx: int, threads: int, kv_cache: str,
                 seed: int) -> None:
        from smallhold.runtime.engine import LlamaEngine, LoadOptions

        options = LoadOptions(n_ctx=n_ctx, n_threads=threads, kv_cache=kv_cache, n_batch=512)
        self.engine = LlamaEngine(common.spec_for(model.name, model.path), model.path, options)
        if not self.engine.can_chat:
            self.engine.close()
            raise SystemExit(f"{model.path.name} has no chat template: use a chat model")
        self.seed = seed
        self.count: CountFn = self.engine.count_tokens

    @property
    def n_threads_batch(self) -> int:
        return int(self.engine.llm.context_params.n_threads_batch)

    def run(self, messages: Sequence[Message], max_tokens: int, session: str,
            window: Callable[[list[Message]], list[Message]] | None = None) -> Turn:
        params = GenerationParams(max_tokens=max_tokens, temperature=0.0, seed=self.seed)
        started = time.perf_counter()
        sent = window(list(messages)) if window else list(messages)
        first: float | None = None
        parts: list[str] = []
        finish: Finish | None = None
        for event in self.engine.chat(sent, params, session=session):
            if isinstance(event, Delta):
                if event.text:
                    if first is None:
                        first = time.perf_counter()
                    parts.append(event.text)
            else:
                finish = event
        end = time.perf_counter()
        assert finish is not None
        return Turn(
            text="".join(parts), ttft=(first or end) - started, total=end - started,
            completion_tokens=finish.usage.completion_tokens,
            prompt_tokens=finish.usage.prompt_tokens, cached_tokens=finish.usage.cached_tokens,
            finish=finish.finish_reason, sent_messages=len(sent),
        )

    def close(self) -> None:
        self.engine.close()


class RawRunner:
    def __init__(self, model: common.ModelFile, n_ctx: int, threads: int, kv_cache: str,
                 seed: int, *, ram_cache: bool) -> None:
        from llama_cpp import Llama, LlamaRAMCache
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.label = "raw+RAMCache" if ram_cache else "raw"
        self.llm = Llama(**common.llama_kwargs(str(model.path), n_ctx, threads, kv_cache),
                         seed=seed)
        if ram_cache:
            self.llm.set_cache(LlamaRAMCache(capacity_bytes=2 << 30))
        self.seed = seed
        # Only for counting prompt tokens after a run (outside the timed part).
        inner = self.llm._model
        eos, bos = inner.token_eos(), inner.token_bos()
        self._formatter = Jinja2ChatFormatter(
            template=self.llm.metadata.get("tokenizer.chat_template", ""),
            eos_token=inner.token_get_text(eos) if eos >= 0 else "",
            bos_token=inner.token_get_text(bos) if bos >= 0 else "",
        )
        self._add_bos = bool(inner.add_bos_token())

    @property
    def n_threads_batch(self) -> int:
        return int(self.llm.context_params.n_threads_batch)

    def count(self, text: str) -> int:
        """Same counting as LlamaEngine.count_tokens, so budgets mean the same thing."""
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=self._add_bos, special=False))

    def run(self, messages: Sequence[Message], max_tokens: int, session: str,
            window: Callable[[list[Message]], list[Message]] | None = None) -> Turn:
        del session  # raw llama-cpp-python has no notion of a conversation
        started = time.perf_counter()
        sent = window(list(messages)) if window else list(messages)
        stream = self.llm.create_chat_completion(
            messages=[m.model_dump() for m in sent],  # type: ignore[misc]
            temperature=0.0, seed=self.seed, max_tokens=max_tokens, stream=True,
        )
        first: float | None = None
        parts: list[str] = []
        finish = "length"
        for chunk in stream:
            choice = chunk["choices"][0]  # type: ignore[index]
            content = choice["delta"].get("content")  # type: ignore[union-attr]
            if content:
                if first is None:
                    first = time.perf_counter()
                parts.append(content)
            if choice.get("finish_reason"):
                finish = str(choice["finish_reason"])
        end = time.perf_counter()
        prompt_tokens = len(self.llm.tokenize(
            self._formatter(messages=[m.model_dump() for m in sent]).prompt.encode("utf-8"),
            add_bos=False, special=True))
        # llama-cpp-python stops after max_tokens sampled tokens (the last one is never
        # evaluated); on EOS every produced token has been evaluated, the EOS has not.
        produced = max_tokens if finish == "length" else int(self.llm.n_tokens) - prompt_tokens
        return Turn(
            text="".join(parts), ttft=(first or end) - started, total=end - started,
            completion_tokens=produced, prompt_tokens=prompt_tokens, cached_tokens=None,
            finish=finish, sent_messages=len(sent),
        )

    def close(self) -> None:
        self.llm.close()


Runner = SmallholdRunner | RawRunner


# -- window policies ----------------------------------------------------------------------


def trim_per_turn(messages: Sequence[Message], budget: int, count: CountFn) -> list[Message]:
    """The natural policy: drop the oldest user+assistant pair until the history fits.

    Costs are estimated exactly as ``fit_window`` does (tokens + PER_MESSAGE_OVERHEAD), so
    both policies work against the same budget. The newest message is always kept.
    """
    pinned = [m for m in messages if m.role == "system"]
    turns = [m for m in messages if m.role != "system"]

    def cost(m: Message) -> int:
        return count(m.content) + PER_MESSAGE_OVERHEAD

    total = sum(cost(m) for m in pinned) + sum(cost(m) for m in turns)
    while total > budget and len(turns) > 1:
        pair = turns[0].role == "user" and len(turns) > 2 and turns[1].role == "assistant"
        take = 2 if pair else 1
        total -= sum(cost(m) for m in turns[:take])
        turns = turns[take:]
    return [*pinned, *turns]


# -- the benchmarks -----------------------------------------------------------------------


def bench_decode(args: argparse.Namespace, model: common.ModelFile) -> dict[str, Any]:
    log(f"decode: loading smallhold and raw ({model.path.name}, n_ctx={args.n_ctx})")
    runners: list[Runner] = [
        SmallholdRunner(model, args.n_ctx, args.threads, args.kv_cache, args.seed),
        RawRunner(model, args.n_ctx, args.threads, args.kv_cache, args.seed, ram_cache=False),
    ]
    results: dict[str, list[Turn]] = {r.label: [] for r in runners}
    try:
        warm = decode_prompt(DECODE_TOPICS[-1])
        for r in runners:
            r.run(warm, args.decode_tokens, session="decode-warmup")
        for i in range(args.repeats):
            messages = decode_prompt(DECODE_TOPICS[i % (len(DECODE_TOPICS) - 1)])
            order = runners if i % 2 == 0 else runners[::-1]
            for r in order:
                turn = r.run(messages, args.decode_tokens, session=f"decode-{i}")
                results[r.label].append(turn)
                log(f"decode {i + 1}/{args.repeats} {r.label:10s} ttft {turn.ttft * 1e3:7.1f} ms"
                    f"  {turn.completion_tokens} tok  {turn.decode_tps:6.2f} tok/s")
        threads_batch = runners[0].n_threads_batch
    finally:
        for r in runners:
            r.close()
    sh, raw = results["smallhold"], results["raw"]
    same = sum(a.text == b.text for a, b in zip(sh, raw, strict=True))
    return {
        "max_tokens": args.decode_tokens,
        "n_threads_batch": threads_batch,
        "identical_outputs": same,
        "runs": {k: [asdict(t) | {"decode_tps": t.decode_tps} for t in v]
                 for k, v in results.items()},
        "median": {k: {"decode_tps": median([t.decode_tps for t in v]),
                       "ttft_s": median([t.ttft for t in v]),
                       "total_s": median([t.total for t in v]),
                       "completion_tokens": median([t.completion_tokens for t in v])}
                   for k, v in results.items()},
    }


def run_conversations(args: argparse.Namespace, model: common.ModelFile, n_ctx: int,
                      sliding: bool) -> dict[str, Any]:
    name = "sliding" if sliding else "interleaved"
    log(f"{name}: loading three instances ({model.path.name}, n_ctx={n_ctx})")
    smallhold = SmallholdRunner(model, n_ctx, args.threads, args.kv_cache, args.seed)
    if not sliding:
        # Full histories must fit: system + every user turn + replies at their longest.
        count = smallhold.count
        worst = max(count(SYSTEMS[c]) + sum(
            count(user_turn(c, t)) + 2 * PER_MESSAGE_OVERHEAD + args.reply_tokens
            for t in range(1, args.turns + 1)) for c in "AB")
        if worst > n_ctx:
            smallhold.close()
            raise SystemExit(f"{args.turns} turns need about {worst} tokens of context but "
                             f"--n-ctx is {n_ctx}: raise --n-ctx or lower --turns")
    runners: list[Runner] = [
        smallhold,
        RawRunner(model, n_ctx, args.threads, args.kv_cache, args.seed, ram_cache=False),
        RawRunner(model, n_ctx, args.threads, args.kv_cache, args.seed, ram_cache=True),
    ]
    budget = n_ctx - args.reply_tokens - 32
    histories = {r.label: {c: [Message(role="system", content=SYSTEMS[c])] for c in "AB"}
                 for r in runners}
    turns: dict[str, dict[str, list[Turn]]] = {r.label: {"A": [], "B": []} for r in runners}

    def window_for(r: Runner) -> Callable[[list[Message]], list[Message]] | None:
        if not sliding:
            return None
        if isinstance(r, SmallholdRunner):
            return lambda ms: fit_window(ms, budget, r.count, block=8)
        return lambda ms: trim_per_turn(ms, budget, r.count)

    windows = {r.label: window_for(r) for r in runners}
    user_tokens = [runners[0].count(user_turn(c, t)) for c in "AB"
                   for t in range(1, args.turns + 1)]
    step = 0
    try:
        # One untimed request per instance, with an unrelated system prompt, so first-use
        # costs (thread pool, compute buffers) are not charged to turn 1.
        for r in runners:
            r.run(WARMUP, 4, session="warmup")
            if isinstance(r, SmallholdRunner):
                r.engine.forget("warmup")
        for t in range(1, args.turns + 1):
            for conv in "AB":
                # Rotate who goes first so machine noise spreads over all three.
                order = runners[step % 3:] + runners[: step % 3]
                step += 1
                for r in order:
                    history = histories[r.label][conv]
                    history.append(Message(role="user", content=user_turn(conv, t)))
                    turn = r.run(history, args.reply_tokens, session=conv,
                                 window=windows[r.label])
                    history.append(Message(role="assistant", content=turn.text))
                    turns[r.label][conv].append(turn)
                line = "  ".join(f"{r.label} {turns[r.label][conv][-1].ttft * 1e3:7.1f}"
                                 for r in runners)
                log(f"{name} turn {t:2d}{conv} ttft ms: {line}"
                    f"  (prompt {turns['smallhold'][conv][-1].prompt_tokens} tok)")
    finally:
        for r in runners:
            r.close()

    labels = [r.label for r in runners]
    mismatch: dict[str, Any] = {}
    for other in labels[1:]:
        diffs = [(c, i + 1) for c in "AB"
                 for i, (a, b) in enumerate(zip(turns["smallhold"][c], turns[other][c],
                                                strict=True)) if a.text != b.text]
        mismatch[f"smallhold vs {other}"] = {"count": len(diffs),
                                             "first": min((i for _, i in diffs), default=None)}
    diffs = [(c, i + 1) for c in "AB"
             for i, (a, b) in enumerate(zip(turns["raw"][c], turns["raw+RAMCache"][c],
                                            strict=True)) if a.text != b.text]
    mismatch["raw vs raw+RAMCache"] = {"count": len(diffs),
                                       "first": min((i for _, i in diffs), default=None)}
    per_turn = {label: [mean([turns[label][c][i].ttft for c in "AB"])
                        for i in range(args.turns)] for label in labels}
    return {
        "n_ctx": n_ctx,
        "budget": budget if sliding else None,
        "turns": args.turns,
        "reply_tokens": args.reply_tokens,
        "user_turn_tokens": {"min": min(user_tokens), "max": max(user_tokens),
                             "mean": mean(user_tokens)},
        "ttft_per_turn_s": per_turn,
        "wall_s": {label: sum(t.total for c in "AB" for t in turns[label][c])
                   for label in labels},
        "mismatches": mismatch,
        "runs": {label: {c: [asdict(t) for t in turns[label][c]] for c in "AB"}
                 for label in labels},
    }


# -- report -------------------------------------------------------------------------------


def report_turns(n: int) -> list[int]:
    return sorted({t for t in (1, 10, 20, n) if 1 <= t <= n})


def md_decode(d: dict[str, Any]) -> list[str]:
    sh, raw = d["median"]["smallhold"], d["median"]["raw"]
    rows = [
        ["decode tokens/s", fmt(sh["decode_tps"], 2), fmt(raw["decode_tps"], 2),
         fmt_ratio(ratio(sh["decode_tps"], raw["decode_tps"])), "higher (≥ 0.97 is the goal)"],
        ["time to first token (ms)", fmt(sh["ttft_s"] * 1e3), fmt(raw["ttft_s"] * 1e3),
         fmt_ratio(ratio(sh["ttft_s"], raw["ttft_s"])), "lower"],
        ["whole request (s)", fmt(sh["total_s"], 2), fmt(raw["total_s"], 2),
         fmt_ratio(ratio(sh["total_s"], raw["total_s"])), "lower"],
        ["completion tokens", fmt(sh["completion_tokens"], 0), fmt(raw["completion_tokens"], 0),
         "", ""],
    ]
    n = len(d["runs"]["smallhold"])
    decode_ratio = ratio(sh["decode_tps"], raw["decode_tps"])
    verdict = "met" if decode_ratio >= 0.97 else "NOT met"
    spread = {k: [t["decode_tps"] for t in v] for k, v in d["runs"].items()}
    return [
        f"### Decode: {d['max_tokens']} tokens, fresh prompt each repeat (median of {n})",
        "",
        md_table(["metric", "smallhold", "raw llama_cpp", "smallhold/raw", "better when ratio is"],
                 rows),
        "",
        "Range over repeats, decode tokens/s: " + "; ".join(
            f"{k} {fmt(min(v), 2)}–{fmt(max(v), 2)}" for k, v in spread.items()) + ".",
        "",
        f"Goal decode ratio ≥ 0.97: **{verdict}** ({fmt_ratio(decode_ratio)}). "
        f"Identical greedy outputs: {d['identical_outputs']}/{n}. Decode tokens/s = "
        "(completion tokens − 1) / (end of stream − first content); both see the same "
        "sequence of prompts (shared system prompt, a new question each repeat) after one "
        "untimed warm-up.",
    ]


def md_conversations(d: dict[str, Any], sliding: bool) -> list[str]:
    per = d["ttft_per_turn_s"]
    labels = list(per)
    n = d["turns"]
    rows = []
    for t in report_turns(n):
        sh = per["smallhold"][t - 1]
        rows.append([f"turn {t}", *(fmt(per[k][t - 1] * 1e3) for k in labels),
                     fmt_ratio(ratio(sh, per["raw"][t - 1])),
                     fmt_ratio(ratio(sh, per["raw+RAMCache"][t - 1]))])
    means = {k: mean(v) for k, v in per.items()}
    rows.append(["mean of all turns", *(fmt(means[k] * 1e3) for k in labels),
                 fmt_ratio(ratio(means["smallhold"], means["raw"])),
                 fmt_ratio(ratio(means["smallhold"], means["raw+RAMCache"]))])
    wall = d["wall_s"]
    rows.append(["wall time, all turns (s)", *(fmt(wall[k], 1) for k in labels),
                 fmt_ratio(ratio(wall["smallhold"], wall["raw"])),
                 fmt_ratio(ratio(wall["smallhold"], wall["raw+RAMCache"]))])
    headers = ["TTFT (ms), mean of A and B", "smallhold", "raw (no cache)", "raw + LlamaRAMCache",
               "smallhold/raw", "smallhold/raw+cache"]
    sh_first, sh_last = per["smallhold"][0], per["smallhold"][n - 1]
    ahead = all(sh_last < per[k][n - 1] for k in labels[1:])
    utok = d["user_turn_tokens"]
    title = (f"### Sliding window: n_ctx {d['n_ctx']}, budget {d['budget']} tokens"
             if sliding else f"### Interleaved conversations: n_ctx {d['n_ctx']}")
    out = [
        title,
        "",
        f"Two scripted conversations A and B interleaved A1 B1 A2 B2 … to turn {n}; "
        f"each reply ≤ {d['reply_tokens']} tokens greedy and appended to its history; user turns "
        f"{utok['min']}–{utok['max']} tokens (mean {utok['mean']:.0f}). Three fresh instances of "
        "the same file; who goes first rotates every step.",
    ]
    if sliding:
        out += ["",
                "smallhold trims with `fit_window(messages, budget, engine.count_tokens, "
                "block=8)`; both raw contenders drop the oldest user+assistant pair each turn "
                "until the same estimate fits the same budget."]
    out += [
        "",
        md_table(headers, rows),
        "",
        "Ratios are TTFT smallhold/contender: **lower is better** (< 1 means smallhold is "
        "faster).",
        "",
        f"- smallhold turn {n} vs turn 1: {fmt(sh_last * 1e3)} ms vs {fmt(sh_first * 1e3)} ms "
        f"(×{fmt_ratio(ratio(sh_last, sh_first))}) — goal \"no slower than turn 1\": "
        f"**{'met' if sh_last <= sh_first else 'NOT met'}**",
        f"- smallhold ahead of both raw contenders at turn {n}: **{'yes' if ahead else 'no'}**",
    ]
    mism = ", ".join(f"{k}: {v['count']}/{2 * n}"
                     + (f" (first at turn {v['first']})" if v["first"] else "")
                     for k, v in d["mismatches"].items())
    out.append(f"- replies that differ (greedy; batching can cause small differences): {mism}")
    if sliding:
        # Turn i (0-based) of a conversation has 1 system + 2 * i + 1 messages in full.
        trimmed = {k: sum(1 for c in "AB" for i, t in enumerate(d["runs"][k][c])
                          if t["sent_messages"] < 2 * i + 2) for k in labels}
        sh_runs = d["runs"]["smallhold"]
        reprefill = sum(1 for c in "AB" for t in sh_runs[c]
                        if (t["cached_tokens"] or 0) < t["prompt_tokens"] // 2)
        out.append("- turns sent with a trimmed history: "
                   + ", ".join(f"{k} {v}/{2 * n}" for k, v in trimmed.items())
                   + f"; smallhold turns whose saved prefix covered less than half the prompt "
                   f"(a re-prefill): {reprefill}/{2 * n}")
        out.append("- replies are expected to differ between smallhold and raw here once "
                   "trimming starts: the two policies send different histories.")
    detail = [[f"{t}", *(fmt(per[k][t - 1] * 1e3) for k in labels),
               str(d["runs"]["smallhold"]["A"][t - 1]["prompt_tokens"]),
               str(d["runs"]["smallhold"]["A"][t - 1]["cached_tokens"])] for t in range(1, n + 1)]
    out += ["", "<details><summary>every turn</summary>", "",
            md_table(["turn", *labels, "smallhold A prompt tok", "smallhold A cached tok"],
                     detail),
            "", "</details>"]
    return out


def render(args: argparse.Namespace, model: common.ModelFile, info: dict[str, Any],
           sections: dict[str, Any]) -> str:
    extra = [
        ("model", model.label),
        ("model file", f"`{model.path}` ({model.size / common.MB:,.0f} MiB, sha256 from "
                       f"{model.sha256_source})"),
        ("threads", f"{args.threads} (n_threads_batch {sections.get('n_threads_batch', '?')}: "
                    "llama-cpp-python's default, the same for both)"),
        ("n_ctx", f"{args.n_ctx} (decode, interleaved); {args.sliding_n_ctx} (sliding)"),
        ("KV cache", f"{args.kv_cache}; n_batch 512; temperature 0; seed {args.seed}"),
    ]
    lines = [
        f"## Runtime benchmark: smallhold vs raw llama-cpp-python — {model.name}",
        "",
        f"Command: `{common.command_line()}`",
        "",
        *common.machine_lines(info, extra),
    ]
    if "decode" in sections:
        lines += ["", *md_decode(sections["decode"])]
    if "interleaved" in sections:
        lines += ["", *md_conversations(sections["interleaved"], sliding=False)]
    if "sliding" in sections:
        lines += ["", *md_conversations(sections["sliding"], sliding=True)]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="qwen2.5-coder-1.5b-instruct",
                   help="registry name or alias")
    p.add_argument("--model-path", help="use this GGUF file instead of the registry's")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-ctx", type=int, default=4096)
    p.add_argument("--sliding-n-ctx", type=int, default=1024,
                   help="context for the sliding-window section")
    p.add_argument("--kv-cache", choices=sorted(common.GGML_TYPES), default="f16")
    p.add_argument("--turns", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5, help="decode repeats (median reported)")
    p.add_argument("--decode-tokens", type=int, default=128)
    p.add_argument("--reply-tokens", type=int, default=24)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--only", choices=("decode", "interleaved", "sliding"), action="append",
                   help="run only this section (repeatable); default all three")
    p.add_argument("--name", help="results file stem (default runtime-<model>[-<only>])")
    args = p.parse_args(argv)
    if args.turns < 1 or args.repeats < 1:
        p.error("--turns and --repeats must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    only = args.only or ["decode", "interleaved", "sliding"]
    model = common.resolve_model(args.model, args.model_path)
    info = common.machine()
    started = time.perf_counter()
    sections: dict[str, Any] = {}
    if "decode" in only:
        sections["decode"] = bench_decode(args, model)
        sections["n_threads_batch"] = sections["decode"]["n_threads_batch"]
    if "interleaved" in only:
        sections["interleaved"] = run_conversations(args, model, args.n_ctx, sliding=False)
    if "sliding" in only:
        sections["sliding"] = run_conversations(args, model, args.sliding_n_ctx, sliding=True)
    if "n_threads_batch" not in sections:
        sections["n_threads_batch"] = os.cpu_count()  # llama-cpp-python's default
    info["loadavg_end"] = list(os.getloadavg())
    info["bench_seconds"] = time.perf_counter() - started
    markdown = render(args, model, info, sections)
    name = args.name or "runtime-" + common.slug(model.name) + (
        "-" + "-".join(only) if args.only else "")
    data = {"bench": "runtime", "command": common.command_line(), "args": vars(args),
            "machine": info, "model": asdict(model) | {"path": str(model.path)},
            "sections": sections}
    json_path, md_path = common.write_results(name, data, markdown)
    print(markdown)
    log(f"done in {info['bench_seconds']:.0f} s; wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
