#!/usr/bin/env bash
# First README command: set up, index the sample corpus (incremental: fast when nothing changed),
# then serve the web app (chat at /, widget at /widget, API at /api/ask) on http://127.0.0.1:7860/.
# Arguments are passed to `assistant serve` (e.g. --port 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False GRADIO_ANALYTICS_ENABLED=False
.venv/bin/assistant ingest
exec .venv/bin/python app.py "$@"
