#!/usr/bin/env bash
# Build the book into _build/html: fetch MathJax for offline math (once), then build every page with
# warnings as errors (-W), nitpicky references (-n), and all warnings reported before failing.
# Notebooks are not executed (execute_notebooks: "off" in _config.yml): the book shows their saved outputs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x .venv/bin/jupyter-book ]; then
    bin=.venv/bin/
else
    bin=
fi
bash scripts/fetch_mathjax.sh
"${bin}jupyter-book" build --all -W -n --keep-going .
