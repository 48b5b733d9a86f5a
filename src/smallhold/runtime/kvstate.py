"""Saved KV-cache states, one per conversation, in RAM under a byte budget, spilling to disk.

llama.cpp reuses its KV cache only for the prefix shared with the *previous* request, so two
conversations that take turns on one model would each re-prefill their whole history. Keeping
each conversation's sequence state (only the KV cells of sequence 0, not the logits buffer that
``Llama.save_state`` also copies) lets a returning conversation resume where it left off.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class SavedState:
    tokens: npt.NDArray[np.intc]
    kv: bytes

    @property
    def nbytes(self) -> int:
        return len(self.kv) + int(self.tokens.nbytes)


class StateCache:
    """An LRU of :class:`SavedState` by key; least recently used states move to disk."""

    def __init__(self, budget_bytes: int, spill_dir: Path | None = None) -> None:
        self.budget_bytes = budget_bytes
        self.spill_dir = spill_dir
        self._ram: OrderedDict[str, SavedState] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.disk_hits = 0
        self.misses = 0

    @property
    def ram_bytes(self) -> int:
        return sum(s.nbytes for s in self._ram.values())

    def _file(self, key: str) -> Path | None:
        if self.spill_dir is None:
            return None
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return self.spill_dir / f"{digest}.kv"

    def put(self, key: str, state: SavedState) -> None:
        with self._lock:
            self._ram[key] = state
            self._ram.move_to_end(key)
            stale = self._file(key)
            if stale is not None:
                stale.unlink(missing_ok=True)
            self._shrink()

    def get(self, key: str) -> SavedState | None:
        with self._lock:
            state = self._ram.get(key)
            if state is not None:
                self._ram.move_to_end(key)
                self.hits += 1
                return state
            path = self._file(key)
            if path is not None and path.exists():
                state = _read(path)
                if state is not None:
                    self.disk_hits += 1
                    return state
            self.misses += 1
            return None

    def drop(self, key: str) -> None:
        with self._lock:
            self._ram.pop(key, None)
            path = self._file(key)
            if path is not None:
                path.unlink(missing_ok=True)

    def clear(self) -> None:
        with self._lock:
            self._ram.clear()

    def _shrink(self) -> None:
        while self._ram and self.ram_bytes > self.budget_bytes:
            key, state = self._ram.popitem(last=False)
            path = self._file(key)
            if path is not None:
                _write(path, state)


_HEADER = np.dtype("<u8")


def _write(path: Path, state: SavedState) -> None:
    """Header (token count) + tokens + KV bytes, written to a temp file then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        with tmp.open("wb") as out:
            out.write(np.array([state.tokens.size], dtype=_HEADER).tobytes())
            out.write(state.tokens.astype(np.intc).tobytes())
            out.write(state.kv)
        tmp.replace(path)
    except OSError:
        # A full disk only costs a re-prefill later; never fail a generation over a cache.
        tmp.unlink(missing_ok=True)


def _read(path: Path) -> SavedState | None:
    try:
        raw = path.read_bytes()
        count = int(np.frombuffer(raw[:8], dtype=_HEADER)[0])
        end = 8 + count * np.dtype(np.intc).itemsize
        tokens = np.frombuffer(raw[8:end], dtype=np.intc).copy()
        if tokens.size != count or len(raw) <= end:
            return None
        return SavedState(tokens=tokens, kv=raw[end:])
    except (OSError, ValueError, IndexError):
        return None
