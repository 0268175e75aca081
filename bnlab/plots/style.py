"""One palette and one figure style for every chapter: a network keeps its colour across the book, and every
figure is drawn at the size it is shown.

The book's content column is about 700 CSS px wide at desktop width (1300 px window, the default theme). A
figure is drawn at ``DPI`` = 96 pixels per inch, the browser's CSS pixel, so a figure ``COLUMN_WIDTH`` inches
wide is a PNG of at most 672 px that the page shows at its own size, never scaled down: its text appears at
the point size it was set in. Fonts are never smaller than ``MIN_FONT`` points (9 pt = 12 CSS px), and a
figure has at most ``MAX_COLUMNS`` panels side by side; :func:`panels` stacks the rest in rows.
"""
import math

import textwrap

import matplotlib
import matplotlib.pyplot as plt
import seaborn as sns

from ..norms import NORM_COLOURS, NORM_LABELS

LR_STYLES = {0: "-", 1: "--", 2: ":", 3: "-."}

DPI = 96                  # pixels per inch of the PNG = CSS px per inch: the figure is shown at the size it is drawn
COLUMN_WIDTH = 7.0        # inches: 672 px, within the ~700 px content column at desktop width
MAX_COLUMNS = 2           # panels side by side, at most
ROW_HEIGHT = 2.7          # inches per row of panels
MIN_FONT = 9.0            # points: no text in a figure is smaller
FONT = {"font.size": 9.5, "axes.titlesize": 10, "axes.labelsize": 9.5, "xtick.labelsize": 9,
        "ytick.labelsize": 9, "legend.fontsize": MIN_FONT, "legend.title_fontsize": MIN_FONT,
        "figure.titlesize": 10.5}


def rc() -> dict:
    """The matplotlib settings of the book's figures (also usable as ``plt.rc_context(style.rc())``)."""
    return {"figure.dpi": DPI, "savefig.dpi": DPI, "figure.figsize": (COLUMN_WIDTH, ROW_HEIGHT),
            "figure.autolayout": False, "axes.titleweight": "normal", "legend.framealpha": 0.9,
            "legend.borderaxespad": 0.3, "legend.handlelength": 1.6, **FONT}


def setup() -> None:
    """Seaborn's white grid, the book's sizes (``rc``), PNG output (nbval skips images)."""
    sns.set_theme(style="whitegrid", context="notebook")
    matplotlib.rcParams.update(rc())
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
        set_matplotlib_formats("png")
    except ImportError:
        pass


def panels(n: int, height: float = ROW_HEIGHT, ncols: int | None = None, width: float = COLUMN_WIDTH,
           **subplot_kw):
    """A figure of ``n`` panels, at most ``MAX_COLUMNS`` per row, ``height`` inches per row, the column's width.

    Returns ``(fig, axes)``: ``axes`` a flat list of the ``n`` panels; a grid cell left over (e.g. the fourth of
    three panels) is kept, switched off, as ``fig.spare`` (a place for a shared legend), else ``fig.spare`` is
    None."""
    ncols = min(ncols or MAX_COLUMNS, MAX_COLUMNS, n)
    nrows = math.ceil(n / ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(width, height * nrows), squeeze=False, **subplot_kw)
    flat = [ax for row in grid for ax in row]
    for ax in flat[n:]:
        ax.set_axis_off()
    fig.spare = flat[n] if len(flat) > n else None
    return fig, flat[:n]


def legend(fig, axes, spare=None, **kw):
    """One legend for the figure: in the spare grid cell when there is one, else in ``axes`` (an axis) or
    under the panels when ``axes`` is None. Handles are taken from all panels, duplicates dropped."""
    seen = {}
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if not lab.startswith("_"):
                seen.setdefault(lab, h)
    handles, labels = list(seen.values()), list(seen.keys())
    if spare is not None:
        return spare.legend(handles, labels, loc="center", frameon=True, **kw)
    if axes is not None:
        return axes.legend(handles, labels, frameon=True, **kw)
    kw.setdefault("ncol", min(len(labels), 2))
    return fig.legend(handles, labels, loc="lower center", frameon=True, **kw)


EDGE_COLOUR = "#c44e52"


def edge_of_stability(ax, lr: float) -> None:
    """Mark 2/lr on a panel of effective beta or sharpness: the curvature above which a gradient step of size lr
    overshoots on a quadratic, near which sharpness tends to settle in training (the edge of stability, Cohen et al.
    2021). A line when it falls within a factor 10 of the data shown; otherwise a note that says where it is, so
    it does not flatten the curves."""
    edge = 2 / lr
    lo, hi = ax.get_ylim()
    if lo / 10 <= edge <= hi * 10:
        ax.axhline(edge, color=EDGE_COLOUR, ls="--", lw=1, label=rf"$2/\mathrm{{lr}}$ = {edge:g}")
    else:
        where = "above" if edge > hi else "below"
        ax.text(0.98, 0.96 if where == "above" else 0.04, rf"$2/\mathrm{{lr}}$ = {edge:.3g}, far {where}",
                transform=ax.transAxes, ha="right", va="top" if where == "above" else "bottom", fontsize=9,
                color=EDGE_COLOUR)


def legend_below(fig, ncol: int = 2, **kw):
    """One legend for the whole figure under its panels (laid out with ``tight_layout`` above it)."""
    fig.tight_layout()
    leg = legend(fig, None, ncol=ncol, **kw) if ncol else legend(fig, None, **kw)
    fig.canvas.draw()
    fig.tight_layout(rect=(0, leg.get_window_extent().height / fig.bbox.height + 0.01, 1, 1))
    return leg


def wrap(text: str, width: int = 38) -> str:
    """Break a long title or label (plain text, no TeX) into lines that fit half the column."""
    return "\n".join(textwrap.wrap(text, width)) if "$" not in text else text


def colour(norm: str) -> str:
    return NORM_COLOURS.get(norm, "#333333")


def label(norm: str, lr=None) -> str:
    text = NORM_LABELS.get(norm, norm)
    return text if lr is None else f"{text}, lr {lr:g}"
