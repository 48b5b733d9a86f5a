"""Issue 22, item 2: conversation text must not reach disk outside the vault through KV spills.

The attack: with the KV-state budget spent, ``runtime/kvstate.py`` wrote a conversation's token
ids and KV bytes in the clear to ``cache/kv/<model>/*.kv`` (0644), kept after shutdown, and the
model's tokenizer turned the ids back into the conversation. These tests drive the real
:class:`StateCache` (and, in one test, the real engine on SmolLM2-135M) until it spills, then
read every file an attacker could.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from smallhold.config import Settings
from smallhold.paths import Paths
from smallhold.runtime import kvstate
from smallhold.runtime.device import simulated
from smallhold.runtime.engine import LoadOptions
from smallhold.runtime.kvstate import SavedState, StateCache, spill_name
from smallhold.runtime.manager import ModelManager
from smallhold.runtime.registry import SMOLLM2_135M, ModelSpec
from smallhold.store.memory.store import TextEmbedder

KV_MARKER = b"KV-CELLS-OF-A-PRIVATE-CONVERSATION"


def state(first_token: int, size: int = 300, kv_repeats: int = 400) -> SavedState:
    """Recognisable token ids and KV bytes, as big as a short conversation's."""
    tokens = np.arange(first_token, first_token + size, dtype=np.intc)
    return SavedState(tokens=tokens, kv=KV_MARKER * kv_repeats)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def assert_private(root: Path) -> None:
    """Every file under ``root`` is 0600 and every directory (``root`` too) 0700."""
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        wanted = 0o700 if path.is_dir() else 0o600
        assert mode == wanted, f"{path} is {oct(mode)}, not {oct(wanted)}"


