"""code: a coding agent that plans, edits a copy of the project, tests in a sandbox, reflects.

Layout: ``sandbox`` (bubblewrap + limits), ``workspace`` (the run's git copy), ``testing``
(run and read the checks), ``signatures`` / ``breaker`` / ``reflection`` / ``safety`` (pure
decisions), ``memory`` (what past runs taught), ``agent`` (the loop as a DBOS workflow),
``cli`` (``smallhold code``). This module only declares the app; it imports nothing heavy.
"""

from smallhold.apps.code.errors import CodeAgentError
from smallhold.kit.spec import AppSpec, Command, Ref

AGENT_CONTEXT = 8192  # project files + test output need more than a chat turn

APP = AppSpec(
    name="code",
    summary="A coding agent: plans, edits a copy of the project, tests in a sandbox, reflects.",
    errors=CodeAgentError,
    commands=[Command("code", Ref("smallhold.apps.code.cli:code", extra="code"),
                      "Coding agent: write, test in a sandbox, repair.")],
    context_tokens=AGENT_CONTEXT,
    extra="code",
)

__all__ = ["AGENT_CONTEXT", "APP"]
