"""Interactive versions of two kinds of figure, for the HTML book: the 2-D loss surfaces (chapter 9) and training
curves with every seed (chapter 2). Hover for values, click a legend entry to hide or show it (double-click: show
only it), drag to rotate the 3-D surface; the line under the cursor is drawn across it (a slice along a and b).

The figures are drawn with plotly (an optional dependency: ``pip install "bnlab[interactive]"``). Each function
returns an :class:`Interactive`, whose ``_repr_html_`` is a ``<div>`` and a ``<script>`` with the figure's data:
deterministic (a fixed div id made from the figure's name, values rounded to 4 significant digits) and without any
URL, so a notebook's saved output is the same on every run (nbval) and the page needs no network. The page must
provide plotly.js itself: the built book loads its own copy (``book/_ext/local_plotly.py`` copies the one inside
the plotly package to ``_static/plotly/`` and adds it to the pages that hold such a figure). Where plotly.js is
missing (a notebook in Jupyter) the div says so instead. The static matplotlib figures stay for the PDF and for
readers without JavaScript.
"""
from __future__ import annotations

import json
import math
import re

import numpy as np
from matplotlib.colors import to_hex, to_rgb

from ..statistics import analysis_seeds, net_prefix, stack
from .common import smooth
from .style import LR_STYLES, colour, label
from .training import METRICS, _groups

NETS = ("none", "batch")
DASHES = {"-": "solid", "--": "dash", ":": "dot", "-.": "dashdot"}
CONFIG = {"responsive": True, "displaylogo": False}       # resize with the page; no link to plotly's site
LOG_TICKS = [m * 10.0 ** e for e in range(-3, 4) for m in (1, 2, 5)]     # 0.001, 0.002, 0.005, 0.01, ...
FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12}
FALLBACK = ("Interactive figure: it needs plotly.js, which the built HTML book loads. "
            "The static figure above shows the same data.")


def _go():
    try:
        import plotly.graph_objects as go
    except ImportError as err:           # an optional dependency: say how to get it
        raise ImportError("bnlab.plots.interactive draws with plotly, which is not installed: "
                          "pip install 'bnlab[interactive]' (or pip install plotly)") from err
    return go


