"""Terminal plumbing shared by every command: consoles, ``--json``, errors, progress bars.

Output (answers, tables, JSON) goes to stdout; everything else (progress, warnings, errors)
goes to stderr, so ``smallhold chat "q" > answer.txt`` captures only the answer.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from pydantic import BaseModel
from rich.cells import cell_len
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from smallhold.errors import SmallholdError

F = TypeVar("F", bound=Callable[..., Any])


class _Console(Console):
    """A rich console that never breaks a line of text it writes to a pipe or a file.

    Off a terminal rich wraps at ``COLUMNS``, else 80, so a message a script parses
    ("Created the vault … (key: keyfile)") came out in pieces. There, text (a ``str`` or
    :class:`Text`) is printed with ``soft_wrap`` (no inserted newlines). Tables are left to
    fit the width: under ``soft_wrap`` their cells would run past their borders.
    """

    def print(self, *objects: Any, soft_wrap: bool | None = None, **kwargs: Any) -> None:
        if soft_wrap is None and not self.is_terminal and all(
                isinstance(obj, str | Text) for obj in objects):
            soft_wrap = True
        super().print(*objects, soft_wrap=soft_wrap, **kwargs)


console = _Console(highlight=False)
err_console = _Console(stderr=True, highlight=False)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
profile_option = click.option(
    "--profile", default="default", envvar="SMALLHOLD_PROFILE", show_default=True,
    help="Whose data: each profile has its own encrypted vault (env SMALLHOLD_PROFILE).",
)


def keep_whole(table: Table, *headers: str) -> Table:
    """Columns ``headers`` of ``table`` (ids, names) never cut nor wrapped: the other columns
    give way. At 80 columns rich had cut run ids to ``r20261206-37fe3…`` and model names to
    ``para…``, which then could not be pasted into the next command."""
    for column in table.columns:
        if str(column.header) in headers:
            cells = [Text.from_markup(c).plain if isinstance(c, str) else str(c)
                     for c in column.cells]
            column.no_wrap = True
            column.min_width = max([cell_len(str(column.header)), *map(cell_len, cells)])
    return table


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if hasattr(value, "__fspath__"):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    raise TypeError(f"cannot serialise {type(value).__name__}")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, default=_default, indent=2, ensure_ascii=False))


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) as one space."""
    return " ".join(text.split())


def print_error(exc: SmallholdError, *, as_json: bool = False) -> None:
    """Print an error as exactly one line on stderr, as the README promises scripts.

    Rich wraps at the terminal width, and at 80 columns when stderr is a pipe or file, so
    the line is printed with ``soft_wrap`` (no inserted newlines) and any newline inside the
    message is folded. The message is plain text, not markup: a path or profile name
    holding ``[/]`` must neither vanish nor crash the printer.
    """
    message = one_line(str(exc))
    if as_json:
        click.echo(json.dumps({"error": {"type": type(exc).__name__, "code": exc.code,
                                         "message": message}}), err=True)
    else:
        print_error_line(message)


def print_error_line(message: str) -> None:
    """``error: <message>`` on stderr as one line, whatever the terminal width (or none)."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", one_line(message)),
                      soft_wrap=True)


def handle_errors(fn: F) -> F:
    """Turn a SmallholdError into its message on stderr and its exit code; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SmallholdError as exc:
            print_error(exc, as_json=bool(kwargs.get("as_json")))
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


@contextmanager
def byte_progress(description: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr for long byte-counted work (assembling, hashing a model)."""
    if not enabled or not err_console.is_terminal:
        yield lambda done, total: None
        return
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=err_console, transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@contextmanager
def waiting(description: str, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """A spinner with the seconds elapsed on stderr, for waits that show nothing else (a
    model loading, a long prompt being read). Yields ``stop``: call it when the first
    output arrives, so the spinner is gone before the answer starts. Off a terminal: none."""
    if not enabled or not err_console.is_terminal:
        yield lambda: None
        return
    spinner = Progress(SpinnerColumn(), TextColumn("[dim]{task.description}[/]"),
                       TimeElapsedColumn(), console=err_console, transient=True)
    spinner.add_task(description, total=None)
    spinner.start()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            spinner.stop()

    try:
        yield stop
    finally:
        stop()
