#!/usr/bin/env bash
# First README command: set up, index the sample corpus, start the assistant.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False GRADIO_ANALYTICS_ENABLED=False
.venv/bin/assistant ingest
exec .venv/bin/assistant ask "$@"
