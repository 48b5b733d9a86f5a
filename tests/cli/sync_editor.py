"""Random offline edits to one profile's ``notes`` collection (run as a separate process).

Usage: python sync_editor.py PROFILE SEED COUNT. Record ids come from a small shared pool so
two profiles edit the same records and conflict.
"""

from __future__ import annotations

import contextlib
import random
import sys

from pydantic import BaseModel

from smallhold.errors import RecordNotFoundError
from smallhold.paths import resolve_paths
from smallhold.store.collections import Collection
from smallhold.store.vault import open_vault

POOL = [f"note-{i:02d}" for i in range(12)]


class Note(BaseModel):
    title: str
    body: str = ""


def main(profile: str, seed: int, count: int) -> None:
    rng = random.Random(seed)
    with open_vault(resolve_paths(), profile, create_default=True) as handle:
        notes = Collection(handle, "notes", Note)
        for i in range(count):
            rid = rng.choice(POOL)
            if rng.random() < 0.15:
                with contextlib.suppress(RecordNotFoundError):
                    notes.delete(rid)
            else:
                notes.put({"title": rid, "body": f"{profile} edit {seed}.{i}"}, rid)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
