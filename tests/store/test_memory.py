"""Vector memory: hybrid recall, filters, reinforce/forget, consolidation with its history."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from smallhold.errors import RecordNotFoundError, RecordValidationError, StoreError
from smallhold.store.handle import VaultHandle
from smallhold.store.memory import DecayPolicy, MemoryStore, decay, ranking
from smallhold.store.memory.store import fts_query

DAY = 86400.0


class WordHashEmbedder:
    """Deterministic bag-of-words vectors: texts sharing words are similar, others are not."""

    name = "test-word-hash"
    dim = 64

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.sha256(word.encode()).digest()
                out[row, digest[0] % self.dim] += 1.0
            norm = float(np.linalg.norm(out[row]))
            out[row] = out[row] / norm if norm else out[row]
            if not norm:
                out[row, 0] = 1.0
        return out


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def memory(vault_handle: VaultHandle, clock: Clock) -> MemoryStore:
    return MemoryStore(vault_handle, WordHashEmbedder(), clock=clock)


def test_recall_finds_by_meaning_and_by_exact_keyword(memory: MemoryStore) -> None:
    memory.remember("the dentist appointment is on friday morning", kind="calendar")
    memory.remember("my passport number is X1234567", kind="fact", importance=0.9)
    memory.remember("buy oat milk and bread", kind="todo")
    hits = memory.recall("when is the dentist appointment", k=2)
    assert hits[0].memory.text.startswith("the dentist")
    hits = memory.recall("x1234567", k=1)
    assert hits[0].memory.text == "my passport number is X1234567"
    assert hits[0].keyword > 0


def test_filters_by_kind_tags_and_time(memory: MemoryStore, clock: Clock) -> None:
    memory.remember("project alpha deadline is june", kind="work", tags=["alpha"])
    clock.now += DAY
    memory.remember("project alpha retro notes", kind="work", tags=["alpha", "retro"])
    memory.remember("project alpha birthday cake", kind="personal", tags=["alpha"])
    assert {h.memory.kind for h in memory.recall("project alpha", k=5, kind="work")} == {"work"}
    tagged = memory.recall("project alpha", k=5, tags=["retro"])
    assert [h.memory.text for h in tagged] == ["project alpha retro notes"]
    recent = memory.recall("project alpha", k=5, since=clock.now - 1)
    assert len(recent) == 2


def test_reinforce_forget_and_history(memory: MemoryStore, clock: Clock) -> None:
    item = memory.remember("the wifi password is in the blue notebook")
    clock.now += DAY
    again = memory.reinforce(item.id, "answered a question")
    assert again.reinforcements == 1 and again.reinforced_at == clock.now
    memory.forget(item.id, "user asked")
    with pytest.raises(RecordNotFoundError, match="memory list"):
        memory.get(item.id)
    assert memory.recall("wifi password", k=3) == []
    actions = [(e.action, e.reason) for e in memory.history(item.id)]
    assert actions == [("forget", "user asked"), ("reinforce", "answered a question"),
                       ("remember", "stored")]
    conn = memory.handle.conn
    assert conn.execute("SELECT count(*) FROM memory_fts").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM memory_vectors").fetchone() == (0,)
    assert "notebook" not in str(conn.execute("SELECT * FROM memory_events").fetchall())


def test_consolidation_fades_merges_archives_and_says_why(memory: MemoryStore,
                                                         clock: Clock) -> None:
    a = memory.remember("call mum on sunday evening", importance=0.8, tags=["family"])
    b = memory.remember("call mum on sunday evening", importance=0.3, tags=["weekly"])
    old = memory.remember("parking spot level three row c", importance=0.0)
    fresh = memory.remember("the conference talk is about caching")
    policy = DecayPolicy(half_life_s=10 * DAY, archive_floor=0.05)
    clock.now += 50 * DAY
    memory.reinforce(fresh.id)
    actions = memory.consolidate(policy)
    merged = [x for x in actions if isinstance(x, decay.Merge)]
    assert [(m.keep, m.drop) for m in merged] == [(a.id, b.id)]
    assert memory.get(a.id).tags == ["family", "weekly"]
    archived = memory.get(old.id)
    assert archived.archived_at is not None and "floor" in (archived.archived_reason or "")
    assert memory.get(b.id).archived_reason is not None
    assert "near-duplicate" in (memory.get(b.id).archived_reason or "")
    assert memory.get(fresh.id).weight == 1.0
    faded = memory.get(a.id)
    assert 0.05 < faded.weight < 1.0
    assert [e.action for e in memory.history(a.id)][:2] == ["fade", "merge"]
    # Archived memories leave recall, but can be asked for, and reinforcing brings one back.
    assert all(h.memory.id != old.id for h in memory.recall("parking spot", k=5))
    assert memory.recall("parking spot", k=5, include_archived=True)[0].memory.id == old.id
    memory.reinforce(old.id)
    assert memory.recall("parking spot", k=1)[0].memory.id == old.id
    # Weights are a function of idle time: running again at once changes nothing.
    assert memory.consolidate(policy) == []


def test_dry_run_changes_nothing(memory: MemoryStore, clock: Clock) -> None:
    memory.remember("something small", importance=0.0)
    clock.now += 400 * DAY
    planned = memory.consolidate(dry_run=True)
    assert planned and all(isinstance(a, decay.Archive) for a in planned)
    assert memory.list()[0].archived_at is None


def test_bad_input_is_refused_and_nothing_is_stored(memory: MemoryStore) -> None:
    for text in ("", "   "):
        with pytest.raises(RecordValidationError, match="empty"):
            memory.remember(text)
    with pytest.raises(RecordValidationError, match="importance"):
        memory.remember("x", importance=2.0)
    with pytest.raises(RecordValidationError, match="at most"):
        memory.remember("x" * 30_000)
    with pytest.raises(RecordValidationError, match="dimensions"):
        memory.remember("fine text", vector=np.ones(3, np.float32))
    with pytest.raises(RecordValidationError, match="empty"):
        memory.recall("  ")
    with pytest.raises(RecordNotFoundError):
        memory.forget("nope")
    assert memory.count() == 0


def test_fts_query_is_inert_against_fts_syntax(memory: MemoryStore) -> None:
    memory.remember('he said "AND OR NOT" (quote) * near')
    assert fts_query('"AND" OR NOT(*') == '"and" OR "or" OR "not"'
    assert memory.recall('"AND OR NOT" (quote) *', k=1)
    assert fts_query("a ! ?") is None


def test_another_embedding_model_is_refused(vault_handle: VaultHandle) -> None:
    MemoryStore(vault_handle, WordHashEmbedder())

    class Other(WordHashEmbedder):
        name = "other-model"

    with pytest.raises(StoreError, match=r"cannot\s+be compared"):
        MemoryStore(vault_handle, Other())


def test_memories_are_encrypted_on_disk(vault_handle: VaultHandle, tmp_path: Path) -> None:
    store = MemoryStore(vault_handle, WordHashEmbedder())
    secret = "blood pressure reading 142 over 91 on tuesday"
    store.remember(secret, tags=["health-private"])
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        assert b"blood pressure" not in data and b"health-private" not in data, path.name


def test_ranking_prefers_meaning_then_keywords_then_strength() -> None:
    strong = ranking.score(cosine=0.9, bm25=None, age_s=0, importance=0.5, weight=1.0)
    keyword_only = ranking.score(cosine=0.1, bm25=-5.0, age_s=0, importance=0.5, weight=1.0)
    assert strong.total > keyword_only.total
    middling = ranking.score(cosine=0.5, bm25=None, age_s=0, importance=0.5, weight=1.0)
    lifted = ranking.score(cosine=0.5, bm25=-2.0, age_s=0, importance=0.5, weight=1.0)
    assert lifted.total > middling.total
    faded = ranking.score(cosine=0.5, bm25=None, age_s=0, importance=0.5, weight=0.1)
    old = ranking.score(cosine=0.5, bm25=None, age_s=365 * DAY, importance=0.5, weight=1.0)
    assert faded.total < middling.total and old.total < middling.total
    assert ranking.keyword_score(None) == 0.0 and 0 < ranking.keyword_score(-1.0) < 1


def test_decay_plan_is_pure_and_importance_slows_fading() -> None:
    vec = np.eye(4, dtype=np.float32)
    policy = DecayPolicy(half_life_s=10 * DAY)
    items = [decay.Candidate(id=str(i), kind="k", weight=1.0, importance=imp,
                             reinforced_at=0.0, reinforcements=0, vector=vec[i])
             for i, imp in enumerate([0.0, 1.0])]
    actions = decay.plan(items, 10 * DAY, policy)
    fades = {a.id: a.new for a in actions if isinstance(a, decay.Fade)}
    assert fades["0"] == pytest.approx(0.5)
    assert fades["1"] == pytest.approx(0.5 ** (1 / 3))
    assert decay.plan(items, 10 * DAY, policy) == actions


@pytest.mark.model
def test_recall_with_the_real_sentence_model(vault_handle: VaultHandle) -> None:
    from smallhold.paths import resolve_paths
    from smallhold.runtime.embeddings import Embedder

    store = MemoryStore(vault_handle, Embedder.open(resolve_paths()))
    store.remember("Dentist appointment on Friday at 10am", kind="calendar")
    store.remember("The cat needs her flea medicine every month", kind="pets")
    store.remember("Quarterly taxes are due on the 15th", kind="money")
    assert store.recall("when do I see the tooth doctor?", k=1)[0].memory.kind == "calendar"
    assert store.recall("what does my kitty need?", k=1)[0].memory.kind == "pets"
