"""DBOS, the suite's one durable-execution engine, set up the same way for every app.

A workflow's steps are checkpointed in the system database (a SQLite file in the profile by
default, PostgreSQL by ``[durable] url``), so a killed process resumes at the first step
that had not finished. Two choices make that predictable for a command-line tool:

- ``executor_id`` is the run's own id. DBOS recovers, at launch, the pending workflows of
  the executor it is launched as; launching as a new run recovers nothing, and
  ``smallhold code resume RUN`` launches as that run and recovers exactly it.
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

WORKFLOW_VERSION = "smallhold-1"


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