@pytest.fixture
def spill_root(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "kv" / "some-model"


@pytest.fixture
def cache(spill_root: Path) -> Iterator[StateCache]:
    states = StateCache(0, spill_root)  # a budget of 0: every state spills
    yield states
    states.close()


class CacheEngine:
    """An engine for the manager with the real state cache and no model (the loader seam)."""

    def __init__(self, spec: ModelSpec, options: LoadOptions) -> None:
        self.states = StateCache(0, options.spill_dir)

    def forget(self, key: str) -> None:
        self.states.drop(key)

    def close(self) -> None:
        self.states.close()


def test_spilled_state_holds_neither_token_ids_nor_kv_bytes(cache: StateCache,
                                                            spill_root: Path) -> None:
    saved = state(1000)
    cache.put("pocket:diary", saved)
    cache.put("pocket:other", state(5000))
    spilled = files_under(spill_root)
    assert any(p.name == spill_name("pocket:diary") for p in spilled)
    for path in spilled:
        data = path.read_bytes()
        assert saved.tokens[:4].tobytes() not in data, f"token ids in the clear in {path}"
        assert KV_MARKER[:8] not in data, f"KV bytes in the clear in {path}"
        assert b"pocket:diary" not in data
    assert_private(spill_root.parent.parent)  # cache/kv and below
    back = cache.get("pocket:diary")
    assert back is not None and cache.disk_hits == 1
    assert np.array_equal(back.tokens, saved.tokens) and back.kv == saved.kv


def test_spill_files_cannot_be_swapped_truncated_or_read_by_another_cache(
        cache: StateCache, spill_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kvstate, "FRAME_BYTES", 256)  # many frames, so cuts land between them
    cache.put("a", state(1000))
    cache.put("b", state(2000))
    own = cache.own_dir
    assert own is not None
    file_a, file_b = own / spill_name("a"), own / spill_name("b")
    assert cache.get("b") is not None

    shutil.copyfile(file_a, file_b)  # a's state under b's name
    assert cache.get("b") is None, "a spilled state was accepted under another conversation"

    cache.put("b", state(2000))
    cut = len(kvstate._MAGIC) + 8 + 3 * (256 + 16)  # ends exactly after the third frame
    file_b.write_bytes(file_b.read_bytes()[:cut])
    assert cache.get("b") is None, "a truncated spill was accepted"

    other = StateCache(0, spill_root)  # another process's cache: another key
    try:
        other.put("a", state(9000))
        other_dir = other.own_dir
        assert other_dir is not None
        shutil.copyfile(file_a, other_dir / spill_name("a"))
        assert other.get("a") is None, "a spill was readable without its cache's key"
    finally:
        other.close()
    assert cache.get("a") is not None


def test_drop_clear_and_close_remove_the_spilled_files(cache: StateCache,
                                                        spill_root: Path) -> None:
    for n, key in enumerate(("a", "b", "c")):
        cache.put(key, state(1000 * (n + 1)))
    own = cache.own_dir
    assert own is not None
    cache.drop("a")
    assert not (own / spill_name("a")).exists()
    assert (own / spill_name("b")).exists()
    cache.clear()
    assert [p for p in files_under(spill_root) if p.suffix in (".kv", ".tmp")] == []
    cache.put("d", state(4000))
    cache.close()
    assert files_under(spill_root) == [] and not own.exists()
    cache.put("e", state(5000))  # a closed cache keeps states in RAM only
    assert files_under(spill_root) == []


OWNER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from smallhold.runtime.kvstate import SavedState, StateCache
    cache = StateCache(0, Path(sys.argv[1]))
    cache.put("pocket:x", SavedState(np.arange(100, 400, dtype=np.intc), b"kv" * 5000))
    print(cache.own_dir, flush=True)
    sys.stdin.read()  # hold the cache until the test closes stdin or kills us
""")


def spawn_owner(spill_root: Path) -> tuple[subprocess.Popen[str], Path]:
    """A real second process that spills one state and stays alive until told."""
    proc = subprocess.Popen([sys.executable, "-c", OWNER, str(spill_root)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def test_a_new_cache_removes_dead_processes_spills_and_keeps_live_ones(
        spill_root: Path) -> None:
    dead, dead_dir = spawn_owner(spill_root)
    live, live_dir = spawn_owner(spill_root)
    try:
        dead.send_signal(signal.SIGKILL)  # no close, no atexit: its files stay behind
        dead.wait()
        assert dead_dir.is_dir() and live_dir.is_dir()
        legacy = spill_root / spill_name("pocket:old")  # the old plaintext format
        legacy.write_bytes(np.arange(100, 400, dtype=np.intc).tobytes())
        unrelated = spill_root / "notes.txt"  # not a spill: never touched
        unrelated.write_text("mine")
        in_process = StateCache(0, spill_root)
        in_process.put("k", state(1))

        StateCache(0, spill_root).close()  # a new process opens the model's spill folder

        assert not dead_dir.exists() and not legacy.exists() and unrelated.is_file()
        assert live_dir.is_dir() and (live_dir / spill_name("pocket:x")).is_file()
        assert in_process.own_dir is not None and in_process.own_dir.is_dir()
        in_process.close()
    finally:
        assert live.stdin is not None
        live.stdin.close()  # it exits normally: its interpreter-exit hook removes its folder
        live.wait()
    assert not live_dir.exists()


def test_a_forked_child_leaves_its_parents_spills_alone(cache: StateCache) -> None:
    cache.put("a", state(1000))
    own = cache.own_dir
    assert own is not None
    pid = os.fork()
    if pid == 0:  # the child closes its copy of the cache, as its interpreter exit would
        try:
            cache.close()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert (own / spill_name("a")).is_file() and cache.get("a") is not None


def test_loading_a_model_removes_every_models_stale_and_plaintext_spills(
        paths: Paths, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("smallhold.runtime.manager.assets.ensure_model",
                        lambda spec, models_dir, progress=None: Path("/dev/null"))
    manager = ModelManager(settings.runtime, paths, simulated(16),
                           loader=lambda spec, path, options: CacheEngine(spec, options),
                           installed=lambda: [SMOLLM2_135M])
    legacy = manager.kv_dir / "a-model-never-loaded-again" / spill_name("pocket:old")
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(np.arange(100, 400, dtype=np.intc).tobytes())  # the old format
    dead, dead_dir = spawn_owner(manager.kv_dir / "another-model")
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    assert dead_dir.is_dir()
    with manager.use(SMOLLM2_135M.name):
        pass
    assert not dead_dir.exists() and not legacy.exists()
    manager.close()
    assert files_under(manager.kv_dir) == []


def test_a_full_disk_never_fails_a_generation(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_bytes(b"")
    cache = StateCache(0, blocked / "kv" / "model")  # no folder can be made there
    cache.put("a", state(1000))
    assert cache.get("a") is None  # the state is lost (a later re-prefill), nothing raised
    cache.close()

    import resource

    cache = StateCache(0, tmp_path / "kv")
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # writes past 4 KiB fail: EFBIG
    try:
        cache.put("a", state(1000))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert cache.get("a") is None
    assert [p for p in files_under(tmp_path / "kv") if p.suffix in (".kv", ".tmp")] == []
    cache.close()


def test_deleting_a_conversation_removes_its_spills_in_every_process(
        paths: Paths, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("smallhold.runtime.manager.assets.ensure_model",
                        lambda spec, models_dir, progress=None: Path("/dev/null"))
    loaded: list[CacheEngine] = []

    def loader(spec: ModelSpec, path: Path, options: LoadOptions) -> CacheEngine:
        loaded.append(CacheEngine(spec, options))
        return loaded[-1]

    manager = ModelManager(settings.runtime, paths, simulated(16), loader=loader,
                           installed=lambda: [SMOLLM2_135M])
    elsewhere, elsewhere_dir = spawn_owner(manager.kv_dir / SMOLLM2_135M.name)
    try:
        with manager.use(SMOLLM2_135M.name):
            pass
        [engine] = loaded
        engine.states.put("pocket:x", state(1000))
        engine.states.put("pocket:y", state(2000))
        mine = engine.states.own_dir
        assert mine is not None and (mine / spill_name("pocket:x")).is_file()

        manager.forget("pocket:x")

        assert not (mine / spill_name("pocket:x")).exists()
        assert not (elsewhere_dir / spill_name("pocket:x")).exists()
        assert (mine / spill_name("pocket:y")).is_file()
        manager.close()
        assert [p for p in files_under(manager.kv_dir) if p.suffix == ".kv"] == []
    finally:
        assert elsewhere.stdin is not None
        elsewhere.stdin.close()
        elsewhere.wait()


def test_chat_rm_removes_the_conversations_spilled_state(
        paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    from smallhold.cli import main

    monkeypatch.setenv("SMALLHOLD_RUNTIME__BACKEND", "scripted")
    assert CliRunner().invoke(main, ["chat", "-c", "trip", "plan my trip"]).exit_code == 0
    # A server or a GUI of the same profile talked about the trip and spilled its state.
    other = StateCache(0, paths.cache_dir / "kv" / SMOLLM2_135M.name)
    other.put("pocket:trip", state(1000))
    other.put("pocket:stays", state(2000))
    own = other.own_dir
    assert own is not None
    monkeypatch.delenv("SMALLHOLD_RUNTIME__BACKEND")  # rm runs on the default llama runtime
    try:
        result = CliRunner().invoke(main, ["chat", "rm", "trip", "--yes", "--json"])
        assert result.exit_code == 0, result.output
        assert not (own / spill_name("pocket:trip")).exists()
        assert (own / spill_name("pocket:stays")).is_file()
    finally:
        other.close()


# -- the whole profile after a real conversation that spilled --------------------------------

SECRET_WORD = "Quokkaberry"


def token_runs(data: bytes, vocab: int, min_len: int = 6) -> Iterator[list[int]]:
    """Every run of ``min_len``+ little-endian int32 values that are token ids, at each of the
    four byte alignments: what an attacker would feed the tokenizer."""
    for offset in range(4):
        usable = (len(data) - offset) // 4 * 4
        if usable <= 0:
            continue
        ids = np.frombuffer(data, dtype="<i4", count=usable // 4, offset=offset)
        valid = np.concatenate(([False], (ids >= 0) & (ids < vocab), [False]))
        edges = np.flatnonzero(np.diff(valid.astype(np.int8)))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            if stop - start >= min_len and np.any(ids[start:stop] != ids[start]):
                yield ids[start:stop].tolist()


def leaks(root: Path, decode: Callable[[list[int]], str], vocab: int) -> list[str]:
    found = []
    for path in files_under(root):
        data = path.read_bytes()
        if SECRET_WORD.lower().encode() in data.lower():
            found.append(f"{path}: the text itself")
        for run in token_runs(data, vocab):
            if SECRET_WORD.lower() in decode(run).lower():
                found.append(f"{path}: {len(run)} token ids that decode to it")
                break
    return found


@pytest.mark.model
def test_no_file_of_the_profile_decodes_to_the_conversation(
        settings: Settings, paths: Paths, smallhold_home: Path, embedder: TextEmbedder) -> None:
    """SmolLM2-135M with no RAM for saved states: a pocket conversation spills, and then no
    file under SMALLHOLD_HOME (config, vault, cache, runtime dir) holds its text or its token
    ids; deleting it and closing the runtime leave no spill at all."""
    from smallhold.apps.pocket.assistant import Pocket, session_key
    from smallhold.runtime.runtime import Runtime
    from smallhold.runtime.types import GenerationParams
    from smallhold.store.vault import open_vault
    from smallhold.trace import TraceLog

    settings.runtime.default_model = SMOLLM2_135M.name
    settings.runtime.n_ctx = 512
    settings.runtime.n_threads = 2
    settings.runtime.state_cache_mb = 0
    params = GenerationParams(max_tokens=4, temperature=0.0)
    kv = paths.cache_dir / "kv"
    with open_vault(paths, settings.profile, create_default=True) as vault:
        runtime = Runtime(settings, paths, probe=simulated(16),
                          trace=TraceLog(vault.conn, lock=vault.lock), app="pocket")
        try:
            pocket = Pocket(runtime, vault, embedder)
            list(pocket.ask("secret", f"My password is {SECRET_WORD}. Say ok.", params))
            list(pocket.ask("other", "Say hi.", params))  # the secret's state spills
            assert runtime.manager is not None
            spilled = list(kv.rglob(spill_name(session_key("secret"))))
            assert spilled, "nothing spilled: the test would prove nothing"
            assert_private(kv)
            with runtime.manager.use(SMOLLM2_135M.name) as engine:
                vocab = int(engine.llm.n_vocab())

                def decode(run: list[int]) -> str:
                    return bytes(engine.llm.detokenize(run)).decode("utf-8", "replace")

                assert leaks(smallhold_home, decode, vocab) == []
                # the check itself finds a clear-text spill (the format before the fix)
                ids = engine.tokenize(f"My password is {SECRET_WORD}.")
                probe = kv / "probe.bin"
                probe.write_bytes(b"\0" * 8 + np.asarray(ids, np.intc).tobytes())
                assert leaks(kv, decode, vocab) != []
                probe.unlink()
            pocket.forget_conversation("secret")
            assert list(kv.rglob(spill_name(session_key("secret")))) == []
        finally:
            runtime.close()
    assert files_under(kv) == []
