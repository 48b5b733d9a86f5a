"""`smallhold serve` against llama-cpp-python's own server, under 1, 4 and 16 streaming clients.

Both servers run the same GGUF file with the same threads, n_ctx and KV-cache type, one at a
time (never both at once), each as a subprocess on 127.0.0.1 with a free port:

- smallhold: ``python -m smallhold serve --model NAME --preload`` in a throw-away
  ``SMALLHOLD_HOME`` (its models folder links to the real one; settings come only from
  ``SMALLHOLD_RUNTIME__*`` variables set here, so a user's config.toml changes nothing);
- peer: ``python -m llama_cpp.server --model FILE ...`` from ``--peer-python`` (a scratch venv
  with ``llama-cpp-python[server]``; never the project's venv).

Load: ``C`` clients (for each ``C`` in ``--concurrency``), each sending ``--requests-per-client``
streaming ``/v1/chat/completions`` requests one after another (greedy, ``max_tokens`` fixed).
Every request of the whole run has its own question, and both servers get the same list, so no
server answers a prompt it has seen. One warm-up request per server comes before the measured
requests. Per request: time to first content delta (TTFT), total latency, output tokens (the
``usage`` the server streams when asked, else the number of content chunks). Per level:
requests/s and output tokens/s over the level's wall time, p50/p95 latency and TTFT.

Everything is bounded: a per-request read timeout, and a time limit per server after which no
new request starts. Prints a markdown section for BENCHMARKS.md on stdout (progress on stderr)
and writes the raw numbers to ``bench/results/server.json``. Run from the repository root:

    .venv/bin/python bench/bench_server.py --model qwen2.5-coder-0.5b-instruct \
        --peer-python /tmp/llsrv/bin/python
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

import _common as common
from _common import fmt, fmt_ratio, log, md_table, ratio

HOST = "127.0.0.1"
SMALLHOLD = "smallhold"
PEER = "llama_cpp.server"
SYSTEM = "You are a helpful assistant. Answer briefly."
WARMUP_QUESTION = "Say hello in five words."
PEER_MODULES = "llama_cpp, llama_cpp.server.app, fastapi, sse_starlette, starlette_context, " \
    "pydantic_settings, uvicorn"
PEER_INSTALL = (
    "python3 -m venv /tmp/llsrv && /tmp/llsrv/bin/pip install "
    "/tmp/sh/wheels/llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl "
    "'llama-cpp-python[server]'"
)
LOG_TAIL_CHARS = 6000

TOPICS = (
    "photosynthesis", "compound interest", "the water cycle", "binary search", "plate tectonics",
    "vaccines", "the French Revolution", "black holes", "recursion", "inflation",
    "the immune system", "TCP handshakes", "volcanoes", "supply and demand", "DNA replication",
    "hash tables", "the Roman Empire", "tides", "garbage collection", "climate change",
    "the stock market", "neurons", "public-key cryptography", "glaciers", "the printing press",
    "sorting algorithms", "rainbows", "antibiotics", "the Silk Road", "electric motors",
    "caching", "earthquakes", "bread baking", "the Moon landing", "solar panels",
    "unit testing", "honeybees", "the Renaissance", "batteries", "version control",
    "coral reefs", "jet engines", "regular expressions", "the Olympic Games", "magnets",
    "composting", "the human heart", "deadlocks",
)
FORMS = (
    "In two sentences, what is {}?",
    "Give one practical tip about {}.",
    "Explain {} to a ten-year-old.",
    "Name two common misconceptions about {}.",
)


def questions(count: int) -> list[str]:
    """``count`` distinct questions; neighbours differ in topic and, later, in form."""
    out = []
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        form = FORMS[(i // len(TOPICS)) % len(FORMS)]
        text = form.format(topic)
        lap = i // (len(TOPICS) * len(FORMS))
        out.append(text if lap == 0 else f"{text} (Question {i + 1}.)")
    return out


# -- numbers ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN when empty."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


# -- servers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerPlan:
    name: str
    argv: list[str]
    env_set: dict[str, str]  # what this script sets on top of (or instead of) the environment
    env: dict[str, str]
    ready_path: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def shown(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env_set.items())
        return (env + " " if env else "") + shlex.join(self.argv)


class ServerFailed(RuntimeError):
    pass


class Server:
    """One server subprocess: started, awaited until ready, stopped; its output goes to a log."""

    def __init__(self, plan: ServerPlan, log_path: Path, ready_timeout: float) -> None:
        self.plan = plan
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_seconds: float | None = None
        self.peak_rss_bytes: int | None = None

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-chars:]

    def start(self) -> None:
        log(f"starting {self.plan.name}: {self.plan.shown()}")
        handle = self.log_path.open("wb")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.plan.argv, env=self.plan.env, stdin=subprocess.DEVNULL, stdout=handle,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        handle.close()
        url = self.plan.base_url + self.plan.ready_path
        deadline = started + self.ready_timeout
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            while True:
                code = self.proc.poll()
                if code is not None:
                    raise ServerFailed(
                        f"{self.plan.name} exited with code {code} before it was ready.\n"
                        f"--- its output ({self.log_path}) ---\n{self.log_tail()}"
                    )
                try:
                    if client.get(url).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() > deadline:
                    self.stop()
                    raise ServerFailed(
                        f"{self.plan.name} did not answer {url} within {self.ready_timeout:.0f}s."
                        f"\n--- its output ({self.log_path}) ---\n{self.log_tail()}"
                    )
                time.sleep(0.25)
        self.ready_seconds = time.perf_counter() - started
        log(f"{self.plan.name} ready after {self.ready_seconds:.1f}s on {self.plan.base_url}")

    def _read_peak_rss(self) -> None:
        if self.proc is None:
            return
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_bytes = int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass

    def stop(self) -> None:
        """SIGINT (uvicorn's graceful stop), then SIGTERM, then SIGKILL; only our own child."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        self._read_peak_rss()
        for sig, wait in ((signal.SIGINT, 20.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                log(f"{self.plan.name} still running after {sig.name}")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SMALLHOLD_")}


def smallhold_plan(args: argparse.Namespace, model: str, home: Path) -> ServerPlan:
    port = free_port()
    env_set = {
        "SMALLHOLD_HOME": str(home),
        "SMALLHOLD_RUNTIME__N_THREADS": str(args.threads),
        "SMALLHOLD_RUNTIME__N_CTX": str(args.n_ctx),
        "SMALLHOLD_RUNTIME__KV_CACHE": args.kv_cache,
        "SMALLHOLD_RUNTIME__KEEP_ALIVE": "-1",
        "SMALLHOLD_RUNTIME__IDLE_PRELOAD_SECONDS": "-1",
    }
    argv = [sys.executable, "-m", "smallhold", "serve", "--host", HOST, "--port", str(port),
            "--model", model, "--preload"]
    return ServerPlan(SMALLHOLD, argv, env_set, {**_clean_env(), **env_set}, "/health", port)


def peer_plan(args: argparse.Namespace, path: Path) -> ServerPlan:
    port = free_port()
    argv = [args.peer_python, "-m", "llama_cpp.server", "--model", str(path),
            "--n_ctx", str(args.n_ctx), "--n_threads", str(args.threads),
            # smallhold leaves n_threads_batch to llama-cpp-python's default (all CPUs): match it.
            "--n_threads_batch", str(multiprocessing.cpu_count()),
            "--host", HOST, "--port", str(port)]
    if args.kv_cache != "f16":  # f16 (and no flash attention) is the peer's default already
        kv = str(common.GGML_TYPES[args.kv_cache])
        argv += ["--type_k", kv, "--type_v", kv, "--flash_attn", "True"]
    if not args.peer_interrupt_requests:
        argv += ["--interrupt_requests", "False"]
    argv += args.peer_arg
    return ServerPlan(PEER, argv, {}, _clean_env(), "/v1/models", port)


def check_peer(python: str) -> str:
    """The peer's llama-cpp-python version, or SystemExit with what to do."""
    if not (shutil.which(python) or Path(python).is_file()):
        raise SystemExit(
            f"bench_server: the peer cannot start: --peer-python {python} does not exist.\n"
            f"Make a scratch venv for llama_cpp.server (never the project's venv):\n"
            f"    {PEER_INSTALL}\nthen pass --peer-python /tmp/llsrv/bin/python."
        )
    code = f"import {PEER_MODULES}; print(llama_cpp.__version__)"
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120,
                             check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SystemExit(f"bench_server: the peer cannot start: running {python} failed "
                         f"({exc}).") from exc
    if out.returncode != 0:
        raise SystemExit(
            f"bench_server: the peer cannot start: {python} cannot import llama_cpp.server "
            f"and its extras ({PEER_MODULES}).\n{out.stderr.strip()[-2000:]}\n"
            f"Install them into a scratch venv (never the project's venv):\n    {PEER_INSTALL}"
        )
    return out.stdout.strip()


# -- the load -----------------------------------------------------------------------------


@dataclass
class RequestResult:
    client: int
    seq: int
    prompt_index: int
    started: float  # seconds since the level started
    ok: bool = False
    status: int | None = None
    ttft_s: float | None = None
    latency_s: float | None = None
    chunks: int = 0
    usage_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    text: str = ""

    @property
    def tokens(self) -> int:
        return self.usage_tokens if self.usage_tokens is not None else self.chunks


def request_body(model: str, question: str, max_tokens: int, seed: int) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM},
                     {"role": "user", "content": question}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "top_p": 0.95,
        "top_k": 40,  # the top-k and min-p that smallhold uses, and the peer's defaults
        "min_p": 0.05,
        "seed": seed,
        # llama_cpp.server defaults to 1.1; smallhold samples with 1.0 and ignores the field.
        "repeat_penalty": 1.0,
    }


async def one_request(client: httpx.AsyncClient, url: str, body: dict[str, Any],
                      result: RequestResult, level_start: float) -> None:
    sent = time.perf_counter()
    result.started = sent - level_start
    parts: list[str] = []
    try:
        async with client.stream("POST", url, json=body) as response:
            result.status = response.status_code
            if response.status_code != 200:
                raw = (await response.aread()).decode("utf-8", "replace")
                result.error = f"HTTP {response.status_code}: {raw[:1000]}"
                return
            done = False
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    done = True
                    break
                try:
                    chunk = json.loads(payload)
                except ValueError:
                    result.error = f"bad SSE line: {payload[:200]!r}"
                    return
                if "error" in chunk:
                    result.error = f"error event in stream: {json.dumps(chunk)[:1000]}"
                    return
                usage = chunk.get("usage")
                if usage:
                    result.usage_tokens = int(usage.get("completion_tokens", 0))
                for choice in chunk.get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        if result.ttft_s is None:
                            result.ttft_s = time.perf_counter() - sent
                        result.chunks += 1
                        parts.append(content)
                    if choice.get("finish_reason"):
                        result.finish_reason = choice["finish_reason"]
            result.latency_s = time.perf_counter() - sent
            result.text = "".join(parts)
            if not done:
                result.error = "stream ended without data: [DONE]"
            elif result.finish_reason is None:
                result.error = "stream ended without a finish_reason (cut short)"
            else:
                result.ok = True
    except httpx.HTTPError as exc:
        result.latency_s = time.perf_counter() - sent
        result.text = "".join(parts)
        result.error = f"{type(exc).__name__}: {exc!r}"


@dataclass
class Level:
    concurrency: int
    requests_per_client: int
    wall_s: float
    results: list[RequestResult] = field(default_factory=list)
    skipped: int = 0

    def summary(self) -> dict[str, Any]:
        ok = [r for r in self.results if r.ok]
        lat = [r.latency_s for r in ok if r.latency_s is not None]
        ttft = [r.ttft_s for r in ok if r.ttft_s is not None]
        tokens = sum(r.tokens for r in ok)
        decode = [(r.tokens - 1) / (r.latency_s - r.ttft_s) for r in ok
                  if r.ttft_s is not None and r.latency_s is not None and r.tokens > 1
                  and r.latency_s > r.ttft_s]
        return {
            "concurrency": self.concurrency,
            "requests_per_client": self.requests_per_client,
            "requests": len(self.results),
            "ok": len(ok),
            "errors": len(self.results) - len(ok),
            "skipped": self.skipped,
            "wall_s": self.wall_s,
            "requests_per_s": len(ok) / self.wall_s if self.wall_s else float("nan"),
            "output_tokens": tokens,
            "output_tokens_per_s": tokens / self.wall_s if self.wall_s else float("nan"),
            "chunks": sum(r.chunks for r in ok),
            "usage_reported": sum(r.usage_tokens is not None for r in ok),
            "latency_p50_s": percentile(lat, 50),
            "latency_p95_s": percentile(lat, 95),
            "latency_max_s": max(lat, default=float("nan")),
            "ttft_p50_s": percentile(ttft, 50),
            "ttft_p95_s": percentile(ttft, 95),
            "ttft_max_s": max(ttft, default=float("nan")),
            "per_request_decode_tok_s_p50": percentile(decode, 50),
            "finish_reasons": _count(r.finish_reason or "none" for r in ok),
        }


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


async def run_level(base_url: str, model: str, prompts: Sequence[str], first_index: int,
                    concurrency: int, per_client: int, max_tokens: int, seed: int,
                    request_timeout: float, deadline: float) -> Level:
    url = base_url + "/v1/chat/completions"
    timeout = httpx.Timeout(connect=10.0, read=request_timeout, write=30.0, pool=30.0)
    limits = httpx.Limits(max_connections=concurrency + 1, max_keepalive_connections=concurrency)
    level = Level(concurrency, per_client, 0.0)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as client:
        start = time.perf_counter()

        async def client_loop(c: int) -> None:
            for j in range(per_client):
                if time.monotonic() > deadline:
                    level.skipped += per_client - j
                    return
                index = first_index + c * per_client + j
                result = RequestResult(client=c, seq=j, prompt_index=index, started=0.0)
                level.results.append(result)
                body = request_body(model, prompts[index], max_tokens, seed)
                await one_request(client, url, body, result, start)

        await asyncio.gather(*(client_loop(c) for c in range(concurrency)))
        level.wall_s = time.perf_counter() - start
    return level


def bench_server(server: Server, model: str, prompts: Sequence[str], args: argparse.Namespace,
                 ) -> dict[str, Any]:
    """Start, warm up, run every concurrency level, stop. Never raises for a failed request."""
    out: dict[str, Any] = {"command": server.plan.shown(), "port": server.plan.port,
                           "levels": {}, "warmup": None, "loadavg_start": list(os.getloadavg())}
    server.start()
    out["ready_s"] = server.ready_seconds
    deadline = time.monotonic() + args.time_limit
    try:
        warm = asyncio.run(run_level(
            server.plan.base_url, model, [WARMUP_QUESTION], 0, 1, 1, args.max_tokens,
            args.seed, args.request_timeout, deadline))
        out["warmup"] = asdict(warm.results[0])
        if not warm.results[0].ok:
            log(f"{server.plan.name}: warm-up request failed: {warm.results[0].error}")
        first = 0
        for c in args.concurrency:
            log(f"{server.plan.name}: {c} client(s) x {args.requests_per_client} request(s)")
            level = asyncio.run(run_level(
                server.plan.base_url, model, prompts, first, c, args.requests_per_client,
                args.max_tokens, args.seed, args.request_timeout, deadline))
            first += c * args.requests_per_client
            summary = level.summary()
            out["levels"][str(c)] = {"summary": summary,
                                     "requests": [asdict(r) for r in level.results]}
            log(f"{server.plan.name} c={c}: {summary['ok']}/{summary['requests']} ok, "
                f"{summary['requests_per_s']:.2f} req/s, "
                f"{summary['output_tokens_per_s']:.1f} tok/s, "
                f"p50 latency {summary['latency_p50_s']:.2f}s, "
                f"p50 TTFT {summary['ttft_p50_s']:.2f}s, wall {level.wall_s:.1f}s")
            for r in level.results:
                if not r.ok:
                    log(f"  request {r.prompt_index} (client {r.client}) failed: {r.error}")
            if level.skipped:
                log(f"  time limit reached: {level.skipped} request(s) not sent")
    finally:
        server.stop()
        out["peak_rss_bytes"] = server.peak_rss_bytes
        failed = any(lv["summary"]["errors"] for lv in out["levels"].values())
        if failed or (out["warmup"] and not out["warmup"]["ok"]):
            out["log_tail"] = server.log_tail()
            log(f"{server.plan.name} had failed requests; the end of its output:\n"
                f"{out['log_tail']}")
    return out


# -- report -------------------------------------------------------------------------------


ROWS = (  # label, key, scale, digits, higher is better
    ("requests/s", "requests_per_s", 1.0, 3, True),
    ("output tokens/s", "output_tokens_per_s", 1.0, 1, True),
    ("latency p50 (ms)", "latency_p50_s", 1000.0, 0, False),
    ("latency p95 (ms)", "latency_p95_s", 1000.0, 0, False),
    ("TTFT p50 (ms)", "ttft_p50_s", 1000.0, 0, False),
    ("TTFT p95 (ms)", "ttft_p95_s", 1000.0, 0, False),
    ("TTFT max (ms)", "ttft_max_s", 1000.0, 0, False),
    ("per-request decode tokens/s (p50)", "per_request_decode_tok_s_p50", 1.0, 1, True),
)


def _level(data: dict[str, Any], name: str, c: int) -> dict[str, Any] | None:
    server = data["servers"].get(name)
    if not server:
        return None
    level = server["levels"].get(str(c))
    return level["summary"] if level else None


def _texts(data: dict[str, Any], name: str, c: int) -> dict[int, str]:
    server = data["servers"].get(name) or {}
    level = (server.get("levels") or {}).get(str(c)) or {}
    return {r["prompt_index"]: r["text"] for r in level.get("requests", []) if r["ok"]}


def level_table(data: dict[str, Any], c: int) -> str:
    mine, peer = _level(data, SMALLHOLD, c), _level(data, PEER, c)
    rows = []
    for label, key, scale, digits, higher in ROWS:
        a = mine[key] * scale if mine else None
        b = peer[key] * scale if peer else None
        r = (ratio(a, b) if higher else ratio(b, a)) if a is not None and b is not None else None
        rows.append([label, fmt(a, digits), fmt(b, digits), fmt_ratio(r),
                     "smallhold/peer" if higher else "peer/smallhold"])
    rows.append(["requests ok / failed",
                 f"{mine['ok']} / {mine['errors']}" if mine else "—",
                 f"{peer['ok']} / {peer['errors']}" if peer else "—", "", ""])
    rows.append(["output tokens (total)", str(mine["output_tokens"]) if mine else "—",
                 str(peer["output_tokens"]) if peer else "—", "", ""])
    rows.append(["wall time (s)", fmt(mine["wall_s"], 1) if mine else "—",
                 fmt(peer["wall_s"], 1) if peer else "—", "", ""])
    return md_table(["metric", "smallhold serve", "llama_cpp.server", "ratio", "ratio is"],
                    rows)


def render(data: dict[str, Any]) -> str:
    cfg = data["config"]
    model = data["model"]
    lines = [
        "## Server benchmark: `smallhold serve` vs `llama_cpp.server` (streaming clients)",
        "",
        f"Command: `{data['command']}`",
        "",
        *common.machine_lines(data["machine"], [
            ("model", f"{model['name']} (`{model['path']}`, {model['size'] / common.MB:,.0f} "
                      f"MiB, sha256 {model['sha256'][:12]}…, {model['sha256_source']})"),
            ("threads", f"{cfg['threads']} (both servers; n_threads_batch = llama-cpp-python's "
                        f"default {multiprocessing.cpu_count()} for both)"),
            ("n_ctx / KV cache", f"{cfg['n_ctx']} / {cfg['kv_cache']} (both servers)"),
            ("load", f"{', '.join(map(str, cfg['concurrency']))} concurrent client(s), "
                     f"{cfg['requests_per_client']} sequential streaming request(s) each, "
                     f"max_tokens {cfg['max_tokens']}, "
                     f"temperature 0, seed {cfg['seed']}, one distinct question per request "
                     "(same list for both), one warm-up request per server first"),
            ("peer llama-cpp-python", data.get("peer_version") or "—"),
        ]),
    ]
    busy = data["machine"]["loadavg_start"][0]
    cpus = data["machine"]["usable_cpus"] or 1
    if busy > 0.5 * cpus:
        lines += ["", f"**Warning: the machine was busy (1-minute load average {busy:.2f} on "
                      f"{cpus} CPUs at the start): other processes competed for the cores, so "
                      "these numbers only show that the benchmark runs.**"]
    lines += ["", "Servers (run one at a time, each on 127.0.0.1 with a free port):", ""]
    for name in (SMALLHOLD, PEER):
        server = data["servers"].get(name)
        if not server:
            continue
        rss = server.get("peak_rss_bytes")
        load = server.get("loadavg_start")
        lines.append(f"- {name}: `{server['command']}` — ready after "
                     f"{fmt(server.get('ready_s'), 1)} s, peak RSS "
                     f"{fmt(rss / common.MB if rss else None, 0)} MiB"
                     + (f", load average {load[0]:.2f} when it started" if load else ""))
    for name, why in data.get("unavailable", {}).items():
        lines.append(f"- {name}: **not run** — {why}")
    lines += [
        "",
        "Every other llama_cpp.server setting is its default, e.g. `logits_all=True` (it keeps "
        "logits for every prompt token; `--peer-arg=--logits_all --peer-arg=False` turns that "
        "off). Each request asks for greedy decoding with top-k 40, top-p 0.95, min-p 0.05 "
        "and `repeat_penalty` 1.0 (llama_cpp.server's default is 1.1; smallhold uses 1.0 and "
        "ignores the field), so both servers should produce the same text: see below.",
        "",
        "Tokens: the `usage` a server streams when asked (`stream_options.include_usage`; "
        "smallhold does), else the number of content chunks (llama_cpp.server sends no usage "
        "when streaming; it sends one chunk per token). Requests/s and tokens/s are over the "
        "wall time of the level, from the first request sent to the last stream closed. "
        "TTFT is from sending the request to the first non-empty content delta, so under "
        "concurrency it includes the time spent queued behind other requests.",
        "",
        "**Ratios are arranged so that above 1 means smallhold is better**: throughput is "
        "smallhold/peer, latency and TTFT are peer/smallhold.",
    ]
    for c in cfg["concurrency"]:
        lines += ["", f"### {c} concurrent client{'s' if c > 1 else ''}", "",
                  level_table(data, c)]
        mine, peer = _texts(data, SMALLHOLD, c), _texts(data, PEER, c)
        both = sorted(set(mine) & set(peer))
        if both:
            same = sum(mine[i] == peer[i] for i in both)
            lines += ["", f"Identical outputs from both servers: {same} of {len(both)} prompts."]
    interrupt = ("left at its default `--interrupt_requests True`, so a waiting request cuts "
                 "the running stream short" if cfg["peer_interrupt_requests"] else
                 "started with `--interrupt_requests False`; by default a waiting request "
                 "would cut the running stream short")
    lines += ["", "Queueing: both servers generate one request at a time per model. "
              f"llama_cpp.server takes a global lock per request (here {interrupt}); "
              "smallhold accepts every connection and queues each request, in arrival order, "
              "for the model's one generation thread. With C clients a request therefore "
              "waits for up to C-1 others: the TTFT p95/max rows show it."]
    failures = failure_lines(data)
    if failures:
        lines += ["", "Failed requests:", "", *failures]
    return "\n".join(lines)


def failure_lines(data: dict[str, Any], limit: int = 10) -> list[str]:
    out = []
    for name, server in data["servers"].items():
        for c, level in server["levels"].items():
            bad = [r for r in level["requests"] if not r["ok"]]
            for r in bad[:limit]:
                out.append(f"- {name}, {c} clients, request {r['prompt_index']}: {r['error']}")
            if len(bad) > limit:
                out.append(f"- {name}, {c} clients: {len(bad) - limit} more")
    return out


# -- main ---------------------------------------------------------------------------------


def parse_concurrency(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("concurrency values must be positive integers")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b-instruct",
                   help="registry name (smallhold serves it by this name)")
    p.add_argument("--model-path", help="GGUF file for the peer; must be the same file (sha256) "
                                        "as --model, since smallhold serves registry models only")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-ctx", type=int, default=2048)
    p.add_argument("--kv-cache", choices=sorted(common.GGML_TYPES), default="f16",
                   help="KV-cache type for both (f16 is the peer's default)")
    p.add_argument("--concurrency", type=parse_concurrency, default=[1, 4, 16],
                   help="comma-separated client counts")
    p.add_argument("--requests-per-client", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--peer-python", default="/tmp/llsrv/bin/python",
                   help="python of a scratch venv with llama-cpp-python[server]")
    p.add_argument("--peer-interrupt-requests", action="store_true",
                   help="keep llama_cpp.server's default --interrupt_requests True (a waiting "
                        "request then cuts the running stream short)")
    p.add_argument("--peer-arg", action="append", default=[],
                   help="extra argument for llama_cpp.server (repeat; e.g. --peer-arg=--logits_all "
                        "--peer-arg=False)")
    p.add_argument("--servers", default=f"{SMALLHOLD},peer",
                   help="which to run: smallhold, peer or both (comma-separated)")
    p.add_argument("--request-timeout", type=float, default=300.0,
                   help="seconds without a byte before a request fails")
    p.add_argument("--time-limit", type=float, default=3600.0,
                   help="seconds per server after which no new request starts")
    p.add_argument("--ready-timeout", type=float, default=300.0)
    p.add_argument("--name", default="server", help="results file stem")
    args = p.parse_args(argv)
    args.servers = {s.strip() for s in args.servers.split(",") if s.strip()}
    if not args.servers <= {SMALLHOLD, "peer"}:
        p.error("--servers takes smallhold, peer or both")
    if args.requests_per_client < 1 or args.max_tokens < 1 or args.threads < 1:
        p.error("--requests-per-client, --max-tokens and --threads must be at least 1")
    return args


def resolve_files(args: argparse.Namespace) -> tuple[common.ModelFile, Path]:
    """The registry model smallhold serves, and the file the peer loads (the same bytes)."""
    registry = common.resolve_model(args.model)
    if not args.model_path:
        return registry, registry.path
    given = common.resolve_model(args.model, args.model_path)
    if given.sha256 != registry.sha256:
        raise SystemExit(
            f"--model-path {given.path} (sha256 {given.sha256[:12]}…) is not {registry.name} "
            f"(sha256 {registry.sha256[:12]}…): smallhold serve loads registry models only, so "
            "both servers could not run the same file. Pass the matching --model."
        )
    return registry, given.path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    peer_version = check_peer(args.peer_python) if "peer" in args.servers else None
    model, peer_path = resolve_files(args)
    from smallhold.paths import resolve_paths

    total = sum(c * args.requests_per_client for c in args.concurrency)
    prompts = questions(total)
    order = [n for n in (SMALLHOLD, "peer") if n in args.servers]
    log(f"{total} measured request(s) + 1 warm-up per server; servers, in turn: "
        f"{', '.join(order)}")
    data: dict[str, Any] = {
        "command": common.command_line(),
        "config": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()},
        "machine": common.machine(),
        "model": {"name": model.name, "path": str(model.path), "peer_path": str(peer_path),
                  "size": model.size, "sha256": model.sha256,
                  "sha256_source": model.sha256_source},
        "peer_version": peer_version,
        "prompts": prompts,
        "servers": {},
        "unavailable": {},
    }
    if peer_version and peer_version != common.llama_cpp_version():
        log(f"note: peer llama-cpp-python {peer_version} differs from smallhold's "
            f"{common.llama_cpp_version()}")
    started = time.perf_counter()
    exit_code = 0
    with tempfile.TemporaryDirectory(prefix="smallhold-bench-server-") as tmp:
        home = Path(tmp) / "home"
        (home / "data").mkdir(parents=True)
        models_dir = resolve_paths().models_dir
        models_dir.mkdir(parents=True, exist_ok=True)
        (home / "data" / "models").symlink_to(models_dir, target_is_directory=True)
        plans = []
        if SMALLHOLD in args.servers:
            plans.append(smallhold_plan(args, model.name, home))
        if "peer" in args.servers:
            plans.append(peer_plan(args, peer_path))
        for plan in plans:
            server = Server(plan, Path(tmp) / f"{plan.name}.log", args.ready_timeout)
            try:
                data["servers"][plan.name] = bench_server(server, model.name, prompts, args)
            except ServerFailed as exc:
                hint = (f" Is {args.peer_python} a venv with llama-cpp-python[server]? "
                        f"Make one with: {PEER_INSTALL}" if plan.name == PEER else "")
                print(f"bench_server: {plan.name} could not start.{hint}\n{exc}",
                      file=sys.stderr, flush=True)
                data["unavailable"][plan.name] = f"could not start: {str(exc).splitlines()[0]}"
                exit_code = 3
    data["machine"]["loadavg_end"] = list(os.getloadavg())
    data["elapsed_s"] = time.perf_counter() - started
    markdown = render(data)
    json_path, md_path = common.write_results(args.name, data, markdown)
    print(markdown)
    log(f"done in {data['elapsed_s']:.0f}s; wrote {json_path} and {md_path}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
