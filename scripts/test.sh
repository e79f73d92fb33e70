#!/usr/bin/env bash
# Second README command: set up with the test tools, then lint, run every test, then the eval gate.
# pytest's exit code is kept as is: 5 (no test collected) fails like any other non-zero code.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False GRADIO_ANALYTICS_ENABLED=False
echo "==> ruff"
.venv/bin/ruff check .
echo "==> pytest"
.venv/bin/python -m pytest "$@"
echo "==> évaluation du jeu test et porte de non-régression (evals/README.md)"
.venv/bin/assistant ingest --quiet
.venv/bin/assistant eval --set evals/gold/test.yaml --out evals/reports/ci
echo "==> corpus de transfert (evals/transfert) : mêmes code et réglages, porte vs evals/baseline/transfert"
.venv/bin/assistant eval --corpus evals/transfert/corpus --set evals/gold/transfert-test.yaml \
    --out evals/reports/ci-transfert --no-gate --quiet
.venv/bin/python scripts/gate_transfert.py evals/reports/ci-transfert evals/baseline/transfert