class Interactive:
    """A plotly figure that shows itself in a notebook or the HTML book as deterministic HTML. ``figure``: the
    plotly Figure (change it freely before display); ``name``: the page-unique name, which makes the div id."""

    def __init__(self, figure, name: str, height: int):
        self.figure, self.name, self.height = figure, name, height

    @property
    def div_id(self) -> str:
        return "bnlab-" + re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")

    def to_html(self) -> str:
        fig = json.dumps(self.figure.to_plotly_json(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        fig = fig.replace("</", "<\\/")                  # no "</script>" inside the script
        return (f'<div class="bnlab-interactive">\n'
                f'<div id="{self.div_id}" class="plotly-graph-div" style="height:{self.height}px; width:100%;">'
                f'</div>\n<script type="text/javascript">\n(function () {{\n'
                f'  var el = document.getElementById("{self.div_id}");\n'
                f'  if (!el) return;\n'
                f'  if (!window.Plotly) {{ el.style.height = "auto"; el.textContent = {json.dumps(FALLBACK)}; return; }}\n'
                f'  var fig = {fig};\n'
                f'  Plotly.newPlot(el, fig.data, fig.layout, {json.dumps(CONFIG, sort_keys=True)});\n'
                f'}})();\n</script>\n</div>')

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return f"Interactive figure {self.name!r} (plotly; shown in the HTML book)"


# ---- helpers -----------------------------------------------------------------------------------------------------
def _round(values) -> list:
    """Values as a JSON-ready (nested) list rounded to 4 significant digits; NaN and infinities become None (gaps)."""
    def one(v):
        v = float(v)
        return float(f"{v:.4g}") if math.isfinite(v) else None
    arr = np.asarray(values, dtype=np.float64)
    return [one(v) for v in arr] if arr.ndim == 1 else [_round(row) for row in arr]


def _xs(x) -> dict:
    """Evenly spaced x as plotly's x0 and dx (a few bytes instead of a list), else the list."""
    steps = np.diff(x)
    if len(x) > 2 and np.all(steps == steps[0]):
        return {"x0": float(x[0]), "dx": float(steps[0])}
    return {"x": _round(x)}


def _shade(hex_colour: str, towards_white: float) -> str:
    r, g, b = (c + (1 - c) * towards_white for c in to_rgb(hex_colour))
    return to_hex((r, g, b))


def _layout(height: int, **extra) -> dict:
    """No title (the chapter's text says what the figure shows); the legend above the plot, wrapping on a phone."""
    layout = dict(height=height, autosize=True, template="none", font=FONT, paper_bgcolor="white",
                  plot_bgcolor="white", margin={"l": 60, "r": 10, "t": 10, "b": 50},
                  legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "font": {"size": 11}})
    layout.update(extra)
    return layout


def _axis(title: str, **extra) -> dict:
    return dict(title={"text": title}, showgrid=True, gridcolor="#e5e5e5", zeroline=False, showline=True,
                linecolor="#888", ticks="outside", **extra)


# ---- the 2-D loss surface (chapter 9) ----------------------------------------------------------------------------
def surface_explorer(res, name: str = "surface-explorer", height: int = 520) -> Interactive:
    """The loss surfaces of :func:`bnlab.analyses.surface` in 3-D: one surface per network and seed (each seed with
    its own random directions d1, d2), the first seed shown, the others a legend click away. Height: the training
    loss on a log scale; colours: one per network, darker is lower; hover: a, b and the loss."""
    go = _go()
    a = res.arrays
    c = np.asarray(a["coords"], dtype=np.float64)
    seeds = analysis_seeds(res)
    present = [(net, s) for s in seeds for net in NETS if f"{net_prefix(net, s, seeds)}/loss" in a]
    losses = {key: np.asarray(a[f"{net_prefix(key[0], key[1], seeds)}/loss"], dtype=np.float64) for key in present}
    logs = {key: np.log10(np.maximum(loss, 1e-12)) for key, loss in losses.items()}
    lo = min(float(z.min()) for z in logs.values())
    hi = max(float(z.max()) for z in logs.values())
    ticks = [m * 10.0 ** e for e in range(math.floor(lo), math.ceil(hi) + 1) for m in (1, 3)]
    ticks = [t for t in ticks if lo - 0.05 <= math.log10(t) <= hi + 0.05]
    traces = []
    for net in NETS:
        for k, (n, s) in enumerate(key for key in present if key[0] == net):
            seed_text = "" if s is None else f", seed {s}"
            # plotly's surface: z[row][column] at (x[column], y[row]); the result's grid is [i, j] = (a_i, b_j)
            traces.append(go.Surface(
                x=_round(c), y=_round(c), z=_round(logs[(n, s)].T), customdata=_round(losses[(n, s)].T),
                name=f"{label(net)}{seed_text}", legendgroup=net, showlegend=True,
                legendgrouptitle={"text": label(net)} if k == 0 else None,
                visible=True if k == 0 else "legendonly", opacity=0.92, showscale=False, cmin=lo, cmax=hi,
                colorscale=[[0.0, _shade(colour(net), 0.0)], [1.0, _shade(colour(net), 0.85)]],
                contours={"x": {"highlight": True, "highlightcolor": "#222", "highlightwidth": 3},
                          "y": {"highlight": True, "highlightcolor": "#222", "highlightwidth": 3},
                          "z": {"highlight": False}},
                hovertemplate=("a = %{x:.2f}<br>b = %{y:.2f}<br>training loss = %{customdata:.4g}"
                               f"<extra>{label(net)}{seed_text}</extra>")))
    fig = go.Figure(traces)
    axis = dict(showbackground=True, backgroundcolor="#f7f7f7", gridcolor="#ddd", showspikes=False)
    fig.update_layout(_layout(
        height,
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "groupclick": "toggleitem",
                "font": {"size": 11}},
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        scene=dict(xaxis=dict(title={"text": "a (along d<sub>1</sub>)"}, **axis),
                   yaxis=dict(title={"text": "b (along d<sub>2</sub>)"}, **axis),
                   zaxis=dict(title={"text": "training loss (log scale)"}, tickvals=_round(np.log10(ticks)),
                              ticktext=[f"{t:g}" for t in ticks], range=_round([lo, hi]), **axis),
                   aspectmode="manual", aspectratio={"x": 1, "y": 1, "z": 0.75},
                   camera={"eye": {"x": -1.25, "y": -1.25, "z": 0.8}})))
    return Interactive(fig, name, height)


