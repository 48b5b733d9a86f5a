"""life's errors: one root, declared in the app's spec.

    LifeError
    └── SourceError      a file life cannot read as any export it knows (says which it tried)
"""

from __future__ import annotations

from smallhold.errors import AppError


class LifeError(AppError):
    code = "life_error"


class SourceError(LifeError):
    exit_code = 2
    http_status = 422
    code = "source_invalid"


__all__ = ["LifeError", "SourceError"]
