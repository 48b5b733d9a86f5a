"""``smallhold chat`` with saved conversations: one shot, list, show, rm (scripted backend)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from smallhold.cli import main
from smallhold.kit import Overrides
from smallhold.runtime import DeviceProbe, simulated


@pytest.fixture(autouse=True)
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMALLHOLD_RUNTIME__BACKEND", "scripted")


def run(*args: str, probe: DeviceProbe | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), obj=Overrides(probe=probe))
    return result.exit_code, result.stdout, result.stderr


def test_conversations_are_saved_listed_shown_and_removed() -> None:
    assert run("chat", "-c", "trip", "plan my trip") == (0, "ok\n", "")
    code, out, _ = run("chat", "--conversation", "trip", "and the budget?", "--json")
    assert code == 0 and json.loads(out)["conversation"] == "trip"
    code, out, _ = run("chat", "list", "--json")
    [conv] = json.loads(out)["conversations"]
    assert (conv["name"], conv["turns"], conv["title"]) == ("trip", 4, "plan my trip")
    code, out, _ = run("chat", "show", "trip", "--json")
    assert [t["content"] for t in json.loads(out)["turns"]] == [
        "plan my trip", "ok", "and the budget?", "ok"]
    code, out, _ = run("chat", "rm", "trip", "--json")
    assert code == 0 and json.loads(out) == {"removed": "trip", "turns": 4}
    code, _, err = run("chat", "show", "trip")
    assert code == 1 and "no conversation named 'trip'" in err


def test_bad_messages_are_clean_errors() -> None:
    code, _, err = run("chat", "   ")
    assert code == 1 and "empty" in err and "Traceback" not in err
    code, _, err = run("chat", "-c", "no/slashes", "hi")
    assert code == 1 and "not a conversation name" in err
    code, _, err = run("chat", "word " * 6000)
    assert code == 1 and "Shorten the message" in err
    code, out, _ = run("chat", "list", "--json")
    assert json.loads(out)["conversations"] == []  # refused input saved nothing


def test_chat_help_names_the_subcommands_and_the_options_of_a_question() -> None:
    code, out, _ = run("chat", "--help")
    assert code == 0 and "list" in out and "rm" in out
    for option in ("-m, --model", "--max-tokens", "--system", "--seed", "-c, --conversation"):
        assert option in out, option
    assert out.count("--help") == 1


def test_maintain_runs_background_work_and_says_what_it_did() -> None:
    on_battery = simulated(8, battery=60, charging=False)
    code, out, _ = run("chat", "maintain", "--force", "--json", probe=on_battery)
    assert code == 0
    jobs = {j["job"]: j["action"] for j in json.loads(out)["jobs"]}
    assert jobs == {"consolidate": "deferred", "sync": "deferred"}  # wait for the charger

    charging = simulated(8, battery=60, charging=True)
    code, out, _ = run("chat", "maintain", "--force", "--json", probe=charging)
    assert code == 0
    jobs = {j["job"]: j["action"] for j in json.loads(out)["jobs"]}
    assert jobs == {"consolidate": "ran", "sync": "skipped"}
    code, out, _ = run("chat", "maintain", "--json", probe=charging)
    assert code == 0 and json.loads(out)["jobs"] == []  # nothing is due any more


def test_a_one_shot_question_keeps_nothing_unless_a_conversation_is_named() -> None:
    assert run("chat", "my name is Ada") == (0, "ok\n", "")
    code, out, _ = run("chat", "what did I ask you before?", "--json")
    assert code == 0 and json.loads(out)["conversation"] is None
    code, out, _ = run("trace", "list", "--kind", "call", "--json")
    last = json.loads(out)[0]["messages"]
    assert [m["role"] for m in last] == ["system", "user"]  # no earlier turn was sent
    assert "Ada" not in json.dumps(last)
    code, out, _ = run("chat", "list", "--json")
    assert json.loads(out)["conversations"] == []


def test_what_the_user_asked_to_remember_reaches_chat_and_is_cited() -> None:
    assert run("memory", "remember", "my dentist appointment is on March 3rd")[0] == 0
    code, out, _ = run("chat", "when is my dentist appointment?", "--json")
    data = json.loads(out)
    assert code == 0 and [n["text"] for n in data["from_notes"]] == [
        "my dentist appointment is on March 3rd"]
    code, out, _ = run("trace", "list", "--kind", "call", "--json")
    sent = json.loads(out)[0]["messages"][-1]["content"]
    assert "March 3rd" in sent and "asked you to remember" in sent
    code, _, err = run("chat", "when is my dentist appointment?")
    assert code == 0 and "from your notes: my dentist appointment is on March 3rd" in err
    # an unrelated question does not drag the note along
    code, out, _ = run("chat", "how do volcanoes form?", "--json")
    assert json.loads(out)["from_notes"] == []


def test_chat_can_be_told_to_remember() -> None:
    code, out, _ = run("chat", "remember that my locker code is 4411")
    assert code == 0 and "I'll remember that: my locker code is 4411." in out
    code, out, _ = run("memory", "list", "--json")
    assert any("locker code is 4411" in m["text"] and m["kind"] == "note"
               for m in json.loads(out))
    code, out, _ = run("chat", "what is my locker code?", "--json")
    assert "my locker code is 4411." in [n["text"] for n in json.loads(out)["from_notes"]]


def test_a_spinner_shows_the_wait_on_a_terminal_only(tmp_path) -> None:
    """On a TTY a one-shot question shows a spinner with the seconds elapsed until the answer
    starts (and clears it); through a pipe (every other test here) stderr stays empty."""
    import os
    import pty
    import select
    import subprocess
    import sys

    env = {**os.environ, "SMALLHOLD_RUNTIME__BACKEND": "scripted", "TERM": "xterm",
           "SMALLHOLD_HOME": str(tmp_path), "COLUMNS": "80",
           "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "smallhold.cli", "chat", "hello?"],
                            stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    seen = b""
    while select.select([leader], [], [], 60)[0]:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=60) == 0
    text = seen.decode(errors="replace")
    assert "thinking" in text and "0:00:0" in text
    assert text.rstrip().endswith("ok")  # the spinner is gone before the answer