# ---- training curves with every seed (chapter 2) -----------------------------------------------------------------
def training_explorer(result, metrics=("train_acc", "test_acc", "train_loss"), norms=None, lrs=None,
                      name: str = "training-explorer", points: int = 200, panel_height: int = 240) -> Interactive:
    """The curves of :func:`bnlab.plots.training_figure`, one panel per metric (stacked, one step axis): per
    network and learning rate the mean over seeds (thick) and every seed (thin), smoothed alike; a legend entry
    shows or hides a network and learning rate in every panel. ``points``: at most this many points per curve."""
    go = _go()
    from plotly.subplots import make_subplots
    rows = len(metrics)
    height = 140 + panel_height * rows
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.25 / rows)
    for norm, lr, i, runs in _groups(result, norms, lrs):
        n_lrs = len({r.lr for r in result.runs if r.norm == norm}) if lrs is None else len(lrs)
        name_ = label(norm, lr if n_lrs > 1 else None)
        group, col, dash = f"{norm}/{lr:g}", colour(norm), DASHES.get(LR_STYLES.get(i, "-"), "solid")
        for row, metric in enumerate(metrics, start=1):
            ylabel, log = METRICS[metric]
            x_key = "eval_step" if metric == "test_acc" else "step"
            ys = stack(runs, metric)
            if metric != "test_acc":
                w = max(1, ys.shape[1] // 40)                 # as training_figure smooths
                ys = np.stack([smooth(y, w) for y in ys])
            x = np.asarray(max((r.arrays[x_key] for r in runs), key=len)[:ys.shape[1]], dtype=np.float64)
            keep = np.arange(len(x) - 1, -1, -math.ceil(len(x) / points))[::-1]    # every k-th, the last kept
            xs = _xs(x[keep])
            fmt = "%{y:.1%}" if "acc" in metric else "%{y:.4g}"
            with np.errstate(all="ignore"):
                mean = np.nanmean(ys, axis=0)
            for run, y in zip(runs, ys):
                fig.add_trace(go.Scatter(
                    **xs, y=_round(y[keep]), mode="lines", name=f"{name_}, seed {run.seed}",
                    legendgroup=group, showlegend=False, opacity=0.45, line={"color": col, "width": 1, "dash": dash},
                    hovertemplate=f"step %{{x:.0f}}<br>{fmt}<extra>{name_}, seed {run.seed}</extra>"), row=row, col=1)
            fig.add_trace(go.Scatter(
                **xs, y=_round(mean[keep]), mode="lines", name=name_, legendgroup=group,
                showlegend=row == 1, line={"color": col, "width": 2.5, "dash": dash},
                hovertemplate=f"step %{{x:.0f}}<br>{fmt}<extra>{name_}, mean of {len(runs)} seeds</extra>"),
                row=row, col=1)
    fig.update_layout(_layout(height, hovermode="closest"))
    for row, metric in enumerate(metrics, start=1):
        ylabel, log = METRICS[metric]
        fig.update_yaxes(_axis(ylabel, type="log" if log else "linear",
                               tickformat=".0%" if "acc" in metric else None, tickvals=LOG_TICKS if log else None),
                         row=row, col=1)
        fig.update_xaxes(_axis("training step" if row == rows else ""), row=row, col=1)
    return Interactive(fig, name, height)


__all__ = ["Interactive", "surface_explorer", "training_explorer"]
