"""Helpers shared by the benchmark scripts: models, machine description, stats, output.

The scripts are run as files (``python bench/bench_runtime.py``), so this module is imported
as ``_common`` from the script's own folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
MB = 1024 * 1024
GB = 1024 * MB

# What llama.cpp calls the KV-cache element types (mirrors smallhold.runtime.engine).
GGML_TYPES = {"f16": 1, "q4_0": 2, "q8_0": 8}


def llama_kwargs(path: str, n_ctx: int, threads: int | None, kv_cache: str) -> dict[str, Any]:
    """Exactly the arguments LlamaEngine passes to ``llama_cpp.Llama`` for these options."""
    kv_type = GGML_TYPES[kv_cache]
    return {
        "model_path": path, "n_ctx": n_ctx, "n_batch": 512, "n_threads": threads,
        "type_k": kv_type, "type_v": kv_type, "flash_attn": kv_type != 1, "verbose": False,
    }


def log(message: str) -> None:
    """Progress goes to stderr so stdout carries only the markdown report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- models -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFile:
    name: str
    path: Path
    size: int
    sha256: str
    sha256_source: str  # "registry (verified)" or "computed"

    @property
    def label(self) -> str:
        return f"{self.name} (`{self.path.name}`, sha256 {self.sha256[:12]}…)"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * MB):
            digest.update(block)
    return digest.hexdigest()


def resolve_model(name: str, model_path: str | None = None) -> ModelFile:
    """The file for ``name`` through the registry, or ``model_path`` when given.

    A registry file is verified by ``ensure_model`` (header, and sha256 once: later runs use
    its sidecar), so its registry sha256 is the file's. An explicit path is hashed here.
    """
    from smallhold.paths import resolve_paths
    from smallhold.runtime.assets import ensure_model
    from smallhold.runtime.registry import get_model

    if model_path:
        path = Path(model_path).expanduser().resolve()
        if not path.is_file():
            raise SystemExit(f"--model-path {path} is not a file")
        try:
            label = get_model(name).name
        except Exception:
            label = name or path.stem
        log(f"hashing {path} ...")
        return ModelFile(label, path, path.stat().st_size, sha256_file(path), "computed")
    spec = get_model(name)
    path = ensure_model(spec, resolve_paths().models_dir)
    return ModelFile(spec.name, path, path.stat().st_size, spec.sha256, "registry (verified)")


# -- machine ------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_DIR), "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def llama_cpp_version() -> str:
    from importlib import metadata

    for dist in ("llama_cpp_python", "llama-cpp-python"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    import llama_cpp

    return str(getattr(llama_cpp, "__version__", "unknown"))


def llama_system_info() -> str:
    try:
        import llama_cpp

        raw = llama_cpp.llama_print_system_info()
        return (raw.decode() if isinstance(raw, bytes) else str(raw)).strip()
    except Exception:
        return "unknown"


def machine() -> dict[str, Any]:
    import psutil

    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = os.cpu_count() or 1
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cpus": affinity,
        "ram_bytes": int(psutil.virtual_memory().total),
        "available_ram_bytes": int(psutil.virtual_memory().available),
        "os": platform.platform(),
        "python": platform.python_version(),
        "llama_cpp_python": llama_cpp_version(),
        "llama_cpp_system_info": llama_system_info(),
        "smallhold_git": git_revision(),
        "loadavg_start": list(os.getloadavg()),
    }


def command_line() -> str:
    """The command exactly as typed (interpreter and flags included)."""
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    return shlex.join(argv)


def machine_lines(info: dict[str, Any], extra: Sequence[tuple[str, str]] = ()) -> list[str]:
    load = info.get("loadavg_start", [0, 0, 0])
    end = info.get("loadavg_end")
    lines = [
        f"- CPU: {info['cpu']} — {info['physical_cores']} physical cores, "
        f"{info['logical_cpus']} logical, {info['usable_cpus']} usable by this process",
        f"- RAM: {info['ram_bytes'] / GB:.1f} GiB "
        f"({info['available_ram_bytes'] / GB:.1f} GiB available at start)",
        f"- OS: {info['os']}, Python {info['python']}",
        f"- llama-cpp-python {info['llama_cpp_python']}; llama.cpp: "
        f"`{info['llama_cpp_system_info']}`",
        f"- smallhold: `{info['smallhold_git']}`",
        f"- load average (1/5/15 min) at start: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"
        + (f"; at end: {end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f}" if end else ""),
    ]
    lines += [f"- {key}: {value}" for key, value in extra]
    return lines


# -- numbers ------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values)) if values else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:  # None or NaN
        return "—"
    return f"{value:,.{digits}f}"


def fmt_ratio(value: float | None) -> str:
    if value is None or value != value:
        return "—"
    return f"{value:.3f}"


# -- output -------------------------------------------------------------------------------


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
             align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is one letter per column (l, r or c)."""
    align = align or "l" + "r" * (len(headers) - 1)
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    out = ["| " + " | ".join(str(h) for h in headers) + " |",
           "|" + "|".join(marks.get(a, "---") for a in align) + "|"]
    for row in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return "\n".join(out)


def write_results(name: str, data: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS_DIR / f"{name}.json"
    md_path = RESULTS_DIR / f"{name}.md"
    json_path.write_text(json.dumps(_finite(data), indent=2, default=str) + "\n")
    md_path.write_text(markdown + "\n")
    return json_path, md_path


def _finite(value: Any) -> Any:
    """NaN/inf become null, so the JSON file is strict JSON."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "-" for c in text).strip("-")


def spec_for(name: str, path: Path) -> Any:
    """The registry spec of ``name``; an unregistered name borrows the default spec's fields
    (only its name is used by the engine outside loading)."""
    from dataclasses import replace

    from smallhold.runtime.registry import MODELS, get_model

    try:
        return get_model(name)
    except Exception:
        return replace(MODELS[0], name=name, filename=path.name, size=path.stat().st_size)
