"""The CLI surface: each command works with --json, and bad input exits cleanly with advice."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from smallhold.cli import main


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMALLHOLD_RUNTIME__BACKEND", "scripted")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_help_lists_every_command() -> None:
    code, out, _ = run("--help")
    assert code == 0
    for name in ("chat", "models", "embed", "trace", "serve", "config"):
        assert name in out


def test_chat_one_shot_prints_only_the_answer(scripted: None) -> None:
    code, out, _ = run("chat", "hello?")
    assert (code, out) == (0, "ok\n")


def test_chat_json_and_trace(scripted: None) -> None:
    code, out, _ = run("chat", "hello?", "--json")
    data = json.loads(out)
    assert code == 0 and data["answer"] == "ok" and data["finish_reason"] == "stop"
    code, out, _ = run("trace", "list", "--kind", "call", "--json")
    rows = json.loads(out)
    assert rows[0]["app"] == "pocket" and rows[0]["messages"][-1]["content"] == "hello?"


def test_unknown_model_is_a_clean_error() -> None:
    code, out, err = run("chat", "-m", "gpt-9", "hi")
    assert code == 1 and out == ""
    assert "no model named 'gpt-9'" in err and "Traceback" not in err


def test_bad_config_is_a_clean_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMALLHOLD_RUNTIME__N_CTX", "lots")
    code, _, err = run("chat", "hi")
    assert code == 2 and "runtime.n_ctx" in err


def test_models_list_and_plan_json() -> None:
    code, out, _ = run("models", "list", "--json")
    names = {row["name"]: row for row in json.loads(out)}
    assert code == 0 and "qwen2.5-coder-1.5b-instruct" in names
    assert names["smollm2-135m-instruct"]["quantization"] == "Q4_1"
    code, out, _ = run("models", "plan", "--json")
    plan = json.loads(out)
    assert code == 0 and plan["tier"] in ("4bit", "8bit") and plan["reasons"]


def test_models_verify_unknown_and_path() -> None:
    code, _, err = run("models", "verify", "nope")
    assert code == 1 and "known models" in err
    code, out, _ = run("models", "path", "smollm2", "--json")
    assert code == 0 and json.loads(out)["path"].endswith(".gguf")


def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMALLHOLD_OPENAI__API_KEY", "sk-very-secret")
    code, out, _ = run("config", "show", "--json")
    assert code == 0 and "sk-very-secret" not in out
    assert json.loads(out)["settings"]["server"]["host"] == "127.0.0.1"


@pytest.mark.model
def test_chat_on_the_real_small_model_end_to_end() -> None:
    """The installed console script, a real model, and nothing on stdout but the answer."""
    done = subprocess.run(
        [sys.executable, "-m", "smallhold.cli", "chat", "-m", "smollm2", "--temperature", "0",
         "--max-tokens", "24", "What is the capital of France? Answer in one word."],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Paris" in done.stdout
    assert "llama" not in done.stdout.lower()


@pytest.mark.model
def test_default_model_answers_with_no_network(tmp_path_factory: pytest.TempPathFactory) -> None:
    """README command 1's promise: the bundled default model answers inside a netns with no
    interfaces but loopback (``unshare -n``), so nothing could have left the machine."""
    import shutil

    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-n", "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("unshare -n needs root and util-linux; run as root to check offline use")
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "smallhold.cli", "chat", "--temperature", "0",
         "--max-tokens", "32", "What is the capital of France? Answer in one sentence."],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Paris" in done.stdout


def test_models_list_keeps_names_whole_at_80_columns() -> None:
    code, out, _ = run("models", "list")
    names = [row["name"] for row in json.loads(run("models", "list", "--json")[1])]
    assert code == 0 and all(name in out for name in names)
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80
