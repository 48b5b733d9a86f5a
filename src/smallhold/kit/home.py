"""One home per profile: settings, the vault, the runtime, the embedder, DBOS, user I/O.

Every app, command, page and benchmark that works on a profile opens a :class:`Home` and
takes what it needs from it, instead of wiring its own: one vault handle, shared by the
trace log (so ``TraceLog.open`` never opens the vault a second time), one runtime whose
calls are traced into that vault, the embedder the runtime provides, the durable engine
launched on the profile's system database, and the person's seam (:mod:`.io`).

Each part can be passed in, which is how tests run an app on a scripted backend, a
simulated phone at 5 % battery, a hashing embedder and scripted answers to approvals, with
no mocks. What the home opened it closes, in reverse order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from smallhold.config import Settings, load_settings
from smallhold.durable import launched
from smallhold.kit.io import ConsoleIO, UserIO
from smallhold.kit.spec import AppSpec
from smallhold.paths import Paths, resolve_paths
from smallhold.runtime.backends.base import ChatBackend
from smallhold.runtime.device import DeviceProbe
from smallhold.runtime.runtime import Runtime
from smallhold.store.handle import VaultHandle
from smallhold.store.memory import TextEmbedder
from smallhold.store.vault import open_vault
from smallhold.trace.log import TraceLog


@dataclass(frozen=True)
class Overrides:
    """Parts a caller supplies instead of the real ones (tests, embedding hosts).

    The CLI looks for one in click's context object, so a test runs a real command on a
    scripted backend with ``CliRunner().invoke(main, args, obj=Overrides(...))``.
    """

    backend: ChatBackend | None = None
    probe: DeviceProbe | None = None
    embedder: TextEmbedder | None = None
    io: UserIO | None = None
    settings: Settings | None = None
    vault: VaultHandle | None = None


@dataclass
class Home:
    """An opened profile. Use as a context manager, or call :meth:`close`."""

    paths: Paths
    settings: Settings
    vault: VaultHandle
    trace: TraceLog
    runtime: Runtime
    io: UserIO
    app: str = "smallhold"
    _embedder: TextEmbedder | None = None
    _stack: ExitStack = field(default_factory=ExitStack)

    @classmethod
    def open(cls, profile: str | None = None, *, app: AppSpec | str | None = None,
             paths: Paths | None = None, overrides: Overrides | None = None) -> Home:
        """Open ``profile`` (the settings' profile when None) for ``app``.

        The vault is made on first use (a keyring or key-file vault, see
        :func:`smallhold.store.vault.open_vault`); a locked passphrase vault raises
        :class:`~smallhold.errors.VaultLockedError`, whose message says how to unlock it.
        """
        given = overrides or Overrides()
        paths = paths or resolve_paths()
        settings = (given.settings or load_settings(paths)).model_copy(deep=True)
        if profile is not None:
            settings.profile = profile
        spec = app if isinstance(app, AppSpec) else None
        name = spec.name if spec is not None else (app if isinstance(app, str) else "smallhold")
        if spec is not None and spec.context_tokens:
            settings.runtime.n_ctx = max(settings.runtime.n_ctx, spec.context_tokens)
        stack = ExitStack()
        try:
            vault = given.vault or stack.enter_context(
                open_vault(paths, settings.profile, create_default=True))
            trace = TraceLog(vault.conn, lock=vault.lock)
            runtime = Runtime(settings, paths, backend=given.backend, probe=given.probe,
                              trace=trace, app=name)
            stack.callback(runtime.close)
            home = cls(paths, settings, vault, trace, runtime, given.io or ConsoleIO(),
                       app=name, _embedder=given.embedder, _stack=stack)
            if spec is not None:
                home.prepare(spec)
            return home
        except BaseException:
            stack.close()
            raise

    def prepare(self, spec: AppSpec) -> None:
        """Apply ``spec``'s own migrations (collections migrate themselves)."""
        if spec.migrations is not None:
            scope, migrations = spec.migrations.load()
            self.vault.migrate(list(migrations), scope=scope)

    @property
    def profile(self) -> str:
        return self.settings.profile

    @property
    def probe(self) -> DeviceProbe:
        return self.runtime.probe

    @property
    def embedder(self) -> TextEmbedder:
        """The bundled sentence model, loaded on first use (or the one passed in)."""
        if self._embedder is None:
            self._embedder = self.runtime.embedder
        return self._embedder

    def folder(self, name: str) -> Path:
        """A folder of this profile for an app's files that are not records (the coding
        agent's working copies); made on first use."""
        return self.paths.ensure(self.paths.profile_dir(self.profile) / name)

    def durable(self, executor_id: str) -> AbstractContextManager[Any]:
        """DBOS launched on this profile's system database as ``executor_id`` (see
        :mod:`smallhold.durable`); register workflow instances before entering."""
        return launched(self.paths, self.settings, executor_id=executor_id)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Home:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@contextmanager
def opened(profile: str | None = None, *, app: AppSpec | str | None = None,
           overrides: Overrides | None = None) -> Iterator[Home]:
    """:meth:`Home.open` as a ``with`` block."""
    with Home.open(profile, app=app, overrides=overrides) as home:
        yield home


__all__ = ["Home", "Overrides", "opened"]
