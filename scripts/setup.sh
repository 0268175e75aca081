#!/usr/bin/env bash
# Install everything the book and the tests need, idempotently: system packages (Fashion-MNIST for
# offline real data, Chromium for the browser test), a virtual environment with the pinned
# requirements, and bnlab itself (editable).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  local missing=()
  [ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]}"
    $sudo apt-get install -y -q "${missing[@]}" >/dev/null || { $sudo apt-get update -q >/dev/null && \
      $sudo apt-get install -y -q "${missing[@]}" >/dev/null; } || \
      echo "setup: could not install ${missing[*]}; tests that need them will skip" >&2
  else
    echo "setup: no apt-get; install Fashion-MNIST and Chromium yourself (see README)" >&2
  fi
}
apt_install

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing requirements.txt into .venv (about 2 minutes the first time)"
  # requirements.txt is the single source of pins: ignore any site-wide pip constraint file. Byte-compiled at
  # install (pip's default): where PYTHONDONTWRITEBYTECODE is set, nothing compiled later is kept, and every process
  # would compile torch from source again (1.3 s more per import of torch, measured).
  PIP_CONSTRAINT=/dev/null .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
  PIP_CONSTRAINT=/dev/null .venv/bin/pip install -q --disable-pip-version-check --no-deps -e . 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
  .venv/bin/python -c "import torch, torchvision, bnlab, jupyter_book, nbval, plotly" # fail loudly if anything is missing
  echo "$want" > "$stamp"
fi
