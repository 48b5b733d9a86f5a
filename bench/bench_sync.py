"""Sync of N changed records between two devices on loopback: seconds and bytes on the wire.

A real relay process (``smallhold sync serve``) on 127.0.0.1 and two encrypted vaults in this
process. Device A writes ``--records`` notes (about 300 bytes of JSON each) and syncs; device
B syncs and receives them. Then A changes every record once more and both sync again (the
"10k changed records" case, where history and conflict bookkeeping are in play).

The peer, measured in the same run over the same relay and HTTP client: what a user would do
without record sync, copying the whole encrypted vault file to the other device (as
Syncthing, Dropbox or rsync of the database file would, with no delta). It is sent as one
sealed blob and fetched back; its bytes are the file after a WAL checkpoint. Run from the
repository root:

    .venv/bin/python bench/bench_sync.py --records 10000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

import _common as common
from _common import fmt, fmt_ratio, log, md_table, ratio
from smallhold.store import sqlcipher
from smallhold.store.collections import Collection
from smallhold.store.handle import VaultHandle
from smallhold.store.sync import crypto
from smallhold.store.sync.client import BATCH_CHANGES, SyncClient, SyncSettings
from smallhold.store.sync.transport import RelayClient


class Note(BaseModel):
    title: str
    body: str
    tags: list[str]
    stars: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_relay(db: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "smallhold", "sync", "serve", "--port",
                             str(port), "--db", str(db)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the relay did not start")


def device(tmp: Path, name: str, key: bytes, url: str) -> tuple[VaultHandle, Collection[Note]]:
    path = tmp / f"{name}.db"
    handle = VaultHandle(sqlcipher.connect(path, os.urandom(32)), path=path, profile=name)
    settings = SyncSettings(handle)
    settings.join(key, url)
    settings.enable("notes")
    return handle, Collection(handle, "notes", Note)


SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]
VOCABULARY = [
    "".join(random.Random(n).choice(SYLLABLES) for _ in range(1 + n % 4)) for n in range(3000)]


def note(i: int, round_no: int) -> Note:
    """Text of Zipf-distributed pseudo-words: compresses about as well as real prose."""
    rng = random.Random(i * 31 + round_no)
    words = rng.choices(VOCABULARY, weights=[1 / (k + 1) for k in range(3000)], k=45)
    return Note(title=" ".join(words[:4]), body=" ".join(words[4:]),
                tags=["work", f"project-{i % 13}"], stars=i % 6)


def sync_once(handle: VaultHandle, url: str, key: bytes, batch: int) -> dict[str, Any]:
    with RelayClient(url, crypto.GroupKeys.from_sync_key(key)) as relay:
        relay.create_group()  # what `sync pair` does; a no-op once the group is there
        return SyncClient(handle, relay, batch_changes=batch).run().as_dict()


def file_copy(handle: VaultHandle, url: str, label: str) -> dict[str, Any]:
    """The peer: the whole vault file up in sealed 8 MiB pieces (its own group), and down."""
    assert handle.path is not None
    handle.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = handle.path.read_bytes()
    keys = crypto.GroupKeys.from_sync_key(crypto.new_sync_key())
    piece = 8 * 2**20
    with RelayClient(url, keys) as relay:
        relay.create_group()
        started = time.perf_counter()
        for n, at in enumerate(range(0, len(data), piece)):
            name = f"{label}-{n}"
            relay.put_batch("file-copy", name, crypto.seal(keys, "file-copy", name,
                                                            data[at:at + piece]))
        up = time.perf_counter() - started
        got = b"".join(crypto.open_sealed(keys, b.device, b.batch_id, b.blob)
                       for b in relay.batches(0, 500))
        assert got == data
        down = time.perf_counter() - started - up
        return {"file_bytes": len(data), "up_s": up, "down_s": down,
                "bytes_sent": relay.sent, "bytes_received": relay.received}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=BATCH_CHANGES)
    args = parser.parse_args(argv)
    info = common.machine()
    results: dict[str, Any] = {"machine": info, "command": common.command_line(), "rounds": {}}
    key = crypto.new_sync_key()
    with tempfile.TemporaryDirectory(prefix="smallhold-bench-sync-") as tmp_name:
        tmp = Path(tmp_name)
        proc, url = start_relay(tmp / "relay.db")
        try:
            a, notes_a = device(tmp, "a", key, url)
            b, notes_b = device(tmp, "b", key, url)
            for round_no, label in ((0, "initial"), (1, "changed")):
                log(f"{label}: writing {args.records:,} records on A")
                started = time.perf_counter()
                for start in range(0, args.records, 1000):
                    with a.transaction():
                        for i in range(start, min(args.records, start + 1000)):
                            notes_a.put(note(i, round_no), f"note-{i}")
                write_s = time.perf_counter() - started
                plaintext = sum(len(r.value.model_dump_json()) for r in notes_a.all())
                push = sync_once(a, url, key, args.batch)
                pull = sync_once(b, url, key, args.batch)
                assert len(notes_b.all()) == args.records
                assert notes_b.get("note-7").value.body == note(7, round_no).body
                peer = file_copy(a, url, label)
                results["rounds"][label] = {"write_s": write_s, "plaintext_bytes": plaintext,
                                            "push": push, "pull": pull, "peer": peer}
                log(f"  push {push['seconds']:.2f} s, {push['bytes_sent']:,} B; pull "
                    f"{pull['seconds']:.2f} s, {pull['bytes_received']:,} B; file "
                    f"{peer['file_bytes']:,} B")
            a.close()
            b.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    info["loadavg_end"] = list(os.getloadavg())
    lines = [f"### Sync of {args.records:,} records between two devices on loopback", "",
             f"Command: `{results['command']}`", "", *common.machine_lines(info, [
                 ("relay", "`smallhold sync serve` process on 127.0.0.1 (uvicorn, SQLite)"),
                 ("devices", "two SQLCipher vaults in the benchmark process"),
                 ("records", f"{args.records:,} notes of Zipf-distributed pseudo-words, "
                             f"about 300 bytes of JSON each; {args.batch} changes per batch"),
                 ("peer", "copying the whole encrypted vault file (no delta), sealed, over "
                          "the same relay and client"),
             ]), ""]
    table = []
    for label, r in results["rounds"].items():
        push, pull, peer = r["push"], r["pull"], r["peer"]
        wire = push["bytes_sent"] + pull["bytes_received"]
        peer_wire = peer["bytes_sent"] + peer["bytes_received"]
        seconds = push["seconds"] + pull["seconds"]
        table.append([label, fmt(push["seconds"], 2), fmt(pull["seconds"], 2),
                      fmt(args.records / seconds, 0), fmt(wire / 2**20, 2),
                      fmt(ratio(wire, 2 * r["plaintext_bytes"]), 2),
                      fmt(peer_wire / 2**20, 2), fmt(peer["up_s"] + peer["down_s"], 2),
                      fmt_ratio(ratio(peer_wire, wire))])
    lines.append(md_table(["round", "push s (A)", "pull s (B)", "records/s", "MiB on wire",
                           "wire / plaintext", "file copy MiB", "file copy s",
                           "file copy bytes / sync bytes"], table, "lrrrrrrrr"))
    lines += ["", "MiB on wire counts request and response bodies both ways (upload by A plus "
              "download by B); wire / plaintext compares them with the records' JSON sent "
              "once each way."]
    markdown = "\n".join(lines)
    print(markdown)
    json_path, md_path = common.write_results("sync", results, markdown)
    log(f"wrote {json_path} and {md_path}")
    print(json.dumps({k: {"push_s": v["push"]["seconds"], "pull_s": v["pull"]["seconds"]}
                      for k, v in results["rounds"].items()}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
