"""``smallhold cut``: what is in your footage.

    smallhold cut analyze FILE...        shots, look, audio, speech (cached per file content)
    smallhold cut show FILE [-o PNG]     a contact sheet of the shots, and the analysis
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from smallhold.apps.cut import APP
from smallhold.apps.cut.analyze import Analyzer
from smallhold.apps.cut.models import Analysis
from smallhold.apps.cut.parts import measuring_parts
from smallhold.console import console, emit_json, err_console, handle_errors, json_option
from smallhold.console import profile_option as profile_opt
from smallhold.kit.cli import open_home


@click.group()
def cut() -> None:
    """Video: understand footage (shots, look, speech, silence, music).

    \b
    smallhold cut analyze FILE...       analyse (cached by the file's content)
    smallhold cut show FILE [-o PNG]    a contact sheet of the shots
    """


@contextmanager
def _analyzer(profile: str, *, speech: bool, describe: bool, model: str | None,
              quiet: bool) -> Iterator[Analyzer]:
    with open_home(profile, app=APP, quiet=quiet) as home:
        look, audio, transcribe, notes = measuring_parts(home, speech=speech)
        for note in notes:
            home.io.notify(note)
        describer = None
        if describe:
            from smallhold.apps.cut.story import describe as tell

            home.runtime.prepare(model)

            def describer(analysis: Analysis) -> Analysis:
                return tell(analysis, home.runtime, model=model)

        yield Analyzer(home.vault, look=look, audio=audio, transcribe=transcribe,
                       describe=describer)


def _summary_table(analysis: Analysis) -> Table:
    media = analysis.media
    table = Table(title=f"{media.name} ({media.duration_s:.1f} s, {media.width}x{media.height}"
                        f" @ {media.fps:.2f} fps)" if media.has_video else media.name)
    table.add_column("#", justify="right")
    table.add_column("from")
    table.add_column("length", justify="right")
    table.add_column("in")
    table.add_column("look")
    kinds = {b.frame: b.kind for b in analysis.boundaries}
    for shot in analysis.shots:
        table.add_row(str(shot.index + 1), f"{shot.start_s:.2f}s",
                      f"{shot.end_s - shot.start_s:.1f}s", kinds.get(shot.start_frame, "start"),
                      shot.summary)
    return table


def _print(analysis: Analysis, cached: bool) -> None:
    if analysis.media.has_video:
        console.print(_summary_table(analysis))
    counts = {k: sum(1 for b in analysis.boundaries if b.kind == k)
              for k in ("cut", "dissolve", "fade")}
    console.print(f"{len(analysis.shots)} shots ({counts['cut']} cuts, {counts['dissolve']} "
                  f"dissolves, {counts['fade']} fades), {len(analysis.scenes)} scenes"
                  + (" [dim](cached)[/]" if cached else f" [dim]in {analysis.seconds:.1f} s[/]"))
    audio = analysis.audio
    if audio is not None:
        loud = f"{audio.loudness_lufs:.1f} LUFS" if audio.loudness_lufs is not None else "?"
        console.print(f"audio: {loud}, {len(audio.silences)} silences, {len(audio.speech)} "
                      f"speech spans, {len(audio.music)} music spans, {len(audio.beats)} beats")
    if analysis.transcript is not None and analysis.transcript.segments:
        t = analysis.transcript
        console.print(f"speech ({t.language}, {len(t.fillers)} filler words): {t.text[:300]}",
                      markup=False)
    for beat in analysis.beats:
        if beat.description:
            console.print(f"[bold]{beat.start_s:.1f}-{beat.end_s:.1f} s ({beat.pace})[/]: "
                          f"{escape(beat.description)}")
    for note in analysis.notes:
        err_console.print(f"[dim]note: {note}[/]")


@cut.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Analyse again even if the file was analysed.")
@click.option("--speech/--no-speech", default=True, show_default=True,
              help="Transcribe speech with the bundled Whisper model.")
@click.option("--describe/--no-describe", default=True, show_default=True,
              help="Describe scenes and story beats with the local model.")
@click.option("-m", "--model", help="Model for the descriptions (see `smallhold models list`).")
@profile_opt
@json_option
@handle_errors
def analyze(files: tuple[Path, ...], force: bool, speech: bool, describe: bool,
            model: str | None, profile: str, as_json: bool) -> None:
    """Find shots, transitions, look, loudness, silence, music and speech in FILES."""
    results: list[dict[str, object]] = []
    with _analyzer(profile, speech=speech, describe=describe, model=model,
                   quiet=as_json) as analyzer, Progress(
            TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
            console=err_console, transient=True, disable=as_json) as bar:
        for path in files:
            task = bar.add_task(f"{path.name}: starting", total=1.0)

            def progress(stage: str, fraction: float, task: TaskID = task,
                         name: str = path.name) -> None:
                bar.update(task, description=f"{name}: {stage}", completed=fraction)

            analyzer.progress = progress
            analysis, cached = analyzer.analyze(path, force=force)
            bar.remove_task(task)
            if as_json:
                results.append({"file": str(path), "cached": cached,
                                "analysis": analysis.model_dump(mode="json")})
            else:
                _print(analysis, cached)
    if as_json:
        emit_json({"analyses": results})


@cut.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the contact sheet [default: FILE's name + .sheet.png in the "
                   "current folder].")
@profile_opt
@json_option
@handle_errors
def show(file: Path, output: Path | None, profile: str, as_json: bool) -> None:
    """Write a contact sheet (a thumbnail per shot, with timecode and look) for FILE."""
    from smallhold.apps.cut.sheet import contact_sheet

    with open_home(profile, app=APP, quiet=as_json) as home:
        analysis = Analyzer(home.vault).stored(file)
    out = output or Path.cwd() / f"{file.stem}.sheet.png"
    contact_sheet(file, analysis, out)
    if as_json:
        emit_json({"file": str(file), "sheet": str(out), "shots": len(analysis.shots)})
        return
    _print(analysis, True)
    console.print(f"contact sheet: {out}")
