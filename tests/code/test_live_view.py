"""The live view on a real terminal (a pty): the model's reply shows while it is written."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from agent_helpers import BUGGY, needs_bwrap


@needs_bwrap
def test_code_run_on_a_terminal_shows_the_reply_as_it_streams(tmp_path: Path) -> None:
    project = tmp_path / "calc"
    project.mkdir()
    (project / "calc.py").write_text(BUGGY)
    (project / "test_calc.py").write_text("from calc import add\n\n\ndef test_add():\n"
                                          "    assert add(2, 3) == 5\n")
    env = {**os.environ, "SMALLHOLD_RUNTIME__BACKEND": "scripted", "TERM": "xterm",
           "SMALLHOLD_HOME": str(tmp_path / "home"), "COLUMNS": "100",
           "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    leader, follower = pty.openpty()
    # the scripted backend answers "ok": not an edit, so the run stops; what matters here is
    # that the reply and the step line were drawn while it ran
    proc = subprocess.Popen([sys.executable, "-m", "smallhold.cli", "code", "fix add",
                             "--project", str(project), "-n", "1", "--timeout", "30"],
                            stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    seen = b""
    while select.select([leader], [], [], 120)[0]:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=120)
    text = seen.decode(errors="replace")
    assert "iteration 1: writing the change" in text
    assert "tokens ·" in text  # the panel's title: step, tokens so far, seconds
    assert "stopped" in text
