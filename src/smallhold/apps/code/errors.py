"""The coding agent's errors: one root, declared in the app's spec.

    CodeAgentError
    ├── SandboxUnavailableError  bubblewrap missing or unusable: no untrusted code runs
    ├── ProjectError             not a directory, no tests, nothing to work on
    ├── RunNotFoundError         no agent run with that id
    ├── ApplyConflictError       the project changed where the run's diff would go
    ├── EditFormatError          the model's reply holds no readable edit (goes back to it)
    └── RunFormatError           a run written by an older smallhold that this one cannot resume
"""

from __future__ import annotations

from smallhold.errors import AppError


class CodeAgentError(AppError):
    code = "code_agent_error"


class SandboxUnavailableError(CodeAgentError):
    exit_code = 4
    code = "sandbox_unavailable"


class ProjectError(CodeAgentError):
    exit_code = 2
    code = "project_invalid"


class RunNotFoundError(CodeAgentError):
    http_status = 404
    code = "run_not_found"


class ApplyConflictError(CodeAgentError):
    http_status = 409
    code = "apply_conflict"


class EditFormatError(CodeAgentError):
    """Caught inside the loop: its message is sent back to the model as what to fix."""

    code = "edit_format"


class RunFormatError(CodeAgentError):
    code = "run_format"


__all__ = ["ApplyConflictError", "CodeAgentError", "EditFormatError", "ProjectError",
           "RunFormatError", "RunNotFoundError", "SandboxUnavailableError"]
