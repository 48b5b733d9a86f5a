from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from smallhold.errors import TraceError, VaultCorruptError
from smallhold.paths import Paths, resolve_paths
from smallhold.store.vault import open_vault, vault_files
from smallhold.trace import CallRecord, EventRecord, SpanRecord, TraceLog
from smallhold.trace.stats import percentile

SECRET = "my passport number is X1234567"


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return resolve_paths({"SMALLHOLD_HOME": str(tmp_path)})


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def log(exporter: InMemorySpanExporter) -> Iterator[TraceLog]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    yield TraceLog(conn, clock=FakeClock(), tracer_provider=provider)
    conn.close()


def call(**overrides: Any) -> CallRecord:
    fields: dict[str, Any] = {
        "app": "pocket",
        "backend": "llama",
        "model": "qwen2.5-coder-1.5b-instruct",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": SECRET},
        ],
        "output": f"noted: {SECRET}",
        "finish_reason": "stop",
        "tokens_in": 20,
        "tokens_out": 10,
        "ttft_s": 0.2,
        "latency_s": 1.0,
        "started_at": 1_000_000.0,
    }
    fields.update(overrides)
    return CallRecord.model_validate(fields)


def test_call_round_trip(log: TraceLog) -> None:
    record = call(session="s1", tier="4bit", speculative="prompt-lookup", cached_tokens=7)
    assert log.record_call(record) == record.id
    assert len(record.id) == 32
    assert log.get(record.id) == record
    assert log.get("0" * 32) is None


def test_event_and_list_filters(log: TraceLog) -> None:
    first = log.record_call(call(started_at=10.0))
    other = log.record_call(call(app="code", model="qwen2.5-coder-0.5b-instruct", started_at=20.0))
    evict = log.record_event("evict", model="qwen2.5-coder-1.5b-instruct",
                             data={"reason": "lru", "path": Path("/x")})

    assert [r.id for r in log.list()] == [evict, other, first]
    assert [r.id for r in log.list(limit=2)] == [evict, other]
    assert [r.id for r in log.list("call")] == [other, first]
    assert [r.id for r in log.list(app="code")] == [other]
    assert [r.id for r in log.list(model="qwen2.5-coder-1.5b-instruct")] == [evict, first]
    assert [r.id for r in log.list(since=15.0, kind="call")] == [other]

    event = log.get(evict)
    assert isinstance(event, EventRecord)
    assert (event.kind, event.app, event.data) == ("evict", "runtime", {"reason": "lru",
                                                                         "path": "/x"})


def test_span_ok_and_error(log: TraceLog) -> None:
    with log.span("plan", app="code", kind="decision", attrs={"step": 1}) as outer:
        running = log.get(outer.id)
        assert isinstance(running, SpanRecord) and running.status == "running"
        with pytest.raises(ValueError), log.span("run_tests", app="code",
                                                  parent_id=outer.id) as inner:
            inner.set("exit_code", 3)
            raise ValueError("3 tests failed")
        outer.set("chosen", "retry")

    done = log.get(outer.id)
    failed = log.get(inner.id)
    assert isinstance(done, SpanRecord) and isinstance(failed, SpanRecord)
    assert (done.status, done.kind, done.attrs) == ("ok", "decision", {"step": 1,
                                                                        "chosen": "retry"})
    assert done.duration_s is not None and done.duration_s > 0
    assert (failed.status, failed.message) == ("error", "ValueError: 3 tests failed")
    assert (failed.parent_id, failed.attrs) == (outer.id, {"exit_code": 3})
    assert [r.id for r in log.list("span")] == [inner.id, outer.id]


def test_find_by_prefix(log: TraceLog) -> None:
    a = log.record_call(call(id="abc111" + "0" * 26))
    log.record_event("load", parent_id=a)
    log.record_call(call(id="abc222" + "0" * 26))
    assert log.find("ABC1").id == a
    with pytest.raises(TraceError, match="several"):
        log.find("abc")
    with pytest.raises(TraceError, match="no trace entry"):
        log.find("fff")
    with pytest.raises(TraceError, match="no trace entry"):
        log.find("%")


def test_percentile_definition() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert percentile([float(v) for v in range(1, 11)], 0.95) == pytest.approx(9.55)
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


def test_stats_on_known_data(log: TraceLog) -> None:
    for i in range(1, 11):
        log.record_call(call(latency_s=float(i), ttft_s=i / 10, tokens_out=10 * i,
                             started_at=float(i)))
    log.record_call(call(error="model failed to load", latency_s=0.5, ttft_s=None,
                         tokens_out=0, tokens_in=5, started_at=11.0))
    log.record_call(call(app="code", model="qwen2.5-coder-0.5b-instruct", latency_s=2.0,
                         tokens_out=40, ttft_s=None, started_at=12.0))

    by_model = {s.key: s for s in log.stats("model")}
    big = by_model["qwen2.5-coder-1.5b-instruct"]
    assert (big.calls, big.errors, big.tokens_in, big.tokens_out) == (11, 1, 205, 550)
    assert big.tokens_per_s == pytest.approx(10.0)
    latencies = [0.5] + [float(i) for i in range(1, 11)]
    assert big.latency_p50_s == pytest.approx(5.0)
    assert big.latency_p95_s == pytest.approx(percentile(latencies, 0.95))
    assert big.ttft_p50_s == pytest.approx(0.55)
    assert big.ttft_p95_s == pytest.approx(0.955)
    small = by_model["qwen2.5-coder-0.5b-instruct"]
    assert (small.calls, small.tokens_per_s, small.ttft_p50_s) == (1, 20.0, None)

    assert [s.key for s in log.stats("app")] == ["pocket", "code"]
    assert [s.calls for s in log.stats("model", since=11.5)] == [1]
    with pytest.raises(ValueError):
        log.stats("session")  # type: ignore[arg-type]


