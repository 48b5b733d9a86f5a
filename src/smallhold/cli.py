"""The ``smallhold`` command: a thin skin over the library (parse, call, render).

Subcommands are imported only when invoked, so ``smallhold --help`` stays instant and one
app's heavy dependencies never slow down another's commands.
"""

from __future__ import annotations

import importlib
from typing import Any, NoReturn

import click

from smallhold import __version__
from smallhold.errors import SmallholdError

COMMANDS: dict[str, tuple[str, str]] = {
    "chat": ("smallhold.apps.pocket.cli", "Chat with the local model (pocket)."),
    "code": ("smallhold.apps.code.cli", "Coding agent: plan, edit, test in a sandbox, reflect."),
    "models": ("smallhold.commands.models", "The bundled models: list, install, verify, plan."),
    "embed": ("smallhold.commands.embed", "Embed text with the bundled sentence model."),
    "trace": ("smallhold.commands.trace", "The local log of model calls and decisions."),
    "serve": ("smallhold.commands.serve", "OpenAI-compatible server on 127.0.0.1."),
    "config": ("smallhold.commands.config", "Show settings and paths."),
    "memory": ("smallhold.commands.memory", "Long-term memory: remember, recall, forget."),
    "sync": ("smallhold.commands.sync", "Device sync through a ciphertext-only relay."),
    "vault": ("smallhold.commands.vault", "The encrypted vault of a profile: init, unlock, rekey."),
}


# click >= 8.2 raises this (a UsageError) to print a group's help when no subcommand is given.
_SHOW_HELP: tuple[type[Exception], ...] = tuple(
    t for t in [getattr(click.exceptions, "NoArgsIsHelpError", None)] if t is not None)


def _usage_line(exc: click.UsageError, fallback_path: str) -> NoReturn:
    """Print click's usage error as one line and exit with its code; a group run without a
    subcommand is re-raised, so click prints its help as usual."""
    if isinstance(exc, _SHOW_HELP):
        raise exc
    from smallhold.console import print_error_line  # rich loads only when needed

    where = exc.ctx.command_path if exc.ctx is not None else fallback_path
    print_error_line(f"{exc.format_message()} (see `{where} --help`)")
    raise click.exceptions.Exit(exc.exit_code) from None


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; a smallhold error that no command caught is still one line.

        Commands wrap themselves in :func:`smallhold.console.handle_errors`; this is the
        backstop for code paths that raise before or outside it (loading settings, a
        subcommand's module failing to import its settings), so no user sees a traceback for
        an error the project itself raised. Click's usage errors (a bad option value) are
        printed the same way: the README promises scripts one line per error.
        """
        try:
            return super().invoke(ctx)
        except SmallholdError as exc:
            from smallhold.console import print_error  # rich loads only when needed

            print_error(exc)
            ctx.exit(exc.exit_code)
        except click.UsageError as exc:  # click's own format spans three lines
            _usage_line(exc, ctx.command_path)

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        """Parse the root's own options; a bad one is one line too (``smallhold --bogus``)."""
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            _usage_line(exc, info_name or "smallhold")

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[cmd_name][0])
        command = getattr(module, cmd_name)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in sorted(COMMANDS)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="smallhold")
def main() -> None:
    """Private AI that runs on your own machine. Nothing leaves it unless you say so."""


if __name__ == "__main__":
    main()
