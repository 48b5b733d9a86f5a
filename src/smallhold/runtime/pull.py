"""``models pull``: fetch a GGUF file over HTTP(S), resumable, checked, then added.

The only command of the runtime that goes on the network, and only to the address the user
typed. A download goes to ``<models dir>/<file>.partial``; a second pull of the same address
sends ``Range`` from where the first stopped (a server that ignores it starts over). The
sha256, when the user gives one (``--sha256``) or the server states one (Hugging Face's
``X-Linked-ETag`` for files in Git LFS), is compared before the file takes its name: a
mismatch deletes the partial file and says so. Then the file is registered as ``models add``
would.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from smallhold.errors import ModelFileError, UnknownModelError

Progress = Callable[[int, int], None]
CHUNK = 1 << 20
_HF = re.compile(r"^(?:hf\.co/|huggingface\.co/)?(?P<repo>[\w.-]+/[\w.-]+)[:/](?P<file>[^:]+\.gguf)"
                 r"$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


def source_url(source: str) -> str:
    """An http(s) URL as it is; ``ORG/REPO:FILE.gguf`` or ``hf.co/ORG/REPO/FILE.gguf`` as the
    Hugging Face download address of that file on the main branch."""
    if source.startswith(("http://", "https://")):
        return source
    found = _HF.match(source)
    if found is None:
        raise UnknownModelError(f"{source!r} is neither an http(s) URL nor a Hugging Face "
                                "file (ORG/REPO:FILE.gguf).")
    return f"https://huggingface.co/{found['repo']}/resolve/main/{found['file']}"


def file_name(url: str) -> str:
    name = Path(unquote(urlparse(url).path)).name
    if not name.endswith(".gguf") or name in ("", ".gguf"):
        raise UnknownModelError(f"{url} does not name a .gguf file; give the file's own "
                                "address.")
    return name


def download(url: str, folder: Path, *, sha256: str | None = None,
             progress: Progress | None = None, timeout: float = 30.0) -> Path:
    """The file at ``url`` in ``folder``, resumed from a ``.partial`` if one is there."""
    import httpx

    if sha256 is not None and not _SHA.match(sha256.lower()):
        raise ModelFileError("--sha256 takes the 64 hex digits of the file's sha256.")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file_name(url)
    partial = target.with_name(target.name + ".partial")
    have = partial.stat().st_size if partial.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with httpx.stream("GET", url, headers=headers, follow_redirects=True,
                          timeout=timeout) as response:
            if response.status_code == 416 and have:  # the partial file is already whole
                pass
            elif response.status_code not in (200, 206):
                raise ModelFileError(f"{url} answered {response.status_code}; check the "
                                     "address (and that the file is public).")
            else:
                stated = (response.headers.get("x-linked-etag") or "").strip('"').lower()
                expected = (sha256 or "").lower() or (stated if _SHA.match(stated) else "")
                resumed = response.status_code == 206
                total = int(response.headers.get("content-length", "0")) + (have if resumed
                                                                              else 0)
                done = have if resumed else 0
                with partial.open("ab" if resumed else "wb") as out:
                    for block in response.iter_bytes():  # as it arrives: a cut loses nothing
                        out.write(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total)
                sha256 = expected or None
    except httpx.HTTPError as exc:
        raise ModelFileError(f"the download from {url} stopped ({exc}); run the same pull "
                             "again to resume it.") from exc
    if sha256:
        digest = hashlib.sha256()
        with partial.open("rb") as handle:
            while block := handle.read(CHUNK):
                digest.update(block)
        if digest.hexdigest() != sha256.lower():
            partial.unlink()
            raise ModelFileError(f"{target.name} has sha256 {digest.hexdigest()[:16]}… but "
                                 f"{sha256[:16]}… was expected: the download is not the file "
                                 "asked for and was deleted. Pull it again.")
    os.replace(partial, target)
    return target
