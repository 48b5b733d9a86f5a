"""Memory insert and recall: smallhold's encrypted vault vs the same on a plain file vs raw vec0.

Three contenders, run one after another in one process on the same vectors and queries:

- **vault**: :class:`smallhold.store.memory.MemoryStore` on a SQLCipher vault (row + vec0 +
  FTS5 per memory, hybrid recall);
- **plain**: the same MemoryStore on an unencrypted file (the same SQLCipher build opened with
  no key, which is plain SQLite): vault/plain is the cost of encryption (goal >= 0.7);
- **raw vec0**: only a sqlite-vec ``vec0`` table and its KNN query on an unencrypted file,
  what a user writing it by hand would have (no text search, no ranking).

Vectors are random unit vectors (384 dims, like all-MiniLM-L6-v2) and the query embedder
returns precomputed vectors, so embedding time is not measured. Inserts go in transactions of
``--batch`` rows. Recall: ``--queries`` queries, k=10, each query's text shares a word with
some memories so FTS5 does real work. Run from the repository root:

    .venv/bin/python bench/bench_store.py --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

import _common as common
from _common import fmt, fmt_ratio, log, md_table, ratio
from smallhold.store import sqlcipher
from smallhold.store.handle import VaultHandle
from smallhold.store.memory import MemoryStore

DIM = 384
WORDS = ("river", "invoice", "garden", "meeting", "passport", "guitar", "recipe", "train",
         "doctor", "budget", "birthday", "laptop", "holiday", "insurance", "piano", "tax")


class FixedEmbedder:
    """Returns the next precomputed query vector: recall is timed without a model."""

    name = "bench-random"
    dim = DIM

    def __init__(self) -> None:
        self.queue: list[NDArray[np.float32]] = []

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return np.stack([self.queue.pop(0) for _ in texts])


def unit_vectors(rng: np.random.Generator, n: int) -> NDArray[np.float32]:
    data = rng.standard_normal((n, DIM)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    return data


def texts(n: int, seed: int) -> list[str]:
    pick = random.Random(seed)
    return [f"note {i}: {pick.choice(WORDS)} {pick.choice(WORDS)} and {pick.choice(WORDS)}"
            for i in range(n)]


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def run_memory(path: Path, key: bytes | None, vectors: NDArray[np.float32], bodies: list[str],
               queries: NDArray[np.float32], words: list[str], batch: int) -> dict[str, Any]:
    if key is None:
        import sqlcipher3

        conn: Any = sqlcipher3.connect(str(path), check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA cache_size = {-sqlcipher.DEFAULT_CACHE_MIB * 1024}")
        sqlcipher.load_vector_extension(conn)
    else:
        conn = sqlcipher.connect(path, key)
    embedder = FixedEmbedder()
    handle = VaultHandle(conn, path=path, profile="bench")
    store = MemoryStore(handle, embedder)
    started = time.perf_counter()
    for i in range(0, len(bodies), batch):
        store.remember_many(list(zip(bodies[i:i + batch], vectors[i:i + batch], strict=True)))
    insert_s = time.perf_counter() - started
    latencies = []
    for query, word in zip(queries, words, strict=True):
        embedder.queue.append(query)
        t0 = time.perf_counter()
        hits = store.recall(f"what about the {word}", k=10)
        latencies.append(time.perf_counter() - t0)
        assert hits, "recall returned nothing"
    handle.close()
    return {"insert_s": insert_s, "insert_per_s": len(bodies) / insert_s,
            "recall_p50_ms": percentile(latencies, 50) * 1000,
            "recall_p95_ms": percentile(latencies, 95) * 1000,
            "file_bytes": sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))}


def run_raw(path: Path, vectors: NDArray[np.float32], queries: NDArray[np.float32],
            batch: int) -> dict[str, Any]:
    import sqlcipher3

    conn: Any = sqlcipher3.connect(str(path))
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA cache_size = {-sqlcipher.DEFAULT_CACHE_MIB * 1024}")
    sqlcipher.load_vector_extension(conn)
    conn.execute(f"CREATE VIRTUAL TABLE v USING vec0(embedding float[{DIM}] "
                 "distance_metric=cosine)")
    started = time.perf_counter()
    for i in range(0, len(vectors), batch):
        with conn:
            conn.executemany("INSERT INTO v (rowid, embedding) VALUES (?, ?)",
                             [(i + j + 1, vec.tobytes()) for j, vec in
                              enumerate(vectors[i:i + batch])])
    insert_s = time.perf_counter() - started
    latencies = []
    for query in queries:
        t0 = time.perf_counter()
        rows = conn.execute("SELECT rowid, distance FROM v WHERE embedding MATCH ? AND k = 10",
                            (query.tobytes(),)).fetchall()
        latencies.append(time.perf_counter() - t0)
        assert rows
    conn.close()
    return {"insert_s": insert_s, "insert_per_s": len(vectors) / insert_s,
            "recall_p50_ms": percentile(latencies, 50) * 1000,
            "recall_p95_ms": percentile(latencies, 95) * 1000,
            "file_bytes": sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    info = common.machine()
    results: dict[str, Any] = {"machine": info, "command": common.command_line(), "sizes": {}}
    rng = np.random.default_rng(args.seed)
    pick = random.Random(args.seed)
    for size in sizes:
        vectors = unit_vectors(rng, size)
        bodies = texts(size, args.seed)
        queries = unit_vectors(rng, args.queries)
        words = [pick.choice(WORDS) for _ in range(args.queries)]
        row: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="smallhold-bench-store-") as tmp:
            for name, key in (("vault", os.urandom(32)), ("plain", None)):
                log(f"{size:,} memories: {name}")
                row[name] = run_memory(Path(tmp) / f"{name}.db", key, vectors, bodies,
                                       queries, words, args.batch)
                log(f"  {row[name]['insert_per_s']:,.0f} inserts/s, recall p50 "
                    f"{row[name]['recall_p50_ms']:.1f} ms")
            log(f"{size:,} memories: raw vec0")
            row["raw"] = run_raw(Path(tmp) / "raw.db", vectors, queries, args.batch)
        results["sizes"][str(size)] = row
    info["loadavg_end"] = list(os.getloadavg())
    lines = ["### Memory store: insert and recall, encrypted vault vs plain file vs raw vec0", "",
             f"Command: `{results['command']}`", "", *common.machine_lines(info, [
                 ("vectors", f"random unit vectors, {DIM} dims; no embedding time"),
                 ("recall", f"{args.queries} queries, k=10, hybrid (vec0 KNN + FTS5 + "
                            "strength) for vault/plain; KNN only for raw vec0"),
                 ("inserts", f"transactions of {args.batch}; vault/plain write row + vec0 + "
                             "FTS5"),
                 ("page cache", f"{sqlcipher.DEFAULT_CACHE_MIB} MiB for all three (the "
                                "vault's default)"),
             ]), "", "Ratios: above 1 means the vault is better; vault/plain is the cost of "
             "encryption alone (same code, same SQLite build, no key).", ""]
    table = []
    for size, row in results["sizes"].items():
        v, p, r = row["vault"], row["plain"], row["raw"]
        table += [
            [f"{int(size):,}", "inserts/s", fmt(v["insert_per_s"], 0), fmt(p["insert_per_s"], 0),
             fmt(r["insert_per_s"], 0), fmt_ratio(ratio(v["insert_per_s"], p["insert_per_s"])),
             fmt_ratio(ratio(v["insert_per_s"], r["insert_per_s"]))],
            [f"{int(size):,}", "recall p50 (ms)", fmt(v["recall_p50_ms"], 2),
             fmt(p["recall_p50_ms"], 2), fmt(r["recall_p50_ms"], 2),
             fmt_ratio(ratio(p["recall_p50_ms"], v["recall_p50_ms"])),
             fmt_ratio(ratio(r["recall_p50_ms"], v["recall_p50_ms"]))],
            [f"{int(size):,}", "recall p95 (ms)", fmt(v["recall_p95_ms"], 2),
             fmt(p["recall_p95_ms"], 2), fmt(r["recall_p95_ms"], 2),
             fmt_ratio(ratio(p["recall_p95_ms"], v["recall_p95_ms"])),
             fmt_ratio(ratio(r["recall_p95_ms"], v["recall_p95_ms"]))],
            [f"{int(size):,}", "file MiB", fmt(v["file_bytes"] / 2**20),
             fmt(p["file_bytes"] / 2**20), fmt(r["file_bytes"] / 2**20), "", ""],
        ]
    lines.append(md_table(["memories", "metric", "vault (encrypted)", "plain file",
                           "raw vec0", "vault vs plain", "vault vs raw"], table, "llrrrrr"))
    markdown = "\n".join(lines)
    print(markdown)
    json_path, md_path = common.write_results("store", results, markdown)
    log(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
