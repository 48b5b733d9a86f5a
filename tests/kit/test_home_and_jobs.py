"""The home: one vault shared by the trace log, parts injectable; jobs under one policy."""

from __future__ import annotations

import os

import pytest

from smallhold.apps.code import APP as CODE
from smallhold.errors import RelayUnreachableError, VaultLockedError
from smallhold.kit import Home, Job, Jobs, Overrides, ScriptedIO
from smallhold.kit.io import ConsoleIO
from smallhold.paths import Paths
from smallhold.runtime import Message, simulated
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.store.handle import VaultHandle
from smallhold.store.memory.store import TextEmbedder
from smallhold.store.vault import KeySpec, init_vault


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_one_vault_serves_the_app_and_the_trace_log(paths: Paths,
                                                    embedder: TextEmbedder) -> None:
    overrides = Overrides(backend=ScriptedBackend(["hi"]), embedder=embedder,
                          probe=simulated(3, battery=5, charging=False), io=ScriptedIO())
    with Home.open(app=CODE, overrides=overrides) as home:
        assert home.trace._conn is home.vault.conn  # not a second connection to the vault
        home.runtime.chat([Message(role="user", content="hello")], app="code")
        assert [c.app for c in home.trace.list(kind="call")] == ["code"]
        assert home.settings.runtime.n_ctx >= 8192  # the app's declared context need
        assert home.probe.read().battery_percent == 5
        assert home.embedder is embedder
        assert home.folder("code-runs").is_dir()
        vault = home.vault
    with pytest.raises(Exception, match="closed database"):  # closed with the home
        vault.conn.execute("SELECT 1")


def test_a_given_vault_stays_open_and_a_locked_one_says_how_to_unlock(
        paths: Paths, vault: VaultHandle) -> None:
    with Home.open(overrides=Overrides(vault=vault, backend=ScriptedBackend(["x"]))) as home:
        assert home.vault is vault
    assert vault.conn.execute("SELECT 1").fetchone() == (1,)  # the caller's to close

    init_vault(paths, "locked", KeySpec("passphrase", passphrase="correct horse battery"),
               ).close()
    with pytest.raises(VaultLockedError, match="unlock"):
        Home.open("locked")


def test_console_io_without_a_terminal_answers_no() -> None:
    assert ConsoleIO(interactive=False).confirm("delete everything?") is False
    scripted = ScriptedIO.answering([True])
    assert scripted.confirm("a?") is True and scripted.confirm("b?") is False
    assert scripted.asked == ["a?", "b?"]


def _jobs(handle: VaultHandle, battery: float, charging: bool, clock: Clock,
          ran: list[str], fail: bool = False) -> Jobs:
    def sweep() -> str:
        ran.append("sweep")
        return "swept"

    def check() -> str | None:
        if fail:
            raise RelayUnreachableError("the relay is unreachable")
        ran.append("check")
        return None

    return Jobs(handle, simulated(4, battery=battery, charging=charging), [
        Job("sweep", 3600, sweep), Job("check", 6 * 3600, check, power="anytime",
                                       skipped="nothing to check yet")],
        namespace="toy.background", clock=clock)


def test_background_jobs_wait_for_the_charger_and_anytime_jobs_do_not(
        vault: VaultHandle) -> None:
    clock, ran = Clock(), []
    decision, outcomes = _jobs(vault, 60, False, clock, ran).run()
    assert decision.mode == "full"
    assert [(o.job, o.action) for o in outcomes] == [("sweep", "deferred"), ("check", "skipped")]
    assert ran == ["check"] and "nothing to check" in outcomes[1].detail

    jobs = _jobs(vault, 60, False, clock, ran)
    assert jobs.due() == ["sweep"] and jobs.deferred_since("sweep") == clock.now
    clock.now += 60
    _, outcomes = _jobs(vault, 60, True, clock, ran).run()
    assert [(o.job, o.action) for o in outcomes] == [("sweep", "ran")]
    assert _jobs(vault, 60, True, clock, ran).next_due("sweep") == clock.now + 3600

    _, outcomes = _jobs(vault, 4, False, clock, ran).run(force=True)  # critical battery
    assert {o.action for o in outcomes} == {"deferred"} and "plug in" in outcomes[0].detail


def test_a_failing_job_is_reported_and_stays_due(vault: VaultHandle) -> None:
    clock, ran = Clock(), []
    _, outcomes = _jobs(vault, 90, True, clock, ran, fail=True).run(only=["check"])
    assert [(o.job, o.action) for o in outcomes] == [("check", "failed")]
    assert "try again" in outcomes[0].detail
    assert "check" in _jobs(vault, 90, True, clock, ran).due()


def test_job_names_are_unique_per_app_and_apps_do_not_share_records(
        tmp_path: os.PathLike[str], vault: VaultHandle) -> None:
    with pytest.raises(ValueError, match="repeat"):
        Jobs(vault, simulated(4), [Job("a", 1, lambda: "x"), Job("a", 2, lambda: "y")],
             namespace="toy.background")
    clock = Clock()
    Jobs(vault, simulated(4), [Job("sync", 60, lambda: "done")], namespace="one.background",
         clock=clock).run()
    other = Jobs(vault, simulated(4), [Job("sync", 60, lambda: "done")],
                 namespace="two.background", clock=clock)
    assert other.due() == ["sync"]
