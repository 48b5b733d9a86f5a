"""One loaded GGUF model in llama.cpp, with a saved KV state per conversation.

The engine renders the chat template that the GGUF file carries, tokenises, and generates with
``llama_cpp.Llama.generate`` so that llama.cpp's prefix reuse applies. Before a request it
swaps in the KV state of the request's conversation (saving the live one), so conversations
that take turns do not re-prefill each other's history. Greedy requests may instead decode
with prompt lookup (:mod:`smallhold.runtime.speculative`): the same tokens, drafted from the
prompt and verified in batches.
"""

from __future__ import annotations

import codecs
import ctypes
import hashlib
import json
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smallhold.errors import ContextOverflowError, GenerationError, ModelLoadError
from smallhold.runtime.kvstate import SavedState, StateCache
from smallhold.runtime.registry import ModelSpec
from smallhold.runtime.speculative import (
    MIN_PROMPT_TOKENS,
    BatchProfile,
    LookupStats,
    PromptLookup,
)
from smallhold.runtime.structured import schema_grammar
from smallhold.runtime.types import (
    CancelToken,
    Delta,
    Finish,
    FinishReason,
    GenerationParams,
    Message,
    StreamEvent,
    Usage,
)

GGML_TYPES = {"f16": 1, "q4_0": 2, "q8_0": 8}
# Whether speculative = "auto" uses prompt lookup for long greedy prompts. Off: on the 2-core
# benchmark machine it did not win (see bench/bench_speculative.py and BENCHMARKS.md).
AUTO_PROMPT_LOOKUP = False


@dataclass(frozen=True)
class LoadOptions:
    n_ctx: int = 4096
    n_threads: int | None = None
    kv_cache: str = "f16"
    n_batch: int = 512
    state_cache_bytes: int = 768 * 1024 * 1024
    spill_dir: Path | None = None
    speculative: str = "auto"  # "auto" | "off" | "prompt-lookup" (RuntimeSettings.speculative)


