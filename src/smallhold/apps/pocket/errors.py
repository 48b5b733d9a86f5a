"""pocket's own failures. What it meets most (a paused device, a context overflow, a
locked vault) are the runtime's and the store's errors, raised unchanged."""

from smallhold.errors import AppError


class PocketError(AppError):
    """The root of pocket's own errors."""


__all__ = ["PocketError"]
