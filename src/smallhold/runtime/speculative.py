"""Prompt-lookup speculative decoding for greedy generation on a plain ``llama_cpp.Llama``.

Edits repeat their input ("fix the bug and return the whole function"), so the next tokens
can often be read off an earlier occurrence of the last few tokens. Each step drafts the
continuation of the longest recent n-gram (1..3 tokens) found earlier in prompt + output,
decodes ``[last token] + draft`` in one batch asking for logits of exactly those rows, keeps the
longest draft prefix the argmax agrees with plus the model's own next token, and removes the
KV cells of the rejected tail. No ``logits_all``: nothing is copied for prompt tokens.

Exactness. The output must be token-for-token what one-token-at-a-time greedy decoding gives.
That only holds if llama.cpp computes a token's logits bit-identically whether it is decoded
alone or inside a batch, and on CPU it often does not, because kernels are chosen by batch
size. Measured with llama-cpp-python 0.3.36 on AVX2: with an f16 KV cache no batch of 2+ is
exact; with q8_0/q4_0 (flash attention) SmolLM2 (Q4_1) is exact up to 512 tokens, but the
Qwen2.5 Q4_K_M files only up to 3 (the repacked Q4_K GEMM takes over from 4 rows). So
:meth:`PromptLookup.probe` measures, once per loaded model, the largest batch whose logits
match single-token decoding bit for bit, and the decoder never verifies with a larger one.

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
from collections.abc import Generator, Sequence
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

# Varied text for the probe: prose, code and numbers (a short or uniform text can hide a
# batch-size dependence that longer, mixed contexts show).
_PROBE_TEXT = (
    "The lighthouse keeper wrote in her log every evening: wind from the north-west, 23 knots, "
    "visibility poor, three ships sighted before dusk. She had kept the light for 41 years.\n\n"
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
    "    return out\n\n"
    "Quarterly revenue rose 7.4% to $1,283 million; operating margin was 18.2% (up from "
    "16.9%), and the board approved a dividend of 0.35 per share, payable on 14 March.\n"
    "SELECT name, COUNT(*) AS n FROM orders WHERE created_at > '2024-01-01' GROUP BY name;\n"
    "Les marées sont causées par l'attraction de la Lune et du Soleil sur les océans.\n"
)
_PROBE_PREFIX = 64
_PROBE_WINDOWS = 2


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
        """Seconds for a batch of ``n``: no less than one token, and no more than any larger
        batch measured (timings on a shared machine are noisy; the true cost is monotone)."""
        single = self.seconds.get(1, 1.0)
        larger = [s for m, s in self.seconds.items() if m >= n]
        if larger:
            return max(single, min(larger))
        top = max(self.seconds, default=1)
        return max(single, self.seconds.get(top, single) * n / top)

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
                 exact: bool = True, always_draft: bool = False) -> None:
        """``exact=False`` allows batches the probe found inexact (for benchmarks only: the
        output may then differ from plain greedy); ``always_draft`` verifies every draft found
        whatever it costs (for tests: the most speculation, independent of timings)."""
        self.llm = llm
        self.max_draft = max_draft
        self.max_ngram = max_ngram
        self.exact = exact
        self.always_draft = always_draft
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
        """Measure exactness and cost of batch sizes 2..max_draft+1. Clears the KV cache.

        One-token decoding runs over two windows of text after a 64-token prefix; then, for
        each window (the later one first, while the cache still holds the earlier one), each
        batch size decodes the window's start in one batch and must reproduce those logits bit
        for bit. ``exact_upto`` is the largest size below the first mismatch in any window.
        """
        llm = self.llm
        top = self.max_draft + 1
        text = list(llm.tokenize(_PROBE_TEXT.encode("utf-8"), add_bos=False))
        need = _PROBE_PREFIX + _PROBE_WINDOWS * top
        tokens = (text * (need // max(len(text), 1) + 1))[:need]
        prefix, cont = tokens[:_PROBE_PREFIX], tokens[_PROBE_PREFIX:]
        pos0 = len(prefix)
        llm.reset()
        llm._ctx.kv_cache_clear()
        try:
            llm.eval(prefix)
            single: list[npt.NDArray[np.float32]] = []
            single_s: list[float] = []
            for i, token in enumerate(cont):
                single_s.append(self._decode([token], pos0 + i))
                single.append(self._logits(0).copy())
            profile = BatchProfile(exact_upto=top, seconds={1: statistics.median(single_s)})
            for w in reversed(range(_PROBE_WINDOWS)):
                start = w * top
                for n in range(2, top + 1):
                    if self.exact and n > profile.exact_upto:
                        break
                    if not llm._ctx.kv_cache_seq_rm(0, pos0 + start, -1):
                        profile.exact_upto = 1  # no partial KV removal (recurrent model)
                        break
                    seconds = self._decode(cont[start:start + n], pos0 + start)
                    profile.seconds[n] = min(seconds, profile.seconds.get(n, seconds))
                    if n <= profile.exact_upto and not all(
                        np.array_equal(self._logits(i), single[start + i]) for i in range(n)
                    ):
                        profile.exact_upto = n - 1
        finally:
            llm.reset()
            llm._ctx.kv_cache_clear()
        self.profile = profile
        return profile

    # -- decoding --------------------------------------------------------------------------

    def generate(self, tokens: Sequence[int], max_new: int,
                 stats: LookupStats | None = None) -> Generator[int, None, None]:
        """Greedy tokens after ``tokens``: those of ``Llama.generate(tokens, temp=0)``, as long
        as batches stay within the probed exact size (``exact=True``, the default).

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
                if self.always_draft:
                    k = len(draft)
                else:
                    k = choose_draft(acceptance.p(ngram), len(draft), profile) if draft else 0
                batch = [last, *draft[:k]]
                seconds = self._decode(batch, n0)
                profile.record(len(batch), seconds)
                pred = self._argmax(0)  # the model's token after ``last``
                accepted = 0
                while accepted < k and draft[accepted] == pred:
                    accepted += 1
                    pred = self._argmax(accepted)
                if k:
                    stats.batches += 1
                    stats.drafted += k
                    stats.accepted += accepted
                    acceptance.observe(ngram, k, accepted)
                else:
                    stats.singles += 1
                    if draft:  # a free look at whether the draft would have started right
                        acceptance.observe(ngram, 1, int(draft[0] == pred))
                llm.input_ids[n0:n0 + accepted + 1] = batch[:accepted + 1]
                self._truncate(n0 + accepted + 1)
                llm._requires_eval = False
                new = [*draft[:accepted], pred]
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
