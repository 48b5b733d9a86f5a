"""Prompt-lookup speculative decoding for greedy generation on a plain ``llama_cpp.Llama``.

Edits repeat their input ("fix the bug and return the whole function"), so the next tokens
can often be read off an earlier occurrence of the last few tokens. Each step drafts the
continuation of the longest recent n-gram (1..3 tokens) found earlier in prompt + output,
decodes ``[last token] + draft`` in one batch asking for logits of exactly those rows, keeps the
longest draft prefix the argmax agrees with plus the model's own next token, and removes the
KV cells of the rejected tail. No ``logits_all``: nothing is copied for prompt tokens.

Exactness. The output must be token-for-token what one-token-at-a-time greedy decoding gives.
That only holds if llama.cpp computes a token's logits bit-identically whether it is decoded
alone or inside a batch, and on CPU it often does not: an f16 KV cache, the repacked Q4_K/Q4_0
GEMM (used from 4 rows up) and llamafile's tinyBLAS each switch kernels by batch size. So
:func:`probe_batches` measures, once per loaded model, the largest batch whose logits match
single-token decoding bit for bit, and the decoder never verifies with a larger batch.

Cost. On a small CPU a batch of n tokens costs nearly n single steps (it is compute-bound,
not memory-bound), so drafting blindly loses. The decoder keeps the measured seconds per
batch size and, per n-gram length, how often drafts were right, and drafts ``k`` tokens only
when the expected tokens per second beat a plain step; otherwise it takes a plain one-token
step (which still checks the draft's first token, so acceptance is learnt for free).
"""

from __future__ import annotations

import ctypes
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from smallhold.errors import GenerationError

MAX_NGRAM = 3
MAX_DRAFT = 16
MIN_PROMPT_TOKENS = 64
_PRIOR = 1.0  # pseudo-counts of accepted and rejected draft tokens before any evidence
_DECAY = 0.95  # per observation: acceptance follows the current region of the text
_COST_EMA = 0.2
_MARGIN = 1.05  # a draft must promise 5% more tokens/s than a plain step

_PROBE_TEXT = (
    "Fix the bug in this function and return the whole function.\n\n"
    "def moving_average(values: list[float], window: int) -> list[float]:\n"
    '    """Average of each run of `window` consecutive values."""\n'
    "    if window <= 0:\n"
    '        raise ValueError("window must be positive")\n'
    "    out = []\n"
    "    total = sum(values[:window])\n"
    "    for i in range(window, len(values)):\n"
    "        out.append(total / window)\n"
    "        total += values[i] - values[i - window]\n"
    "    return out\n"
)


@dataclass
class BatchProfile:
    """What batched decoding costs on this model and machine, and up to which size it is exact.

    ``exact_upto`` is the largest n such that every batch of 2..n tokens produced logits
    bit-identical to decoding those tokens one at a time (1: none did). ``seconds`` maps a
    batch size to the measured wall time of one ``llama_decode`` of that many tokens, refined
    as decoding goes.
    """

    exact_upto: int
    seconds: dict[int, float] = field(default_factory=dict)

    def cost(self, n: int) -> float:
        known = self.seconds.get(n)
        if known is not None:
            return known
        below = [m for m in self.seconds if m <= n]
        base = max(below) if below else 1
        return self.seconds.get(base, 1.0) * n / base

    def record(self, n: int, seconds: float) -> None:
        old = self.seconds.get(n)
        self.seconds[n] = seconds if old is None else old + _COST_EMA * (seconds - old)


@dataclass
class LookupStats:
    drafted: int = 0
    accepted: int = 0
    batches: int = 0
    singles: int = 0

    def describe(self) -> str:
        return f"prompt-lookup:accepted={self.accepted}/{self.drafted}"


