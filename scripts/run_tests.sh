#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite, offline, on the CPU.
# Optional: Debian's chromium (browser test) and a PostgreSQL URL in MMSA_TEST_PG_URL; otherwise those tests skip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh requirements-dev.txt
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TQDM_DISABLE=1
exec .venv/bin/python -m pytest -q -rs tests "$@"
