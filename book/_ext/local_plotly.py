"""Serve plotly.js from the book itself, only to the pages that hold an interactive figure.

Loaded through ``sphinx: local_extensions`` in ``_config.yml``. The interactive figures of
``bnlab.plots.interactive`` are saved in the notebooks as a ``<div class="plotly-graph-div">`` and a script that
calls ``Plotly.newPlot``, without plotly.js itself (4.8 MB) and without any CDN URL. This extension

1. copies ``plotly.min.js`` from the installed plotly package (the very version that wrote the figures' JSON; no
   network) to ``_static/plotly/plotly.min.js`` of the built site, before the pages are written;
2. adds ``<script src=".../_static/plotly/plotly.min.js">`` to the pages whose outputs hold such a div, and only
   to those (every other page stays as light as before);
3. warns when a page holds one but plotly is not installed: the book is built with ``-W``, so that fails the
   build instead of publishing an empty figure (``pip install "bnlab[interactive]"``).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)
TARGET = "plotly/plotly.min.js"          # under the site's _static/
MARKER = "plotly-graph-div"


def plotly_js() -> Path | None:
    """The plotly.min.js bundled in the installed plotly package, or None."""
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def _has_figure(doctree) -> bool:
    return doctree is not None and any(
        MARKER in node.astext() for node in doctree.findall(nodes.raw) if "html" in node.get("format", ""))


def _add_to_page(app, pagename, templatename, context, doctree) -> None:
    if not _has_figure(doctree):
        return
    if plotly_js() is None:
        logger.warning("%s holds an interactive figure but plotly is not installed, so plotly.js cannot be "
                       "served: pip install 'bnlab[interactive]'", pagename)
        return
    app.builder.add_js_file(TARGET)        # this page only: Sphinx resets the page's script list afterwards


def _copy(app) -> None:
    """Before any page is written, so every build links it alike (Sphinx adds ``?v=<checksum>`` for a file it finds)."""
    if app.builder.format != "html":
        return
    source = plotly_js()
    if source is None:
        return
    dest = Path(app.outdir, "_static", TARGET)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.is_file() or dest.stat().st_size != source.stat().st_size:
        shutil.copyfile(source, dest)


def setup(app):
    app.connect("html-page-context", _add_to_page)
    app.connect("builder-inited", _copy)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
