#!/usr/bin/env bash
# Fetch MathJax 3 once and unpack its es5/ build into _static/mathjax/, so the built book typesets math
# without a CDN (offline, behind firewalls, on file://). _static/mathjax/ is git-ignored; the build
# copies it to _build/html/_static/mathjax/ and _config.yml points Sphinx's mathjax_path at it.
# Idempotent: does nothing when the copy is already there. Needs npm (registry access, once).
#   MATHJAX_VERSION=3.2.2 bash scripts/fetch_mathjax.sh   # pin another 3.x release
set -euo pipefail
cd "$(dirname "$0")/.."

dest=_static/mathjax
version="${MATHJAX_VERSION:-3}"
component=tex-mml-chtml.js          # the component named by mathjax_path in _config.yml

if [ -f "$dest/$component" ]; then
    echo "MathJax already in $dest ($(cat "$dest/.version" 2>/dev/null || echo 'version unknown'))"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "fetch_mathjax.sh: npm is needed to fetch MathJax (e.g. apt-get install -y npm)" >&2
    exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
tarball="$(cd "$tmp" && npm pack --silent --cache "$tmp/npm-cache" "mathjax@$version" | tail -n 1)"
tar -xzf "$tmp/$tarball" -C "$tmp" package/es5 package/package.json
if [ ! -f "$tmp/package/es5/$component" ]; then
    echo "fetch_mathjax.sh: $tarball has no es5/$component" >&2
    exit 1
fi
echo "mathjax $(node -p 'require(process.argv[1]).version' "$tmp/package/package.json" 2>/dev/null || echo "$version")" \
    > "$tmp/package/es5/.version"

# Move into place in one step, so an interrupted fetch never leaves a half-filled folder behind.
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.partial"
mv "$tmp/package/es5" "$dest.partial"
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "MathJax ($(cat "$dest/.version")) unpacked into $dest ($(du -sh "$dest" | cut -f1))"
