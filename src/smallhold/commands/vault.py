"""``smallhold vault``: the encrypted store of a profile (create, unlock, lock, rekey, back up)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click
from rich.markup import escape

from smallhold.console import console, emit_json, err_console, handle_errors, json_option
from smallhold.console import profile_option as profile_opt
from smallhold.errors import StoreError, VaultLockedError
from smallhold.paths import resolve_paths
from smallhold.store import vault as store
from smallhold.store.session import FOREVER, parse_duration

ENV_NEW_PASSPHRASE = "SMALLHOLD_NEW_PASSPHRASE"


def _interactive() -> bool:
    return sys.stdin.isatty()


def _ask_new(env_name: str) -> str:
    """A new passphrase from ``env_name`` or typed twice; never echoed."""
    value = os.environ.get(env_name)
    if value:
        return value
    if not _interactive():
        raise StoreError(f"no terminal to ask for the new passphrase; set {env_name} for "
                         "scripts, or run this in a terminal.")
    text: str = click.prompt("New passphrase", hide_input=True, confirmation_prompt=True,
                             err=True)
    return text


def _ask_current(profile: str) -> str | None:
    """The passphrase from the environment, or typed; ``None`` when neither can be had."""
    value = os.environ.get(store.ENV_PASSPHRASE)
    if value:
        return value
    if not _interactive():
        return None
    text: str = click.prompt(f"Passphrase for profile {profile!r}", hide_input=True, err=True)
    return text


def _spec(to: str, key_file: Path | None, passphrase_env: str) -> store.KeySpec:
    if to == "passphrase":
        return store.KeySpec("passphrase", passphrase=_ask_new(passphrase_env))
    if to == "keyring":
        return store.KeySpec("keyring")
    return store.KeySpec("keyfile", key_file=key_file)


@click.group()
def vault() -> None:
    """The encrypted vault that holds a profile's data (SQLCipher, Argon2id).

    \b
    Scripts: SMALLHOLD_PASSPHRASE opens a passphrase vault without a prompt,
    SMALLHOLD_KEY_FILE names a key file, SMALLHOLD_NEW_PASSPHRASE answers init/rekey.
    """


@vault.command()
@profile_opt
@click.option("--keyring", "use_keyring", is_flag=True,
              help="Keep a random key in the OS keyring instead of asking for a passphrase.")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Keep a random key in this new file (mode 0600) instead of a passphrase.")
@json_option
@handle_errors
def init(profile: str, use_keyring: bool, key_file: Path | None, as_json: bool) -> None:
    """Create the vault of a profile (asks for a passphrase unless --keyring/--key-file)."""
    if use_keyring and key_file:
        raise click.UsageError("choose one of --keyring and --key-file")
    to = "keyring" if use_keyring else "keyfile" if key_file else "passphrase"
    spec = _spec(to, key_file, ENV_NEW_PASSPHRASE if os.environ.get(ENV_NEW_PASSPHRASE)
                 else store.ENV_PASSPHRASE)
    paths = resolve_paths()
    with store.init_vault(paths, profile, spec):
        pass
    status = store.vault_status(paths, profile)
    if as_json:
        emit_json(status)
        return
    console.print(f"Created the vault of profile [bold]{profile}[/] in {escape(status.folder)} "
                  f"(key: {status.key_source}).")
    if to == "passphrase":
        err_console.print("Keep the passphrase safe: without it the data cannot be recovered.")


@vault.command()
@profile_opt
@click.option("--for", "duration", default="1h", show_default=True,
              help="How long to stay unlocked: 30m, 8h, 2d or forever (until lock/logout).")
@json_option
@handle_errors
def unlock(profile: str, duration: str, as_json: bool) -> None:
    """Check the passphrase and keep the vault unlocked for a while."""
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from exc
    paths = resolve_paths()
    info = store.vault_status(paths, profile)
    if info.exists and info.key_source != "passphrase":
        raise StoreError(f"this vault opens with its {info.key_source}; it has no passphrase to "
                         "unlock. `smallhold vault rekey --to passphrase` gives it one.")
    passphrase = _ask_current(profile)
    if passphrase is None:
        raise VaultLockedError(f"no terminal to ask for the passphrase; set "
                               f"{store.ENV_PASSPHRASE} for scripts.")
    session = store.unlock_vault(paths, profile, passphrase, seconds=seconds)
    until = ("until `smallhold vault lock` or logout" if session.expires_at == FOREVER
             else time.strftime("until %Y-%m-%d %H:%M", time.localtime(session.expires_at)))
    if as_json:
        emit_json({"profile": profile, "unlocked": True,
                   "expires_at": None if session.expires_at == FOREVER else session.expires_at})
        return
    console.print(f"Unlocked the vault of profile [bold]{profile}[/] {until}.")


@vault.command()
@profile_opt
@json_option
@handle_errors
def lock(profile: str, as_json: bool) -> None:
    """Forget the unlocked session now (a passphrase is needed again)."""
    was = store.lock_vault(resolve_paths(), profile)
    if as_json:
        emit_json({"profile": profile, "locked": True, "was_unlocked": was})
        return
    console.print(f"Locked the vault of profile [bold]{profile}[/]." if was
                  else f"The vault of profile [bold]{profile}[/] was not unlocked.")


@vault.command()
@profile_opt
@json_option
@handle_errors
def status(profile: str, as_json: bool) -> None:
    """Where the vault is, how it opens, whether it is unlocked."""
    info = store.vault_status(resolve_paths(), profile)
    if as_json:
        emit_json(info)
        return
    if not info.exists:
        if info.notes:  # a database without its vault.json: damaged, not absent
            for note in info.notes:
                console.print(f"  note: {note}", markup=False)
            return
        console.print(f"Profile [bold]{profile}[/] has no vault yet ({escape(info.folder)}); "
                      "`smallhold vault init` creates one.")
        return
    console.print(f"[bold]{profile}[/]: {escape(info.folder)}, {info.db_bytes:,} bytes, key from "
                  f"{info.key_source}, {info.how}.")
    for note in info.notes:
        console.print(f"  note: {note}", markup=False)


@vault.command()
@profile_opt
@click.option("--to", "to", type=click.Choice(list(store.KEY_SOURCES)), default="passphrase",
              show_default=True, help="Where the new key comes from.")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path),
              help="With --to keyfile: create the new key file here.")
@json_option
@handle_errors
def rekey(profile: str, to: str, key_file: Path | None, as_json: bool) -> None:
    """Re-encrypt the vault under a new key (atomic: a crash leaves the old key working)."""
    paths = resolve_paths()
    try:
        current = None
        info = store.vault_status(paths, profile)
        if info.key_source == "passphrase" and not info.unlocked:
            current = _ask_current(profile)
        spec = _spec(to, key_file, ENV_NEW_PASSPHRASE)

        def stage(name: str) -> None:
            if not as_json:
                err_console.print(f"  {name}")

        meta = store.rekey_vault(paths, profile, spec, passphrase=current, on_stage=stage)
    except VaultLockedError as exc:
        raise VaultLockedError(f"{exc} (rekey needs the current key first)") from exc
    if as_json:
        emit_json({"profile": profile, "key_source": meta.key_source, "rekeyed_at":
                   meta.rekeyed_at, "key_file": meta.key_file})
        return
    console.print(f"Rekeyed the vault of profile [bold]{profile}[/]; it now opens with its "
                  f"{meta.key_source}.")


@vault.command()
@profile_opt
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--plaintext", is_flag=True,
              help="Write every row as JSON lines, UNENCRYPTED, for your own use.")
@click.option("--yes", is_flag=True, help="Do not ask before writing plaintext.")
@json_option
@handle_errors
def export(profile: str, out: Path, plaintext: bool, yes: bool, as_json: bool) -> None:
    """Back up the vault to OUT (encrypted, same key), or dump it as plaintext JSON lines."""
    if plaintext and not yes and not click.confirm(
            f"Write the profile's data UNENCRYPTED to {out}?", err=True):
        raise click.Abort()
    with store.open_vault(resolve_paths(), profile) as handle:
        if plaintext:
            rows = store.dump_plaintext(handle, out)
            written = [str(out)]
        else:
            rows = None
            written = [str(p) for p in store.export_vault(handle, out)]
    if as_json:
        emit_json({"profile": profile, "files": written, "plaintext": plaintext, "rows": rows})
        return
    what = f"{rows} rows, unencrypted" if plaintext else "encrypted with the vault's key"
    console.print(f"Exported the vault of profile [bold]{profile}[/] to "
                  f"{escape(', '.join(written))} ({what}).")


@vault.command()
@profile_opt
@json_option
@handle_errors
def verify(profile: str, as_json: bool) -> None:
    """Check every page of the vault (HMAC and SQLite's quick check)."""
    with store.open_vault(resolve_paths(), profile) as handle:
        problems = handle.integrity_problems()
    if as_json:
        emit_json({"profile": profile, "ok": not problems, "problems": problems})
    elif problems:
        console.print(f"[red]{len(problems)} problem(s)[/]: " + "; ".join(problems[:5]))
    else:
        console.print(f"The vault of profile [bold]{profile}[/] is intact.")
    if problems:
        sys.exit(1)


@vault.command()
@profile_opt
@click.option("--yes", is_flag=True, help="Do not ask; delete at once.")
@json_option
@handle_errors
def wipe(profile: str, yes: bool, as_json: bool) -> None:
    """Delete the vault and its key for good (the data cannot be recovered)."""
    if not yes:
        typed = click.prompt(f"This deletes every record of profile {profile!r}. Type the "
                             "profile name to confirm", default="", show_default=False, err=True)
        if typed != profile:
            raise click.Abort()
    removed = store.wipe_vault(resolve_paths(), profile)
    if as_json:
        emit_json({"profile": profile, "removed": removed})
        return
    console.print(f"Wiped profile [bold]{profile}[/]: " + (", ".join(removed) or "nothing there"))
