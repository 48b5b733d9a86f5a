"""The user's own GGUF models: ``models add FILE`` registers one, ``-m PATH`` uses one directly.

What smallhold needs to know of a model (its kind, context, quantization, whether it has a
chat template) is read from the file's own GGUF metadata through llama.cpp (a vocab-only
open: about 0.1 s, no weights read). ``models add`` also records the file's sha256, so a file
changed or swapped later is refused before it loads, as a bundled model's would be. The file
stays where it is; the registry (``models.json`` in the config folder) holds its path.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from smallhold.errors import ModelFileError, UnknownModelError
from smallhold.paths import Paths, resolve_paths
from smallhold.runtime.registry import Kind, ModelSpec

REGISTRY = "models.json"
# llama.cpp's LLAMA_FTYPE_* (general.file_type) -> (name, bits of most weights)
FILE_TYPES: dict[int, tuple[str, int]] = {
    0: ("F32", 32), 1: ("F16", 16), 2: ("Q4_0", 4), 3: ("Q4_1", 4), 7: ("Q8_0", 8),
    8: ("Q5_0", 5), 9: ("Q5_1", 5), 10: ("Q2_K", 2), 11: ("Q3_K_S", 3), 12: ("Q3_K_M", 3),
    13: ("Q3_K_L", 3), 14: ("Q4_K_S", 4), 15: ("Q4_K_M", 4), 16: ("Q5_K_S", 5),
    17: ("Q5_K_M", 5), 18: ("Q6_K", 6), 30: ("BF16", 16),
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def looks_like_path(name: str) -> bool:
    return name.endswith(".gguf") or os.sep in name


def read_gguf(path: Path) -> dict[str, str]:
    """The GGUF metadata of ``path`` (strings, as llama.cpp gives them)."""
    if not path.is_file():
        raise ModelFileError(f"{path} is not a file; give the path of a .gguf model file.")
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ModelFileError(f"{path} is not a GGUF file (llama.cpp's format); convert it "
                                 "with llama.cpp's convert_hf_to_gguf.py first.")
    import llama_cpp

    try:
        llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"llama.cpp could not read {path}: {exc}") from exc
    try:
        return {str(k): str(v) for k, v in llm.metadata.items()}
    finally:
        llm.close()


def spec_from_file(path: Path, name: str | None = None, sha256: str = "") -> ModelSpec:
    """A :class:`ModelSpec` for a user's GGUF file, from its metadata."""
    path = path.expanduser().resolve()
    meta = read_gguf(path)
    arch = meta.get("general.architecture", "unknown")
    quant, bits = FILE_TYPES.get(int(meta.get("general.file_type", "-1") or -1), ("?", 16))
    template = meta.get("tokenizer.chat_template")
    kind: Kind = "embedding" if meta.get(f"{arch}.pooling_type") else (
        "chat" if template else "base")
    title = meta.get("general.name") or path.stem
    return ModelSpec(
        name=name or path.name, kind=kind, family=arch,
        description=f"{title} (your file {path})", filename=path.name,
        size=path.stat().st_size, sha256=sha256, quantization=quant, bits=bits,
        parameters=meta.get("general.size_label", "?"),
        context_length=int(meta.get(f"{arch}.context_length", "2048") or 2048),
        chat_template="gguf:tokenizer.chat_template" if template else
        "none in the file (base model): plain completion only",
        licence=meta.get("general.license", "as the file's author states"),
        parts=(), path=str(path))


class UserModels:
    """The registry of added models, a JSON file in the config folder."""

    def __init__(self, paths: Paths) -> None:
        self.file = paths.config_dir / REGISTRY

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"{self.file} cannot be read ({exc}); fix or delete it and "
                                 "add the models again.") from exc
        return {str(k): v for k, v in data.items()} if isinstance(data, dict) else {}

    def _save(self, data: dict[str, dict[str, Any]]) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        temp = self.file.with_suffix(".tmp")
        temp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(temp, self.file)

    def specs(self) -> list[ModelSpec]:
        out = []
        for entry in self._load().values():
            entry = {**entry, "parts": (), "aliases": tuple(entry.get("aliases", ())),
                     "files": ()}
            out.append(ModelSpec(**entry))
        return out

    def get(self, name: str) -> ModelSpec | None:
        return next((s for s in self.specs() if s.name == name), None)

    def add(self, spec: ModelSpec) -> ModelSpec:
        if not _NAME.match(spec.name):
            raise UnknownModelError(f"{spec.name!r} is not a usable model name: lower-case "
                                    "letters, digits, '.', '_' and '-', at most 64; pick one "
                                    "with --name.")
        from smallhold.runtime.registry import MODELS

        if any(spec.name == m.name or spec.name in m.aliases for m in MODELS):
            raise UnknownModelError(f"{spec.name} is a bundled model's name; pick another "
                                    "with --name.")
        data = self._load()
        entry = asdict(spec)
        for derived in ("parts", "files"):
            entry.pop(derived, None)
        data[spec.name] = entry
        self._save(data)
        return spec

    def remove(self, name: str) -> bool:
        data = self._load()
        if data.pop(name, None) is None:
            return False
        self._save(data)
        return True


_FILES: dict[str, ModelSpec] = {}


def lookup(name: str) -> ModelSpec | None:
    """An added model called ``name``, or the GGUF file at path ``name`` (``-m PATH``)."""
    if looks_like_path(name):
        path = Path(name).expanduser().resolve()
        key = str(path)
        if key not in _FILES:
            if not path.is_file():
                raise UnknownModelError(f"no model file at {path}.")
            _FILES[key] = spec_from_file(path, name=key)
        return _FILES[key]
    return UserModels(resolve_paths()).get(name)
