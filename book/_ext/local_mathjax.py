"""Serve MathJax from the book's own ``_static/mathjax/`` (filled by ``scripts/fetch_mathjax.sh``).

Loaded through ``sphinx: local_extensions`` in ``_config.yml``. Two jobs:

1. Jupyter Book 1.x adds *every* ``.js`` and ``.css`` file under the root ``_static/`` folder to every
   page (``jupyter_book/config.py``). For the MathJax tree that would be dozens of ``<script>`` tags
   loading MathJax several times over, so those entries are dropped again: MathJax is loaded once,
   through Sphinx's ``mathjax_path``, and loads its own fonts and components relative to that file.
2. Warn when ``mathjax_path`` points outside the book (a CDN) or the local copy is missing; the book is
   built with ``-W``, so either fails the build instead of publishing pages with raw LaTeX.
"""
from __future__ import annotations

from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)
PREFIX = "mathjax/"


def _asset_name(entry) -> str:
    return entry[0] if isinstance(entry, (tuple, list)) else str(entry)


def _drop_mathjax_assets(app, config) -> None:
    for name in ("html_js_files", "html_css_files"):
        entries = list(getattr(config, name, []) or [])
        kept = [e for e in entries if not _asset_name(e).startswith(PREFIX)]
        if len(kept) != len(entries):
            config[name] = kept


def _check_local_copy(app) -> None:
    if app.builder.format != "html":
        return
    path = app.config.mathjax_path
    if "://" in path or path.startswith("//"):
        logger.warning("mathjax_path %r loads MathJax from the network; point it at the local copy "
                       "(mathjax/tex-mml-chtml.js, fetched by scripts/fetch_mathjax.sh)", path)
        return
    static_dirs = [Path(app.confdir, d) for d in app.config.html_static_path]
    if not any((d / path).is_file() for d in static_dirs):
        logger.warning("local MathJax not found: no _static folder of the book holds %s; run "
                       "`bash scripts/fetch_mathjax.sh` (or `bash scripts/build_book.sh`, which does it first)",
                       path)


def setup(app):
    app.connect("config-inited", _drop_mathjax_assets, priority=900)
    app.connect("builder-inited", _check_local_copy)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