class NgramIndex:
    """Latest continuation of every 1..max_ngram-gram in a growing token history."""

    def __init__(self, tokens: Sequence[int], max_ngram: int = MAX_NGRAM) -> None:
        self.max_ngram = max_ngram
        self.tokens: list[int] = []
        self._next: list[dict[tuple[int, ...], int]] = [{} for _ in range(max_ngram + 1)]
        self.extend(tokens)

    def append(self, token: int) -> None:
        toks = self.tokens
        end = len(toks)  # the n-grams ending just before ``token`` continue at ``end``
        for n in range(1, min(self.max_ngram, end) + 1):
            self._next[n][tuple(toks[end - n:end])] = end
        toks.append(token)

    def extend(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            self.append(int(token))

    def draft(self, limit: int) -> tuple[int, list[int]]:
        """(length of the n-gram matched, up to ``limit`` tokens that followed it last time)."""
        toks = self.tokens
        if limit <= 0:
            return 0, []
        for n in range(min(self.max_ngram, len(toks)), 0, -1):
            start = self._next[n].get(tuple(toks[len(toks) - n:]))
            if start is not None:
                return n, toks[start:start + limit]
        return 0, []


class _Acceptance:
    """Decayed counts of accepted / rejected draft tokens, per n-gram length matched."""

    def __init__(self, max_ngram: int) -> None:
        self.hits = [_PRIOR] * (max_ngram + 1)
        self.misses = [_PRIOR] * (max_ngram + 1)

    def p(self, n: int) -> float:
        return self.hits[n] / (self.hits[n] + self.misses[n])

    def observe(self, n: int, drafted: int, accepted: int) -> None:
        self.hits[n] = self.hits[n] * _DECAY + accepted
        self.misses[n] = self.misses[n] * _DECAY + (1.0 if accepted < drafted else 0.0)


def choose_draft(p: float, available: int, profile: BatchProfile) -> int:
    """How many draft tokens to verify (0 = plain step), maximising expected tokens/second.

    A draft of k tokens, each right with probability ``p`` given the previous ones were,
    yields 1 + p + ... + p^k tokens for the cost of one batch of k + 1.
    """
    best_k, best_rate = 0, _MARGIN / profile.cost(1)
    expected, term = 1.0, 1.0
    for k in range(1, available + 1):
        term *= p
        expected += term
        rate = expected / profile.cost(k + 1)
        if rate > best_rate:
            best_k, best_rate = k, rate
    return best_k


class _Batch:
    """A ``llama_batch`` for one sequence, every row asking for its logits."""

    def __init__(self, capacity: int) -> None:
        from llama_cpp import llama_cpp as C

        self.capacity = capacity
        self.raw: Any = C.llama_batch_init(capacity, 0, 1)

    def fill(self, tokens: Sequence[int], pos: int) -> None:
        raw = self.raw
        raw.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            raw.token[i] = token
            raw.pos[i] = pos + i
            raw.n_seq_id[i] = 1
            raw.seq_id[i][0] = 0
            raw.logits[i] = True

    def close(self) -> None:
        from llama_cpp import llama_cpp as C

        if self.raw is not None:
            C.llama_batch_free(self.raw)
            self.raw = None


class PromptLookup:
    """Prompt-lookup decoding on one ``Llama`` (not thread-safe: the engine holds its lock)."""

    def __init__(self, llm: Any, *, max_draft: int = MAX_DRAFT, max_ngram: int = MAX_NGRAM,
                 exact: bool = True) -> None:
        self.llm = llm
        self.max_draft = max_draft
        self.max_ngram = max_ngram
        self.exact = exact
        self.profile: BatchProfile | None = None
        self._batch = _Batch(max_draft + 1)
        self._n_vocab = int(llm.n_vocab())
        self._n_ctx = int(llm.n_ctx())

    @property
    def max_batch(self) -> int:
        if self.profile is None:
            return 1
        return self.profile.exact_upto if self.exact else self.max_draft + 1

    # -- low level -------------------------------------------------------------------------

    def _decode(self, tokens: Sequence[int], pos: int) -> float:
        from llama_cpp import llama_cpp as C

        self._batch.fill(tokens, pos)
        started = time.perf_counter()
        code = int(C.llama_decode(self.llm.ctx, self._batch.raw))
        if code != 0:
            raise GenerationError(f"llama_decode of a {len(tokens)}-token batch returned {code}")
        return time.perf_counter() - started

    def _logits(self, row: int) -> npt.NDArray[np.float32]:
        from llama_cpp import llama_cpp as C

        ptr = C.llama_get_logits_ith(self.llm.ctx, row)
        return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)),
                                     shape=(self._n_vocab,))

    def _argmax(self, row: int) -> int:
        # numpy's argmax takes the first maximum, as llama.cpp's greedy sampler does
        return int(np.argmax(self._logits(row)))

    def _truncate(self, n: int) -> None:
        """Keep exactly the first ``n`` positions in both the KV cache and ``Llama``'s view."""
        self.llm._ctx.kv_cache_seq_rm(0, n, -1)
        self.llm.n_tokens = n

    # -- probing ---------------------------------------------------------------------------

    def probe(self) -> BatchProfile:
        """Measure exactness and cost of batch sizes 2..max_draft+1. Clears the KV cache."""
        llm = self.llm
        top = self.max_draft + 1
        tokens = list(llm.tokenize(_PROBE_TEXT.encode("utf-8"), add_bos=False))
        while len(tokens) < 32 + top:
            tokens += tokens
        prefix, cont = tokens[:32], tokens[32:32 + top]
        llm.reset()
        llm._ctx.kv_cache_clear()
        try:
            llm.eval(prefix)
            single: list[npt.NDArray[np.float32]] = []
            single_s: list[float] = []
            for i, token in enumerate(cont):
                single_s.append(self._decode([token], len(prefix) + i))
                single.append(self._logits(0).copy())
            profile = BatchProfile(exact_upto=1, seconds={1: statistics.median(single_s)})
            exact = True
            for n in range(2, top + 1):
                if not llm._ctx.kv_cache_seq_rm(0, len(prefix), -1):
                    break  # no partial KV removal (recurrent model): no speculation at all
                profile.seconds[n] = self._decode(cont[:n], len(prefix))
                exact = exact and all(
                    np.array_equal(self._logits(i), single[i]) for i in range(n)
                )
                if exact:
                    profile.exact_upto = n
                elif self.exact:
                    break
        finally:
            llm.reset()
            llm._ctx.kv_cache_clear()
        self.profile = profile
        return profile

    # -- decoding --------------------------------------------------------------------------

    def generate(self, tokens: Sequence[int], max_new: int,
                 stats: LookupStats | None = None) -> Iterator[int]:
        """Greedy tokens after ``tokens``, identical to ``Llama.generate(tokens, temp=0)``.

        Like ``Llama.generate``, a yielded token is not yet in the KV cache; when the caller
        stops (closes the generator), the cache and ``Llama.n_tokens`` are cut back to what
        one-token decoding would hold at that point, so saved states and prefix reuse work.
        """
        llm = self.llm
        stats = stats if stats is not None else LookupStats()
        if self.profile is None:
            raise GenerationError("PromptLookup.probe() must run before generate()")
        profile = self.profile
        # llama.cpp's own path handles prefix reuse, the prefill and the first token
        first_stream = llm.generate(tokens, temp=0.0, repeat_penalty=1.0)
        try:
            last = int(next(first_stream))
        finally:
            first_stream.close()
        index = NgramIndex(tokens, self.max_ngram)
        index.append(last)
        acceptance = _Acceptance(self.max_ngram)
        produced = 1
        keep = int(llm.n_tokens)  # positions that stay cached if the caller stops now
        try:
            yield last
            while produced < max_new:
                n0 = int(llm.n_tokens)
                room = min(self.max_batch - 1, self._n_ctx - n0 - 1, max_new - produced - 1)
                if room < 0:
                    return
                ngram, draft = index.draft(min(room, self.max_draft))
                k = choose_draft(acceptance.p(ngram), len(draft), profile) if draft else 0
                batch = [last, *draft[:k]]
                seconds = self._decode(batch, n0)
                profile.record(len(batch), seconds)
                preds = [self._argmax(i) for i in range(len(batch))]
                accepted = 0
                while accepted < k and draft[accepted] == preds[accepted]:
                    accepted += 1
                if k:
                    stats.batches += 1
                    stats.drafted += k
                    stats.accepted += accepted
                    acceptance.observe(ngram, k, accepted)
                else:
                    stats.singles += 1
                    if draft:  # a free look at whether the draft would have started right
                        acceptance.observe(ngram, 1, int(draft[0] == preds[0]))
                llm.input_ids[n0:n0 + accepted + 1] = batch[:accepted + 1]
                self._truncate(n0 + accepted + 1)
                llm._requires_eval = False
                new = preds[:accepted + 1]
                for i, token in enumerate(new):
                    keep = n0 + i + 1
                    index.append(token)
                    produced += 1
                    yield token
                    if produced >= max_new:
                        return
                last = new[-1]
                keep = int(llm.n_tokens)
        finally:
            self._truncate(min(keep, int(llm.n_tokens)))
            # the logits buffer holds rows of the last batch, not of the last kept token
            llm._requires_eval = True

    def close(self) -> None:
        self._batch.close()
