"""``smallhold embed``: sentence vectors from the bundled all-MiniLM-L6-v2, computed offline."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Column, Table

from smallhold.console import console, emit_json, handle_errors, json_option
from smallhold.paths import resolve_paths
from smallhold.runtime.embeddings import Embedder, cosine_matrix

MAX_MATRIX = 12


@click.command()
@click.argument("texts", nargs=-1)
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Also embed this file, one text per line (blank lines are skipped).")
@json_option
@handle_errors
def embed(texts: tuple[str, ...], file: Path | None, as_json: bool) -> None:
    """Embed TEXT... as 384-dim unit vectors; with several, show their cosine similarities."""
    items = list(texts)
    if file is not None:
        items += [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not items:
        raise click.UsageError("give at least one TEXT or --file PATH")
    embedder = Embedder.open(resolve_paths())
    vectors = embedder.embed(items)
    if as_json:
        emit_json({"model": embedder.name, "dim": embedder.dim, "data": [
            {"index": i, "text": text, "embedding": vec.tolist()}
            for i, (text, vec) in enumerate(zip(items, vectors, strict=True))]})
        return
    table = Table(*(Column(h, no_wrap=h != "text") for h in ("#", "text", "dims", "norm",
                    "first 4")), title=embedder.name)
    for i, (text, vec) in enumerate(zip(items, vectors, strict=True)):
        short = text if len(text) <= 48 else text[:47] + "…"
        first = " ".join(f"{x:+.4f}" for x in vec[:4])
        table.add_row(str(i), short, str(vec.size), f"{float((vec @ vec) ** 0.5):.4f}", first)
    console.print(table)
    if 1 < len(items) <= MAX_MATRIX:
        sims = cosine_matrix(vectors)
        matrix = Table("", *map(str, range(len(items))), title="cosine similarity")
        for i, row in enumerate(sims):
            matrix.add_row(str(i), *(f"{x:.3f}" for x in row))
        console.print(matrix)
    elif len(items) > MAX_MATRIX:
        console.print(f"(similarity matrix shown for up to {MAX_MATRIX} texts; use --json)")
