"""Saved KV-cache states, one per conversation, in RAM under a byte budget, spilling to disk.

llama.cpp reuses its KV cache only for the prefix shared with the *previous* request, so two
conversations that take turns on one model would each re-prefill their whole history. Keeping
each conversation's sequence state (only the KV cells of sequence 0, not the logits buffer that
``Llama.save_state`` also copies) lets a returning conversation resume where it left off.

A saved state is conversation text in another form: its token ids decode back to the prompt
verbatim, and its KV cells are a function of it. So what spills to disk is protected like this:

- **Encrypted under a key that never leaves this process.** Each :class:`StateCache` draws a
  fresh random 256-bit AES-GCM key at start and keeps it only in memory. A spill file is
  ciphertext in frames of :data:`FRAME_BYTES` (a nonce per frame from a per-cache write counter
  and the frame index; the associated data binds every frame to the conversation key and marks
  the last frame, so files cannot be swapped between conversations, reordered or truncated).
  Token ids, KV bytes and the token count are all inside the ciphertext.
- **Private and short-lived.** Files are created ``0600`` with ``O_EXCL`` (temp files too) in
  a ``0700`` directory of their own cache, ``<spill root>/<pid>-<random>/``, locked with
  ``flock`` for the cache's life. A state's file is removed when the conversation's state is
  dropped (:meth:`StateCache.drop`, and :func:`remove_spilled` in every process's directory
  when a conversation is deleted), when the cache is cleared, and the directory when the cache
  closes (the engine's and the model manager's ``close``) or the interpreter exits. A process
  that was killed leaves a directory nobody can decrypt any more; the next cache that opens
  the spill root removes it once its ``flock`` is free, and never touches the directory of a
  live process (a server and a CLI chat may share a profile and a model). Spill files of
  versions before this format (plaintext, directly in the spill root) are removed the same way.

Why not encrypt under the profile's vault key, which would let a restarted process resume a
spilled conversation? A spill is a cache: it saves a re-prefill of seconds, only while the
process that made it runs. The vault key would have to be handed to the runtime (today only
the store holds it), and conversation-derived data would outlive the process on disk, readable
by anyone who later gets the key. With a per-process key, a spill outlives nothing: once the
process is gone its files are noise, whether or not they were removed.

What this does not promise: RAM is not protected (a saved state and the key are ordinary Python
memory and may be swapped out by the OS); the file name is a hash of the conversation key, so
whoever can read the cache folder can confirm a guessed conversation name (e.g. ``pocket:work``)
is live in some process; and a state another process holds in RAM when its conversation is
deleted elsewhere may be spilled again, unreadably, until that process drops it or exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# Plaintext bytes per AES-GCM frame: bounds the extra memory of a spill and stays far under
# the library's 2 GiB limit per call, whatever the model's KV size.
FRAME_BYTES = 4 * 1024 * 1024
_TAG_BYTES = 16
_MAGIC = b"SHKV\x01"
_AD_PREFIX = b"smallhold kv-state v1\x00"
_HEADER = np.dtype("<u8")
_LOCK_NAME = "owner.lock"
_SUFFIXES = (".kv", ".tmp")
_LEGACY = re.compile(r"[0-9a-f]{32}\.(kv|tmp)")  # plaintext spills, directly in the root


@dataclass(frozen=True)
class SavedState:
    tokens: npt.NDArray[np.intc]
    kv: bytes

    @property
    def nbytes(self) -> int:
        return len(self.kv) + int(self.tokens.nbytes)


def _key_bytes(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


def spill_name(key: str) -> str:
    """The file name of ``key``'s spilled state, the same in every process (so a conversation
    deleted in one process can have its files removed from all of them)."""
    return hashlib.sha256(_key_bytes(key)).hexdigest()[:32] + ".kv"


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter: missing parts are made ``0700`` and
    ``path`` itself is set to ``0700`` (a folder from an older version may be ``0755``)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for part in reversed(missing):
        with contextlib.suppress(FileExistsError):
            part.mkdir(mode=0o700)
    path.chmod(0o700)
    return path


def sweep_stale(root: Path) -> int:
    """Remove from spill root ``root`` what no live cache owns; returns the entries removed.

    A directory is stale when the ``flock`` on its lock file can be taken: its owner exited or
    was killed, and with it the only key to its files. A directory whose lock file is not there
    yet is being set up (:class:`_SpillDir` renames a locked file into place) and holds no
    state, so it is left alone. ``<hash>.kv`` and ``<hash>.tmp`` files directly in ``root`` are
    spills of an older, plaintext format; nothing else there is touched.
    """
    try:
        entries = list(root.iterdir())
    except OSError:
        return 0
    removed = 0
    for entry in entries:
        if entry.is_symlink() or not entry.is_dir():
            if _LEGACY.fullmatch(entry.name):
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed += 1
            continue
        try:
            fd = os.open(entry / _LOCK_NAME, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # its owner is alive
        else:
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
        finally:
            os.close(fd)
    return removed


def sweep_all(kv_root: Path) -> int:
    """:func:`sweep_stale` in every model's spill root under ``kv_root``: spills of a model
    that is never loaded again (or plaintext ones of an older version) do not stay forever."""
    try:
        roots = [p for p in kv_root.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return 0
    return sum(sweep_stale(root) for root in roots)


def remove_spilled(kv_root: Path, key: str) -> int:
    """Remove conversation ``key``'s spilled state for every model and every process under
    ``kv_root`` (``<kv_root>/<model>/<owner>/``); returns the files removed.

    For deleting a conversation: a live process that still wanted the state finds it gone and
    re-prefills, as after any cache miss.
    """
    stem = spill_name(key).removesuffix(".kv")
    removed = 0
    for pattern in (f"*/*/{stem}.kv", f"*/*/{stem}.*.tmp"):
        for path in kv_root.glob(pattern):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


class _SpillDir:
    """One cache's ``0700`` directory under the spill root, held by an ``flock`` while it lives.

    The lock file is created and locked under a temporary name and then renamed into place, so
    :func:`sweep_stale` in another process never sees an unlocked lock file of a live cache.
    """

    def __init__(self, root: Path) -> None:
        private_dir(root)
        self._pid = os.getpid()
        self.path = Path(tempfile.mkdtemp(prefix=f"{self._pid}-", dir=root))  # 0700
        fresh = self.path / ".lock.new"
        self._fd: int | None = os.open(
            fresh, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(fresh, self.path / _LOCK_NAME)
        except OSError:
            self.remove()
            raise

    def files(self) -> Iterator[Path]:
        try:
            yield from (p for p in self.path.iterdir() if p.suffix in _SUFFIXES)
        except OSError:
            return

    def remove(self) -> None:
        """Delete the directory and everything in it, then let go of the lock (idempotent).

        Only in the process that made it: a forked child exiting must not remove its
        parent's live spills."""
        if os.getpid() != self._pid:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class StateCache:
    """An LRU of :class:`SavedState` by key; least recently used states move to disk,
    encrypted under a key only this cache holds (see the module docstring)."""

    def __init__(self, budget_bytes: int, spill_dir: Path | None = None) -> None:
        self.budget_bytes = budget_bytes
        self.spill_dir = spill_dir  # the spill root, shared by every process using this model
        self._ram: OrderedDict[str, SavedState] = OrderedDict()
        self._lock = threading.Lock()
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self._writes = itertools.count(1)
        self._own: _SpillDir | None = None
        self._finalizer: weakref.finalize[[], StateCache] | None = None
        self._closed = False
        self.hits = 0
        self.disk_hits = 0
        self.misses = 0
        if spill_dir is not None:
            sweep_stale(spill_dir)

    @property
    def ram_bytes(self) -> int:
        return sum(s.nbytes for s in self._ram.values())

    @property
    def own_dir(self) -> Path | None:
        """This cache's own spill directory, once something has spilled."""
        return self._own.path if self._own is not None else None

    def _spill(self) -> _SpillDir | None:
        """The cache's own directory, made on first spill; None when spilling is off, closed
        or impossible (no room, no permission: states then only live in RAM)."""
        if self._own is None and self.spill_dir is not None and not self._closed:
            try:
                self._own = _SpillDir(self.spill_dir)
            except OSError:
                return None
            self._finalizer = weakref.finalize(self, self._own.remove)
        return self._own

    def _file(self, key: str) -> Path | None:
        return self._own.path / spill_name(key) if self._own is not None else None

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
                state = self._read(key, path)
                if state is not None:
                    self.disk_hits += 1
                    return state
                path.unlink(missing_ok=True)  # damaged or not ours: useless to keep
            self.misses += 1
            return None

    def drop(self, key: str) -> None:
        """Forget ``key``'s state, in RAM and on disk."""
        with self._lock:
            self._ram.pop(key, None)
            path = self._file(key)
            if path is not None:
                path.unlink(missing_ok=True)

    def clear(self) -> None:
        """Forget every state, in RAM and on disk (the directory stays for later spills)."""
        with self._lock:
            self._ram.clear()
            if self._own is not None:
                for path in self._own.files():
                    path.unlink(missing_ok=True)

    def close(self) -> None:
        """Forget every state and remove this cache's directory; later states stay in RAM."""
        with self._lock:
            self._ram.clear()
            self._closed = True
            if self._finalizer is not None:
                self._finalizer()  # runs _SpillDir.remove once
            self._own = None

    def _shrink(self) -> None:
        while self._ram and self.ram_bytes > self.budget_bytes:
            key, state = self._ram.popitem(last=False)
            self._write(key, state)

    # -- the file format: magic, write id, then AES-GCM frames of header + tokens + KV bytes --

    def _write(self, key: str, state: SavedState) -> None:
        """Encrypt ``state`` to a 0600 temp file, then rename it over the key's file."""
        own = self._spill()
        if own is None:
            return
        write_id = next(self._writes)
        path = own.path / spill_name(key)
        tmp = path.with_name(f"{path.stem}.{write_id}.tmp")
        tokens = state.tokens.astype(np.intc)
        parts = [np.array([tokens.size], dtype=_HEADER).tobytes(), tokens.tobytes(), state.kv]
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                         | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(_MAGIC + write_id.to_bytes(8, "big"))
                for index, (frame, last) in enumerate(_frames(parts, FRAME_BYTES)):
                    out.write(self._aead.encrypt(_nonce(write_id, index), frame,
                                                 _associated(key, last)))
            os.replace(tmp, path)
        except OSError:
            # A full disk only costs a re-prefill later; never fail a generation over a cache.
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def _read(self, key: str, path: Path) -> SavedState | None:
        frames: list[bytes] = []
        try:
            with path.open("rb") as source:
                head = source.read(len(_MAGIC) + 8)
                if len(head) != len(_MAGIC) + 8 or not head.startswith(_MAGIC):
                    return None
                write_id = int.from_bytes(head[len(_MAGIC):], "big")
                for index in itertools.count():
                    sealed = source.read(FRAME_BYTES + _TAG_BYTES)
                    last = len(sealed) < FRAME_BYTES + _TAG_BYTES
                    frames.append(self._aead.decrypt(_nonce(write_id, index), sealed,
                                                     _associated(key, last)))
                    if last:
                        break
        except (OSError, InvalidTag):
            return None
        plain = b"".join(frames)
        del frames
        if len(plain) < _HEADER.itemsize:
            return None
        count = int(np.frombuffer(plain[:_HEADER.itemsize], dtype=_HEADER)[0])
        end = _HEADER.itemsize + count * np.dtype(np.intc).itemsize
        if len(plain) <= end:
            return None
        tokens = np.frombuffer(plain[_HEADER.itemsize:end], dtype=np.intc).copy()
        return SavedState(tokens=tokens, kv=plain[end:])


def _nonce(write_id: int, index: int) -> bytes:
    """Unique per (cache key, write, frame): the write id is a per-cache counter."""
    return write_id.to_bytes(8, "big") + index.to_bytes(4, "big")


def _associated(key: str, last: bool) -> bytes:
    return _AD_PREFIX + (b"\x01" if last else b"\x00") + _key_bytes(key)


def _frames(parts: list[bytes], size: int) -> Iterator[tuple[bytes, bool]]:
    """The concatenation of ``parts`` in ``size``-byte frames, flagged True on the last.

    The last frame is always shorter than ``size`` (empty when the total is a multiple of it),
    so a reader knows the end by a short frame, and a file cut at a frame boundary fails.
    """
    buffer = bytearray()
    for part in parts:
        view = memoryview(part)
        while view:
            take = size - len(buffer)
            buffer += view[:take]
            view = view[take:]
            if len(buffer) == size:
                yield bytes(buffer), False
                buffer.clear()
    yield bytes(buffer), True


__all__ = ["FRAME_BYTES", "SavedState", "StateCache", "private_dir", "remove_spilled",
           "spill_name", "sweep_all", "sweep_stale"]
