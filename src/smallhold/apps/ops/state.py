"""ops's own tables, in the same database as its workflows (SQLite file or PostgreSQL).

Workers on several machines share one PostgreSQL database, so whatever they must agree on
lives there, beside DBOS's checkpoints, and not in a worker's vault: the side effects
already done (the ledger, keyed by idempotency key), each integration's circuit breaker,
which workers are alive, the events received, the reports written, and the audit log.

The audit log is append-only and hash-chained: each row's digest covers the previous
row's, so editing or deleting a row breaks every digest after it (``ops audit verify``).
Writers take the chain's head under a lock (``SELECT ... FOR UPDATE`` on PostgreSQL, the
database lock on SQLite), so two workers never fork it.

Secrets are never stored here: they stay in the vault or the environment.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from smallhold.apps.ops.errors import OpsError

metadata = MetaData()

events = Table(
    "ops_events", metadata,
    Column("key", String(200), primary_key=True),
    Column("source", String(40), nullable=False),
    Column("type", String(200), nullable=False),
    Column("summary", Text, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("deliveries", Integer, nullable=False, default=1),
    Column("template", String(80)),  # None: no template matched (yet)
    Column("body", JSON, nullable=False),  # the normalised event
)
ledger = Table(
    "ops_ledger", metadata,
    Column("key", String(300), primary_key=True),
    Column("done_at", Float, nullable=False),
    Column("result", JSON, nullable=False),
)
breakers = Table(
    "ops_breakers", metadata,
    Column("name", String(80), primary_key=True),
    Column("state", String(20), nullable=False, default="closed"),
    Column("failures", Integer, nullable=False, default=0),
    Column("successes", Integer, nullable=False, default=0),
    Column("opened_at", Float),
)
workers = Table(
    "ops_workers", metadata,
    Column("executor", String(120), primary_key=True),
    Column("seen_at", Float, nullable=False),
    Column("recovered_by", String(120)),  # who took over its workflows, once it went quiet
)
artifacts = Table(
    "ops_artifacts", metadata,
    Column("workflow", String(200), primary_key=True),
    Column("name", String(120), primary_key=True),
    Column("kind", String(40), nullable=False),  # report, runbook, plan
    Column("created_at", Float, nullable=False),
    Column("content", Text, nullable=False),
)
audit = Table(
    "ops_audit", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", Float, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(80), nullable=False),
    Column("workflow", String(200)),
    Column("detail", JSON, nullable=False),
    Column("prev", String(64), nullable=False),
    Column("digest", String(64), nullable=False),
)
GENESIS = "0" * 64
# the PostgreSQL advisory lock that serialises making the tables: any fixed number ("ops")
SCHEMA_LOCK = 0x6F7073


def engine_url(url: str) -> str:
    """DBOS's URL, spelt for SQLAlchemy with psycopg 3 (DBOS's own PostgreSQL driver)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.removeprefix("postgres://")
    return url


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: float
    actor: str
    action: str
    workflow: str | None
    detail: dict[str, Any]
    prev: str
    digest: str