def common_prefix(a: Sequence[int] | np.ndarray, b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    left = np.asarray(a[:n], dtype=np.int64)
    right = np.asarray(b[:n], dtype=np.int64)
    diff = np.nonzero(left != right)[0]
    return int(diff[0]) if diff.size else n


def conversation_key(messages: Sequence[Message]) -> str:
    """A stable key for callers that send whole histories without naming a conversation.

    The system prompt and the first user turn identify a conversation well enough: its later
    turns only append, so they share that opening.
    """
    head = [m for m in messages if m.role == "system"][:1]
    head += [m for m in messages if m.role == "user"][:1]
    digest = hashlib.sha256(json.dumps([[m.role, m.content] for m in head]).encode())
    return "auto:" + digest.hexdigest()[:24]


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that could still grow into a stop string."""
    best = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                best = max(best, size)
                break
    return best


class LlamaEngine:
    """A loaded model. One generation at a time (llama.cpp contexts are not re-entrant)."""

    def __init__(self, spec: ModelSpec, path: Path, options: LoadOptions) -> None:
        from llama_cpp import Llama

        self.spec = spec
        self.path = path
        self.options = options
        kv_type = GGML_TYPES.get(options.kv_cache, 1)
        started = time.perf_counter()
        try:
            self.llm = Llama(
                model_path=str(path),
                n_ctx=options.n_ctx,
                n_batch=options.n_batch,
                n_threads=options.n_threads,
                type_k=kv_type,
                type_v=kv_type,
                flash_attn=kv_type != 1,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(
                f"llama.cpp could not load {path} ({exc}); run `smallhold models verify "
                f"{spec.name}` to check the file."
            ) from exc
        self.load_seconds = time.perf_counter() - started
        self.n_ctx = int(self.llm.n_ctx())
        self._vocab = self.llm._model.vocab
        self._formatter = self._make_formatter()
        self._lock = threading.Lock()
        self._live_key: str | None = None
        self.states = StateCache(options.state_cache_bytes, options.spill_dir)
        self._grammars: dict[str, Any] = {}
        self._piece_buf = ctypes.create_string_buffer(64)
        self._lookup: PromptLookup | None = None

    def _make_formatter(self) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        model = self.llm._model
        eos = model.token_eos()
        bos = model.token_bos()
        return Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos) if eos >= 0 else "",
            bos_token=model.token_get_text(bos) if bos >= 0 else "",
            add_generation_prompt=True,
        )

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.llm.metadata)

    @property
    def can_chat(self) -> bool:
        return self._formatter is not None

    def render(self, messages: Sequence[Message],
               tools: list[dict[str, Any]] | None = None) -> str:
        """The prompt in the model's own chat template. ``tools`` go to the template (Qwen's
        writes them into the system turn); a template that has no place for tools gets them
        described in the system turn instead, with the calling format Hermes-style
        templates use."""
        if self._formatter is None:
            raise GenerationError(
                f"{self.spec.name} is a base model with no chat template in its file; use a chat "
                "model (e.g. qwen2.5-coder-1.5b-instruct) or plain completion."
            )
        turns = [m.for_template() for m in messages]
        if tools and "tools" not in (self.llm.metadata.get("tokenizer.chat_template") or ""):
            turns = tools_in_system(turns, tools)
            tools = None
        result = self._formatter(messages=turns, tools=tools) if tools else \
            self._formatter(messages=turns)
        return str(result.prompt)

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        add_bos = bool(self.llm._model.add_bos_token())
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text, special=False))

    def chat(self, messages: Sequence[Message], params: GenerationParams,
             session: str | None = None,
             cancel: CancelToken | None = None) -> Iterator[StreamEvent]:
        tokens = self.tokenize(self.render(messages, params.tools))
        key = session or conversation_key(messages)
        return self.generate(tokens, params, session=key, cancel=cancel)

    def complete(self, prompt: str, params: GenerationParams, session: str | None = None,
                 cancel: CancelToken | None = None) -> Iterator[StreamEvent]:
        return self.generate(self.tokenize(prompt), params, session=session, cancel=cancel)

    # -- KV state per conversation -------------------------------------------------------

    def _snapshot(self) -> SavedState:
        from llama_cpp import llama_cpp as C

        ctx = self.llm.ctx
        size = int(C.llama_state_seq_get_size(ctx, 0))
        buf = (ctypes.c_uint8 * size)()
        written = int(C.llama_state_seq_get_data(ctx, buf, size, 0))
        n = int(self.llm.n_tokens)
        return SavedState(tokens=self.llm.input_ids[:n].copy(), kv=ctypes.string_at(buf, written))

    def _restore(self, state: SavedState) -> bool:
        from llama_cpp import llama_cpp as C

        buf = (ctypes.c_uint8 * len(state.kv)).from_buffer_copy(state.kv)
        read = int(C.llama_state_seq_set_data(self.llm.ctx, buf, len(state.kv), 0))
        if read == 0:
            self.llm.reset()  # type: ignore[no-untyped-call]
            self.llm._ctx.kv_cache_clear()  # type: ignore[no-untyped-call]
            return False
        n = int(state.tokens.size)
        self.llm.input_ids[:n] = state.tokens
        self.llm.n_tokens = n
        self.llm._requires_eval = True
        return True

    def _activate(self, key: str | None, tokens: Sequence[int]) -> None:
        if key == self._live_key:
            return
        if self._live_key is not None and self.llm.n_tokens > 0:
            self.states.put(self._live_key, self._snapshot())
        saved = self.states.get(key) if key is not None else None
        if saved is not None:
            live = common_prefix(self.llm.input_ids[: self.llm.n_tokens], tokens)
            if common_prefix(saved.tokens, tokens) > live:
                self._restore(saved)
        self._live_key = key

    def forget(self, key: str) -> None:
        """Drop conversation ``key``'s saved state, in RAM and on disk (the conversation was
        deleted); the next request under ``key`` prefills from scratch."""
        with self._lock:
            self.states.drop(key)
            if self._live_key == key:
                self._live_key = None

    # -- generation ----------------------------------------------------------------------

    def _piece(self, token: int) -> bytes:
        from llama_cpp import llama_cpp as C

        n = int(C.llama_token_to_piece(self._vocab, token, self._piece_buf, 64, 0, False))
        if n < 0:
            big = ctypes.create_string_buffer(-n)
            n = int(C.llama_token_to_piece(self._vocab, token, big, -n, 0, False))
            return big.raw[:n]
        return self._piece_buf.raw[:n]

    def _grammar(self, schema: dict[str, Any]) -> Any:
        from llama_cpp.llama_grammar import LlamaGrammar

        text = json.dumps(schema, sort_keys=True)
        if text not in self._grammars:
            self._grammars[text] = LlamaGrammar.from_string(schema_grammar(schema),
                                                            verbose=False)
        return self._grammars[text]

    def generate(self, tokens: list[int], params: GenerationParams, *, session: str | None = None,
                 cancel: CancelToken | None = None) -> Iterator[StreamEvent]:
        if len(tokens) >= self.n_ctx:
            raise ContextOverflowError(
                f"the prompt is {len(tokens)} tokens but {self.spec.name} was loaded with a "
                f"{self.n_ctx}-token context; shorten it or raise runtime.n_ctx."
            )
        return self._generate(tokens, params, session, cancel)

    def _speculation(self, tokens: Sequence[int], params: GenerationParams) -> str | None:
        """Which speculative decoder this request uses: "prompt-lookup" or None (plain).

        Prompt lookup verifies drafts by argmax, so it serves greedy decoding only, and a JSON
        grammar would have to be applied to every drafted row, which it is not.
        """
        mode = self.options.speculative
        if mode == "off" or params.temperature != 0.0 or params.json_schema is not None:
            return None
        if mode == "prompt-lookup":
            return mode
        if mode == "auto" and AUTO_PROMPT_LOOKUP and len(tokens) >= MIN_PROMPT_TOKENS:
            return "prompt-lookup"
        return None

    def _prompt_lookup(self) -> PromptLookup:
        """The engine's prompt-lookup decoder, probed on first use (the probe needs the KV
        cache, so the live conversation is saved first, as a switch of conversation would)."""
        if self._lookup is None:
            self._lookup = PromptLookup(self.llm)
        if self._lookup.profile is None and self.options.kv_cache == "f16":
            # llama.cpp's f16 KV attention gave batch-size-dependent logits for every model
            # and context tried (llama-cpp-python 0.3.36, CPU): no batch is exact, skip the probe
            self._lookup.profile = BatchProfile(exact_upto=1)
        if self._lookup.profile is None:
            if self._live_key is not None and self.llm.n_tokens > 0:
                self.states.put(self._live_key, self._snapshot())
            self._live_key = None
            self._lookup.probe()
        return self._lookup

    def _generate(self, tokens: list[int], params: GenerationParams, session: str | None,
                  cancel: CancelToken | None) -> Iterator[StreamEvent]:
        from llama_cpp import llama_cpp as C

        with self._lock:
            mode = self._speculation(tokens, params)
            lookup = self._prompt_lookup() if mode == "prompt-lookup" else None
            self._activate(session, tokens)
            cached = common_prefix(self.llm.input_ids[: self.llm.n_tokens], tokens)
            self.llm.set_seed(params.seed if params.seed is not None else C.LLAMA_DEFAULT_SEED)
            budget = min(params.max_tokens, self.n_ctx - len(tokens))
            stream: Generator[int, Any, None]
            stats: LookupStats | None = None
            if lookup is not None and lookup.max_batch >= 2:
                stats = LookupStats()
                stream = lookup.generate(tokens, budget, stats)
            else:
                grammar = self._grammar(params.json_schema) if params.json_schema else None
                stream = self.llm.generate(
                    tokens, top_k=40, top_p=params.top_p, min_p=0.05, temp=params.temperature,
                    repeat_penalty=1.0, grammar=grammar,
                )
            finish, produced = yield from self._stream_text(stream, params, budget, cancel)
            if stats is not None:
                speculative: str | None = stats.describe()
            else:
                # asked for, but batches are not bit-exact here (e.g. an f16 KV cache)
                speculative = "prompt-lookup:unavailable" if lookup is not None else None
        # Finish comes after the lock is released: a consumer that stops reading at Finish (or
        # keeps the generator alive) must not hold the model.
        yield Finish(
            finish_reason=finish,
            usage=Usage(prompt_tokens=len(tokens), completion_tokens=produced,
                        cached_tokens=cached),
            model=self.spec.name,
            speculative=speculative,
        )

    def _stream_text(self, stream: Generator[int, Any, None], params: GenerationParams, budget: int,
                     cancel: CancelToken | None
                     ) -> Generator[StreamEvent, None, tuple[FinishReason, int]]:
        """Tokens to text deltas, shared by every decoder: stops at EOG, a stop string, the
        token budget or a cancel; holds back text that could still grow into a stop string.
        Closes ``stream`` when done. Returns (finish reason, completion tokens)."""
        from llama_cpp import llama_cpp as C

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = [s for s in params.stop if s]
        pending = ""
        produced = 0
        finish: FinishReason = "length"
        try:
            for token in stream:
                if cancel is not None and cancel.cancelled:
                    finish = "cancelled"
                    break
                if C.llama_vocab_is_eog(self._vocab, token):
                    finish = "stop"
                    break
                produced += 1
                pending += decoder.decode(self._piece(token))
                hit = min((pending.find(s) for s in stops if s in pending), default=-1)
                if hit >= 0:
                    pending = pending[:hit]
                    finish = "stop"
                    break
                keep = _held_back(pending, stops) if stops else 0
                if len(pending) > keep:
                    yield Delta(pending[: len(pending) - keep])
                    pending = pending[len(pending) - keep:]
                if produced >= budget:
                    break
        finally:
            stream.close()
        pending += decoder.decode(b"", final=True)
        if pending:
            yield Delta(pending)
        return finish, produced

    def close(self) -> None:
        """Free the model; saved states go with it, the spilled ones' files and folder too."""
        with self._lock:
            self.states.close()
            if self._lookup is not None:
                self._lookup.close()
                self._lookup = None
            self.llm.close()


def tools_in_system(turns: list[dict[str, Any]], tools: list[dict[str, Any]]
                    ) -> list[dict[str, Any]]:
    """``turns`` with ``tools`` described in the system turn, for a template without tools."""
    import json

    described = ("You can call these functions:\n" + "\n".join(
        json.dumps(t.get("function", t)) for t in tools) + "\nTo call one, answer only with "
        "<tool_call>{\"name\": NAME, \"arguments\": {...}}</tool_call>.")
    if turns and turns[0]["role"] == "system":
        return [{**turns[0], "content": f"{turns[0]['content']}\n\n{described}"}, *turns[1:]]
    return [{"role": "system", "content": described}, *turns]
