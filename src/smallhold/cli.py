"""The ``smallhold`` command: a thin skin over the library (parse, call, render).

Subcommands are imported only when invoked, so ``smallhold --help`` stays instant and one
app's heavy dependencies never slow down another's commands.
"""

from __future__ import annotations

from typing import Any, NoReturn

import click

from smallhold import __version__
from smallhold.errors import SmallholdError
from smallhold.kit import registry
from smallhold.kit.spec import Command, Ref

# The suite's own commands; each app's come from its declaration (smallhold.kit.registry).
SUITE_COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("smallhold.commands.models", "The bundled models: list, install, verify, plan."),
    "embed": ("smallhold.commands.embed", "Embed text with the bundled sentence model."),
    "trace": ("smallhold.commands.trace", "The local log of model calls and decisions."),
    "serve": ("smallhold.commands.serve", "OpenAI-compatible server on 127.0.0.1."),
    "config": ("smallhold.commands.config", "Show settings and paths."),
    "memory": ("smallhold.commands.memory", "Long-term memory: remember, recall, forget."),
    "sync": ("smallhold.commands.sync", "Device sync through a ciphertext-only relay."),
    "vault": ("smallhold.commands.vault", "The encrypted vault of a profile: init, unlock, rekey."),
    "web": ("smallhold.commands.web",
            "The suite's pages in your browser (pocket chat), on 127.0.0.1."),
    "jobs": ("smallhold.commands.jobs", "Every app's background jobs: when due, run now."),
    "ps": ("smallhold.commands.ps", "The models a running server keeps warm."),
    "stop": ("smallhold.commands.ps", "Unload a model from the running server now."),
}


def commands() -> dict[str, Command]:
    """Every top-level command: the suite's, then each app's; a clash is an error."""
    table = {name: Command(name, Ref(f"{module}:{name}"), help_text)
             for name, (module, help_text) in SUITE_COMMANDS.items()}
    for name, command in registry.commands().items():
        if name in table:
            raise ValueError(f"an app declares the command {name!r}, which the suite has")
        table[name] = command
    return table



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
        return sorted(commands())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = commands().get(cmd_name)
        if found is None:
            return None
        command = found.ref.load()
        if not isinstance(command, click.Command):
            raise TypeError(f"{found.ref.target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        table = commands()
        with formatter.section("Commands"):
            formatter.write_dl([(name, table[name].help) for name in sorted(table)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="smallhold")
def main() -> None:
    """Private AI that runs on your own machine. Nothing leaves it unless you say so."""


if __name__ == "__main__":
    main()
