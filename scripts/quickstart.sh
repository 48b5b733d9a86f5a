#!/usr/bin/env bash
# README command 1: install everything, then answer one question on the bundled default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/smallhold chat "${1:-In one sentence, why does running an AI model locally protect privacy?}"
