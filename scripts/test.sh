#!/usr/bin/env bash
# README command 2: install the test tools, then lint, type-check, check layers and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
bin=.venv/bin
"$bin/ruff" check src tests bench
"$bin/mypy"
"$bin/lint-imports"
set +e
"$bin/pytest" "$@"
code=$?
set -e
if [[ $code -eq 5 ]]; then
    echo "pytest collected no tests: that is a failure here, not a pass" >&2
    exit 1
fi
exit $code
