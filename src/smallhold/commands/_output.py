"""Kept for commands written before the plumbing moved to :mod:`smallhold.console`."""

from smallhold.console import console, emit_json, err_console, handle_errors, json_option

__all__ = ["console", "emit_json", "err_console", "handle_errors", "json_option"]
