"""DBOS, the suite's one durable-execution engine, set up the same way for every app.

A workflow's steps are checkpointed in the system database (a SQLite file in the profile by
default, PostgreSQL by ``[durable] url``), so a killed process resumes at the first step
that had not finished. Two choices make that predictable for a command-line tool:

- ``executor_id`` is the run's own id. DBOS recovers, at launch, the pending workflows of
  the executor it is launched as; launching as a new run recovers nothing, and
  ``smallhold code resume RUN`` launches as that run and recovers exactly it.
- Workflows are methods of a ``DBOSConfiguredInstance`` built from the app's home, named
  after the run, so steps reach the model and the vault through ``self`` (no module
  globals). :func:`release` drops that instance once the run ends.
- ``application_version`` is fixed per workflow format (``WORKFLOW_VERSION``), not computed
  from the source code, so upgrading smallhold does not orphan a run that was killed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from smallhold.config import Settings
from smallhold.errors import ConfigError
from smallhold.paths import Paths

# smallhold-2: workflows are methods of configured instances (apps/code AgentLoop) and
# steps return typed records; a run started under smallhold-1 is refused with a message.
WORKFLOW_VERSION = "smallhold-2"


def system_database_url(paths: Paths, settings: Settings) -> str:
    if settings.durable.url:
        return settings.durable.url
    folder = paths.ensure(paths.profile_dir(settings.profile))
    return f"sqlite:///{folder / 'durable.sqlite'}"


@contextmanager
def launched(paths: Paths, settings: Settings, *, executor_id: str) -> Iterator[Any]:
    """DBOS launched as ``executor_id`` for the block; destroyed after (workflows stay
    registered, so tests and long-lived processes can launch again)."""
    try:
        from dbos import DBOS
    except ImportError as exc:  # the code extra
        raise ConfigError("durable workflows need DBOS: pip install 'smallhold[code]' "
                          "(scripts/setup.sh installs it)") from exc
    for name in ("dbos", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    DBOS(config={"name": "smallhold",
                 "system_database_url": system_database_url(paths, settings),
                 "executor_id": executor_id, "application_version": WORKFLOW_VERSION,
                 "log_level": "WARNING"})
    try:
        DBOS.launch()
        yield DBOS
    finally:
        DBOS.destroy(destroy_registry=False)


def release(instance: Any) -> None:
    """Forget a configured instance once its run has ended.

    DBOS keeps every ``DBOSConfiguredInstance`` in a process-wide registry and refuses a
    second one under the same name, but offers no way to remove one; a process that runs
    (or tests) the same run twice would otherwise fail. This is the one place that reaches
    into DBOS's registry, so an upgrade that changes it breaks here, loudly.
    """
    from dbos._dbos import _get_or_create_dbos_registry

    registry = _get_or_create_dbos_registry()
    for name, registered in list(registry.instance_info_map.items()):
        if registered is instance:
            del registry.instance_info_map[name]


def recover(executor_ids: list[str]) -> int:
    """Make the pending workflows of other executors (dead workers) runnable here.

    DBOS recovers a process's own workflows when it launches; taking over a dead peer's is
    what its hosted conductor does, and the open-source library exposes it only as
    ``DBOS._recover_pending_workflows``. Recovery re-enqueues each workflow, and the
    queue's atomic dequeue admits one runner, so two workers recovering the same peer do
    not run its workflows twice. Returns how many workflows were recovered.
    """
    from dbos import DBOS

    return len(DBOS._recover_pending_workflows(executor_ids))


def client(url: str) -> Any:
    """A ``DBOSClient`` on the workflow database ``url``, its tables made if this is the
    first use: a command that only queues or reads runs (``ops submit``, ``ops workflows
    list``) may be the first thing to touch a new database, before any worker launched.
    DBOS migrates at launch only, so the client runs the same (idempotent) migrations
    through its system database, the one other place this module reaches into DBOS."""
    from dbos import DBOSClient

    dbos_client = DBOSClient(system_database_url=url)
    dbos_client._sys_db.run_migrations()
    return dbos_client