def test_recent_models(log: TraceLog) -> None:
    a, b, c = "model-a", "model-b", "model-c"
    for i, model in enumerate([c, c, c, a, b, a, b]):
        log.record_call(call(model=model, started_at=float(i)))
    log.record_call(call(model="broken", error="load failed", started_at=50.0))
    log.record_call(call(model=c, app="code", started_at=60.0))

    assert log.recent_models() == [(c, 4), (b, 2), (a, 2)]
    assert log.recent_models(limit=4) == [(b, 2), (c, 1), (a, 1)]
    assert log.recent_models(app="code") == [(c, 1)]


def test_concurrent_record_call_loses_nothing(paths: Paths) -> None:
    threads_n, per_thread = 8, 50
    barrier = threading.Barrier(threads_n)
    failures: list[BaseException] = []

    with TraceLog.open(paths) as log:
        def worker(n: int) -> None:
            try:
                barrier.wait()
                for i in range(per_thread):
                    log.record_call(call(app=f"t{n}", started_at=float(i)))
                    log.record_event("tier", data={"thread": n, "i": i})
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert failures == []
    with TraceLog.open(paths) as reopened:
        calls = reopened.list("call", limit=10_000)
        assert len(calls) == threads_n * per_thread
        assert len({c.id for c in calls}) == threads_n * per_thread
        assert len(reopened.list("event", limit=10_000)) == threads_n * per_thread
        assert {s.key: s.calls for s in reopened.stats("app")} == {
            f"t{n}": per_thread for n in range(threads_n)
        }


def test_open_is_idempotent_and_persists(paths: Paths) -> None:
    with TraceLog.open(paths, "work") as log:
        cid = log.record_call(call())
    with TraceLog.open(paths, "work") as log:
        assert log.get(cid) is not None
    assert vault_files(paths, "work").db.exists()
    with open_vault(paths, "work") as vault:
        names = vault.conn.execute("SELECT name FROM _migrations WHERE scope = 'trace'").fetchall()
    assert [n[0] for n in names] == ["0001_calls_and_events", "0002_spans"]


def test_newer_database_is_refused(paths: Paths) -> None:
    TraceLog.open(paths).close()
    with open_vault(paths) as vault, vault.transaction() as conn:
        conn.execute("INSERT INTO _migrations VALUES ('trace', '0099_future', 0)")
    with pytest.raises(TraceError, match="0099_future"):
        TraceLog.open(paths)


def test_foreign_file_in_place_of_the_vault_is_refused_and_untouched(paths: Paths) -> None:
    path = vault_files(paths).db
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database at all\n" * 100)
    before = path.read_bytes()
    with pytest.raises(VaultCorruptError, match="move the file aside"):
        TraceLog.open(paths)
    assert path.read_bytes() == before


def test_otel_call_span_has_gen_ai_attributes_and_no_content(
    log: TraceLog, exporter: InMemorySpanExporter
) -> None:
    record = call(cached_tokens=4, tier="4bit")
    log.record_call(record)
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert span.name == "chat qwen2.5-coder-1.5b-instruct"
    assert span.kind is SpanKind.CLIENT
    assert attrs["gen_ai.system"] == "llama.cpp"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "qwen2.5-coder-1.5b-instruct"
    assert attrs["gen_ai.usage.input_tokens"] == 20
    assert attrs["gen_ai.usage.output_tokens"] == 10
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["smallhold.app"] == "pocket"
    assert attrs["smallhold.trace_id"] == record.id
    assert span.start_time == 1_000_000 * 10**9
    assert span.end_time == 1_000_001 * 10**9
    assert span.status.status_code is StatusCode.UNSET
    flat = repr(attrs) + span.name + repr(span.events)
    assert SECRET not in flat and "be brief" not in flat and "noted" not in flat


def test_otel_error_and_tool_spans(log: TraceLog, exporter: InMemorySpanExporter) -> None:
    log.record_call(call(backend="openai", error=f"server said: {SECRET}"))
    with pytest.raises(RuntimeError), log.span("read_file", app="code",
                                                attrs={"path": SECRET}) as s:
        log.record_call(call(app="code"))
        raise RuntimeError(SECRET)

    failed_call, nested_call, tool = exporter.get_finished_spans()
    assert failed_call.attributes is not None and nested_call.attributes is not None
    assert failed_call.attributes["gen_ai.system"] == "openai"
    assert failed_call.status.status_code is StatusCode.ERROR
    assert failed_call.attributes["error.type"] == "_OTHER"
    assert tool.attributes is not None
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "read_file"
    assert tool.attributes["smallhold.trace_id"] == s.id
    assert tool.attributes["error.type"] == "RuntimeError"
    assert tool.status.status_code is StatusCode.ERROR
    assert nested_call.parent is not None
    assert nested_call.parent.span_id == tool.context.span_id
    for span in (failed_call, nested_call, tool):
        flat = repr(dict(span.attributes or {})) + repr(span.events) + str(span.status)
        assert SECRET not in flat
