"""cut's shot boundaries against PySceneDetect, side by side, on the same clips in one run.

    .venv/bin/python bench/bench_cut.py [--seeds 0-9] [--long] [--out bench/results/cut.json]

Clips: the synthetic generator's seeds (``../shared/data/video/make_synthetic.py``, made
into a cache folder on first use: 23 s, 9 shots, 6 hard cuts, a dissolve, a fade through
black, a two-frame white flash that is not a cut) and PySceneDetect's own test clip
(``real/testvideo.mp4``, frame-exact transitions read off its luma). Scoring follows the
generator's README (``smallhold.apps.cut.scoring``): a hard cut within ±2 frames, a
gradual transition anywhere in its range ±2, one to one, unmatched = false positive.

Each detector reads the file itself, so frames/s includes decoding: ours decodes at 320 px
through ffmpeg; PySceneDetect decodes through OpenCV and downscales itself (its default).
``--long`` also makes a 10-minute 1080p clip and measures the peak RSS of a whole
``smallhold cut analyze`` of it in a child process (goal: under 1 GB).

PySceneDetect is installed with ``--no-deps`` (scripts/setup.sh --dev): it asks for
opencv-python, which would shadow the opencv-python-headless that cut uses.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / "shared" / "data" / "video"
CACHE = Path(os.environ.get("CUT_BENCH_CLIPS", Path(tempfile.gettempdir()) / "cut-clips"))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def clips(seeds: list[int]) -> list[tuple[str, Path, Any]]:
    from smallhold.apps.cut.scoring import Truth

    CACHE.mkdir(parents=True, exist_ok=True)
    out = []
    for seed in seeds:
        clip, meta = CACHE / f"synthetic-s{seed}.mp4", CACHE / f"synthetic-s{seed}.json"
        if not meta.exists():
            log(f"making synthetic seed {seed}")
            subprocess.run([sys.executable, str(VIDEO / "make_synthetic.py"), str(CACHE),
                            "--seed", str(seed)], check=True, capture_output=True)
        truth = json.loads(meta.read_text())
        out.append((f"synthetic s{seed}", clip, Truth(
            truth["cuts"], [(a, b) for a, b, _ in truth["gradual_transitions"]],
            truth["flash_frames"])))
    real = json.loads((VIDEO / "real" / "expected.json").read_text())["annotated_here"]
    out.append(("real testvideo", VIDEO / "real" / "testvideo.mp4",
                Truth(real["hard_cuts"], [(a, b) for a, b, _ in real["gradual_transitions"]])))
    return out


def ours(path: Path) -> tuple[list[int], int]:
    from smallhold.apps.cut import shots
    from smallhold.apps.cut.frames import frames
    from smallhold.apps.cut.probe import probe

    info = probe(path)
    count = 0

    def decoded() -> Any:
        nonlocal count
        for _i, _t, rgb in frames(path, info):
            count += 1
            yield rgb

    signature = shots.signature_of(decoded())
    return [b.frame for b in shots.detect(signature, info.fps)], count


def pyscenedetect(path: Path, adaptive: bool) -> tuple[list[int], int]:
    from scenedetect import AdaptiveDetector, ContentDetector, open_video
    from scenedetect.scene_manager import SceneManager

    video = open_video(str(path))
    manager = SceneManager()
    manager.add_detector(AdaptiveDetector() if adaptive else ContentDetector())
    manager.detect_scenes(video)
    scenes = manager.get_scene_list()
    return [start.frame_num for start, _end in scenes[1:]], video.frame_number


DETECTORS = {
    "smallhold cut": ours,
    "PySceneDetect Content": lambda p: pyscenedetect(p, adaptive=False),
    "PySceneDetect Adaptive": lambda p: pyscenedetect(p, adaptive=True),
}


def boundaries(seeds: list[int]) -> dict[str, Any]:
    from smallhold.apps.cut.scoring import score

    rows: dict[str, Any] = {name: {"tp": 0, "fp": 0, "fn": 0, "flash": 0, "frames": 0,
                                   "seconds": 0.0, "clips": {}} for name in DETECTORS}
    for label, path, truth in clips(seeds):
        for name, detect in DETECTORS.items():
            started = time.perf_counter()
            found, frames = detect(path)
            seconds = time.perf_counter() - started
            result = score(found, truth)
            row = rows[name]
            row["tp"] += result.true_positives
            row["fp"] += result.false_positives
            row["fn"] += result.false_negatives
            row["flash"] += result.flash_alarms
            row["frames"] += frames
            row["seconds"] += seconds
            row["clips"][label] = {"f1": round(result.f1, 3), "found": found}
            log(f"{label:16s} {name:24s} F1 {result.f1:.3f} flash {result.flash_alarms} "
                f"{frames / seconds:6.0f} frames/s")
    for row in rows.values():
        found, wanted = row["tp"] + row["fp"], row["tp"] + row["fn"]
        p = row["tp"] / found if found else 1.0
        r = row["tp"] / wanted if wanted else 1.0
        row.update(precision=round(p, 3), recall=round(r, 3),
                   f1=round(2 * p * r / (p + r), 3) if p + r else 0.0,
                   fps=round(row["frames"] / row["seconds"], 1))
    return rows


def long_clip() -> dict[str, Any]:
    """A 10-minute 1080p clip (made once), analysed whole by the CLI in a child process."""
    clip = CACHE / "long-1080p-10min.mp4"
    if not clip.exists():
        log("making a 10-minute 1080p clip (a few minutes, once)")
        sources = ["testsrc2", "mandelbrot", "smptebars", "cellauto", "life", "rgbtestsrc"]
        inputs: list[str] = []
        for source in sources * 4:
            size = "" if source in ("cellauto", "life") else ":size=1920x1080"
            inputs += ["-f", "lavfi", "-t", "25", "-i", f"{source}=rate=25{size}"]
        parts = "".join(f"[{i}:v]scale=1920:1080,setsar=1,format=yuv420p[v{i}];"
                        for i in range(len(sources) * 4))
        joined = "".join(f"[v{i}]" for i in range(len(sources) * 4))
        subprocess.run(["ffmpeg", "-y", "-v", "error", *inputs, "-f", "lavfi", "-t", "600",
                        "-i", "sine=frequency=220:sample_rate=48000",
                        "-filter_complex", f"{parts}{joined}concat=n={len(sources) * 4}:v=1:a=0[v]",
                        "-map", "[v]", "-map", f"{len(sources) * 4}:a",
                        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-c:a", "aac",
                        "-t", "600", str(clip)], check=True)
    home = tempfile.mkdtemp(prefix="cut-bench-home-")
    env = {**os.environ, "SMALLHOLD_HOME": home,
           "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    started = time.perf_counter()
    # pictures and sound only: the models' own memory (Whisper, the describing LLM) is
    # theirs, measured in their own benchmarks
    done = subprocess.run([sys.executable, "-m", "smallhold.cli", "cut", "analyze", "--json",
                           "--no-speech", "--no-describe", str(clip)], env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    analysis = json.loads(done.stdout)["analyses"][0]["analysis"]
    return {"clip": "10 min 1080p25 H.264", "seconds": round(seconds, 1),
            "peak_rss_mb": round(peak, 1), "shots": len(analysis["shots"]),
            "frames": analysis["media"]["frame_count"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-9", help="synthetic seeds, e.g. 0-9 or 0,3,5")
    parser.add_argument("--long", action="store_true", help="also the 10-minute RSS run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cut.json")
    args = parser.parse_args()
    if "-" in args.seeds:
        first, last = (int(x) for x in args.seeds.split("-"))
        seeds = list(range(first, last + 1))
    else:
        seeds = [int(x) for x in args.seeds.split(",")]
    result: dict[str, Any] = {
        "command": "python bench/bench_cut.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}",
        "boundaries": boundaries(seeds)}
    if args.long:
        result["long"] = long_clip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print("| detector | precision | recall | F1 | flash false alarms | frames/s |")
    print("|---|---|---|---|---|---|")
    ours_fps = result["boundaries"]["smallhold cut"]["fps"]
    for name, row in result["boundaries"].items():
        ratio = f" (ours runs at {ours_fps / row['fps']:.2f}x this)" \
            if name != "smallhold cut" else ""
        print(f"| {name} | {row['precision']} | {row['recall']} | {row['f1']} | "
              f"{row['flash']} | {row['fps']}{ratio} |")
    if "long" in result:
        print(f"\nlong clip: {result['long']}")


if __name__ == "__main__":
    main()
