#!/usr/bin/env bash
# Build the book into _build/html: fetch MathJax for offline math (once), then build every page with
# warnings as errors (-W), nitpicky references (-n), and all warnings reported before failing.
# Notebooks are not executed (execute_notebooks: "off" in _config.yml): the book shows their saved outputs.
# plotly.js for the interactive figures needs no fetch: book/_ext/local_plotly.py copies the copy inside the installed
# plotly package (requirements.txt) to _build/html/_static/plotly/ and loads it on the pages that hold one.
#
# Where the book is published: set BNLAB_REPOSITORY ("owner/name", "owner/name@branch" or a GitHub URL) and
# optionally BNLAB_BRANCH (.github/workflows/book.yml sets both from the repository it runs in). The build then
# uses a copy of _config.yml with that repository (the repository button, Colab launch buttons) and first
# rewrites the notebooks' Colab/source links and %pip install cells to match (scripts/sync_chapters.py).
# After the build the notebooks are synced back to _config.yml's placeholder, so the working tree keeps the
# committed links. Unset, _config.yml (the placeholder) is used as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x .venv/bin/jupyter-book ]; then
    bin=.venv/bin/
else
    bin=
fi
if [ -x .venv/bin/python ]; then py=.venv/bin/python; else py=python; fi

config=()
if [ -n "${BNLAB_REPOSITORY:-}${BNLAB_BRANCH:-}" ]; then
    published=$(mktemp --suffix=.yml)
    trap 'rm -f "$published"; env -u BNLAB_REPOSITORY -u BNLAB_BRANCH "$py" scripts/sync_chapters.py >/dev/null' EXIT
    "$py" scripts/sync_chapters.py --write-config "$published"
    config=(--config "$published")
    echo "publishing for $(grep -A3 '^repository:' "$published" | tr -s ' \n' ' ')"
fi
"$py" scripts/sync_chapters.py
bash scripts/fetch_mathjax.sh
"${bin}jupyter-book" build --all -W -n --keep-going "${config[@]}" .