def _digest(prev: str, seq: int, at: float, actor: str, action: str, workflow: str | None,
            detail: dict[str, Any]) -> str:
    body = json.dumps([prev, seq, repr(at), actor, action, workflow, detail], sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


class OpsState:
    """ops's tables on one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite")
        try:
            self.engine: Engine = create_engine(
                engine_url(url), future=True, pool_pre_ping=True,
                **({"connect_args": {"timeout": 30}} if self.sqlite else {}))
            if self.sqlite:
                event.listen(self.engine, "connect", _sqlite_pragmas)
            self._create_tables()
        except OperationalError as exc:
            raise OpsError(f"cannot open the ops database ({_redact(url)}): "
                           f"{str(exc.orig).strip().splitlines()[0]}") from None

    def _create_tables(self) -> None:
        """Make the tables that are missing. ``create_all`` looks, then creates: two workers
        starting at once on a new PostgreSQL database both see no table, and the second
        CREATE fails (a unique violation in PostgreSQL's catalogue). So on PostgreSQL the
        look-and-create runs under a transaction-scoped advisory lock: the second waits
        for the first to commit, then finds the tables. SQLite's own lock serialises it."""
        if self.sqlite:
            metadata.create_all(self.engine)
            return
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
            metadata.create_all(conn)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # events --------------------------------------------------------------------------
    def remember_event(self, key: str, source: str, type_: str, summary: str,
                       body: dict[str, Any]) -> bool:
        """Keep an event; False (and the delivery counted) when its key was seen before."""
        try:
            with self._tx() as conn:
                conn.execute(insert(events).values(
                    key=key, source=source, type=type_, summary=summary[:500],
                    received_at=time.time(), deliveries=1, body=body))
            return True
        except IntegrityError:
            with self._tx() as conn:
                conn.execute(update(events).where(events.c.key == key)
                             .values(deliveries=events.c.deliveries + 1))
            return False

    def set_template(self, key: str, template: str | None) -> None:
        with self._tx() as conn:
            conn.execute(update(events).where(events.c.key == key).values(template=template))

    def event(self, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(events).where(events.c.key == key)).mappings().first()
        return dict(row) if row else None

    # ledger --------------------------------------------------------------------------
    def done(self, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(ledger.c.result).where(ledger.c.key == key)).first()
        return dict(row[0]) if row else None

    def record(self, key: str, result: dict[str, Any]) -> None:
        """Note a side effect as done; the first record of a key wins."""
        try:
            with self._tx() as conn:
                conn.execute(insert(ledger).values(key=key, done_at=time.time(),
                                                   result=result))
        except IntegrityError:
            pass

    # breakers ------------------------------------------------------------------------
    def breaker(self, name: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(breakers).where(breakers.c.name == name)).mappings().first()
        if row is None:
            return {"name": name, "state": "closed", "failures": 0, "successes": 0,
                    "opened_at": None}
        return dict(row)

    def breakers(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(breakers).order_by(breakers.c.name))
                    .mappings()]

    def update_breaker(self, name: str, **values: Any) -> None:
        with self._tx() as conn:
            changed = conn.execute(update(breakers).where(breakers.c.name == name)
                                   .values(**values)).rowcount
            if not changed:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(breakers).values(
                            name=name, **{"state": "closed", "failures": 0, "successes": 0,
                                          **values}))
                except IntegrityError:
                    conn.execute(update(breakers).where(breakers.c.name == name)
                                 .values(**values))

    def bump_breaker(self, name: str, column: str) -> None:
        """Add one to a breaker's failure or success count, atomically across workers."""
        target = breakers.c.failures if column == "failures" else breakers.c.successes
        with self._tx() as conn:
            changed = conn.execute(update(breakers).where(breakers.c.name == name)
                                   .values({target: target + 1})).rowcount
            if not changed:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(breakers).values(
                            name=name, state="closed", failures=int(column == "failures"),
                            successes=int(column != "failures")))
                except IntegrityError:
                    conn.execute(update(breakers).where(breakers.c.name == name)
                                 .values({target: target + 1}))

    # workers -------------------------------------------------------------------------
    def heartbeat(self, executor: str) -> None:
        with self._tx() as conn:
            changed = conn.execute(update(workers).where(workers.c.executor == executor)
                                   .values(seen_at=time.time(), recovered_by=None)).rowcount
            if not changed:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(workers).values(executor=executor,
                                                            seen_at=time.time()))
                except IntegrityError:
                    pass

    def claim_dead(self, me: str, quiet_for: float) -> list[str]:
        """Executors silent for ``quiet_for`` seconds whose workflows nobody has taken
        over yet; each is claimed by exactly one live worker (a conditional update)."""
        cutoff = time.time() - quiet_for
        claimed: list[str] = []
        with self.engine.connect() as conn:
            quiet = [r[0] for r in conn.execute(
                select(workers.c.executor).where(workers.c.seen_at < cutoff,
                                                 workers.c.recovered_by.is_(None),
                                                 workers.c.executor != me))]
        for executor in quiet:
            with self._tx() as conn:
                won = conn.execute(update(workers).where(
                    workers.c.executor == executor, workers.c.seen_at < cutoff,
                    workers.c.recovered_by.is_(None)).values(recovered_by=me)).rowcount
            if won:
                claimed.append(executor)
        return claimed

    def release_claim(self, executor: str, me: str) -> None:
        """Undo a claim whose recovery failed, so the next heartbeat (here or a peer's)
        tries again."""
        with self._tx() as conn:
            conn.execute(update(workers).where(workers.c.executor == executor,
                                               workers.c.recovered_by == me)
                         .values(recovered_by=None))

    def retire(self, executor: str) -> None:
        """Forget a worker that left with nothing pending."""
        with self._tx() as conn:
            conn.execute(workers.delete().where(workers.c.executor == executor))

    def workers(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(workers).order_by(workers.c.executor))
                    .mappings()]

    # artifacts -----------------------------------------------------------------------
    def save_artifact(self, workflow: str, name: str, kind: str, content: str) -> None:
        with self._tx() as conn:
            changed = conn.execute(update(artifacts).where(
                artifacts.c.workflow == workflow, artifacts.c.name == name).values(
                kind=kind, content=content, created_at=time.time())).rowcount
            if not changed:
                conn.execute(insert(artifacts).values(workflow=workflow, name=name, kind=kind,
                                                      content=content,
                                                      created_at=time.time()))

    def artifacts(self, workflow: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(
                select(artifacts).where(artifacts.c.workflow == workflow)
                .order_by(artifacts.c.created_at)).mappings()]

    # audit ---------------------------------------------------------------------------
    def audit(self, actor: str, action: str, workflow: str | None = None,
              **detail: Any) -> AuditEntry:
        """Append one entry to the chain. Retried on a lost race for the next number."""
        for _ in range(20):
            try:
                with self._tx() as conn:
                    head_q = select(audit.c.seq, audit.c.digest).order_by(
                        audit.c.seq.desc()).limit(1)
                    if not self.sqlite:
                        head_q = head_q.with_for_update()
                    head = conn.execute(head_q).first()
                    seq = head[0] + 1 if head else 1
                    prev = head[1] if head else GENESIS
                    at = time.time()
                    clean = json.loads(json.dumps(detail, default=str))
                    digest = _digest(prev, seq, at, actor, action, workflow, clean)
                    conn.execute(insert(audit).values(seq=seq, at=at, actor=actor,
                                                      action=action, workflow=workflow,
                                                      detail=clean, prev=prev,
                                                      digest=digest))
                    return AuditEntry(seq, at, actor, action, workflow, clean, prev, digest)
            except (IntegrityError, OperationalError):  # lost the race for the next seq
                time.sleep(0.01)
                continue
        raise OpsError("could not append to the audit log: too many concurrent writers")

    def audit_entries(self, workflow: str | None = None, limit: int = 1000) -> list[AuditEntry]:
        query = select(audit).order_by(audit.c.seq)
        if workflow is not None:
            query = query.where(audit.c.workflow == workflow)
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit)).mappings().all()
        return [AuditEntry(**dict(r)) for r in rows]

    def verify_audit(self) -> tuple[int, int | None]:
        """(entries checked, the first broken sequence number or None)."""
        prev = GENESIS
        count = 0
        with self.engine.connect() as conn:
            for row in conn.execute(select(audit).order_by(audit.c.seq)).mappings():
                count += 1
                expected = _digest(prev, row["seq"], row["at"], row["actor"], row["action"],
                                   row["workflow"], row["detail"])
                if row["prev"] != prev or row["digest"] != expected or row["seq"] != count:
                    return count, int(row["seq"])
                prev = row["digest"]
        return count, None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _redact(url: str) -> str:
    """The URL without its password (URLs are logged and shown; passwords are not)."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}"


def now_iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


__all__ = ["GENESIS", "AuditEntry", "OpsState", "engine_url", "now_iso"]
