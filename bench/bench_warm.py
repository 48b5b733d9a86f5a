"""One-shot `smallhold chat` latency, cold (the command loads the model) vs warm (a running
`smallhold serve` keeps it loaded), beside raw llama-cpp-python loading and answering once.

Each sample is a whole command as a user runs it, timed from outside (process start to
exit): `smallhold chat "Q" -m MODEL --max-tokens 8 --temperature 0`. Warm samples run with
`smallhold serve -m MODEL --preload` up in the same profile, so the command finds it.

    .venv/bin/python bench/bench_warm.py --runs 3
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

import _common as common
from _common import fmt, log, md_table

QUESTION = "What is the capital of France? Answer in one word."
MODELS = ("smollm2-135m-instruct", "qwen2.5-coder-1.5b-instruct")
RAW = """
import sys, time
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=4096, n_threads=2, verbose=False)
llm.create_chat_completion([{"role": "user", "content": sys.argv[2]}], max_tokens=8,
                           temperature=0)
"""


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-500:]}")
    return seconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(model: str, runs: int, home: Path, path: str) -> dict[str, Any]:
    smallhold = str(Path(sys.executable).with_name("smallhold"))
    env = {**os.environ, "SMALLHOLD_HOME": str(home),
           "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    chat = [smallhold, "chat", QUESTION, "-m", model, "--max-tokens", "8", "--temperature",
            "0"]
    cold = [_timed([*chat, "--local"], env) for _ in range(runs)]
    raw = [_timed([sys.executable, "-c", RAW, path, QUESTION], env) for _ in range(runs)]
    port = _free_port()
    server = subprocess.Popen([smallhold, "serve", "-m", model, "--preload", "--port",
                               str(port), "--log-level", "warning"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json().get(
                        "loaded"):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not come up")
            time.sleep(0.2)
        warm = [_timed(chat, env) for _ in range(runs)]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    return {"model": model, "cold": cold, "warm": warm, "raw": raw}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    args = parser.parse_args()
    info = common.machine()
    from smallhold.paths import resolve_paths
    from smallhold.runtime import assets
    from smallhold.runtime.registry import get_model

    models_dir = resolve_paths().models_dir
    os.environ["SMALLHOLD_MODELS_DIR"] = str(models_dir)
    results = []
    with tempfile.TemporaryDirectory(prefix="smallhold-bench-warm-") as tmp:
        for name in args.models:
            path = str(assets.ensure_model(get_model(name), models_dir))
            log(f"{name}: {args.runs} cold, {args.runs} raw llama-cpp-python, {args.runs} warm")
            results.append(measure(name, args.runs, Path(tmp), path))
    rows = [[r["model"], fmt(common.median(r["cold"]), 2), fmt(common.median(r["raw"]), 2),
             fmt(common.median(r["warm"]), 2),
             common.fmt_ratio(common.median(r["cold"]) / common.median(r["warm"]))]
            for r in results]
    markdown = "\n".join([
        "### One-shot chat latency: cold vs warm (a running `smallhold serve`)", "",
        f"Command: `{common.command_line()}`", "", *common.machine_lines(info), "",
        f"Median of {args.runs} whole commands each (process start to exit), 8 answer tokens, "
        "temperature 0. Cold: `smallhold chat --local` loads the model itself. Raw: a Python "
        "process that loads the file with llama-cpp-python and answers once (the floor for a "
        "cold command). Warm: `smallhold chat` while `smallhold serve -m MODEL --preload` runs.",
        "", md_table(["model", "cold s", "raw llama-cpp-python s", "warm s", "cold / warm"],
                     rows, "lrrrr"), ""])
    print(markdown)
    common.write_results("warm", {"machine": info, "results": results}, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
