"""bnlab.plots.interactive: the HTML of an interactive figure holds the data, loads nothing from the network and is
the same on every run (the notebooks' saved outputs are compared by nbval)."""
import json
import math
import re
import sys
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("plotly")
from bnlab.plots import interactive  # noqa: E402

FIG_RE = re.compile(r"var fig = (\{.*?\});\n", re.S)


def figure_json(html: str) -> dict:
    match = FIG_RE.search(html)
    assert match, "no figure JSON in the HTML"
    return json.loads(match.group(1))


def surface_result():
    c = np.linspace(-1, 1, 5)
    A, B = np.meshgrid(c, c, indexing="ij")
    arrays = {"coords": c, "seeds": np.array([0, 1])}
    for net, scale in (("none", 1.0), ("batch", 3.0)):
        for seed, prefix in ((0, net), (1, f"{net}/seed1")):
            arrays[f"{prefix}/loss"] = 0.2 + scale * (A ** 2 + 2 * B ** 2) + 0.01 * seed + 0.1 * A  # not symmetric
    return SimpleNamespace(arrays=arrays)


class FakeResult:
    def __init__(self, runs):
        self.runs = runs

    def select(self, norm=None, lr=None, seed=None):
        return [r for r in self.runs if (norm is None or r.norm == norm) and (lr is None or r.lr == lr)
                and (seed is None or r.seed == seed)]


def training_result():
    steps = np.arange(400)
    runs = []
    for norm in ("none", "batch"):
        for seed in (0, 1):
            acc = np.linspace(0.1, 0.9 if norm == "batch" else 0.5, 400) + 0.01 * seed
            loss = np.exp(-steps / 100.0) + 0.1
            if norm == "none" and seed == 1:
                loss[300:] = np.nan                                  # a diverged tail: gaps, not NaN in JSON
            runs.append(SimpleNamespace(norm=norm, lr=0.1, seed=seed, status="ok", diverged_step=None, arrays={
                "step": steps, "train_acc": acc, "train_loss": loss, "eval_step": np.array([100, 200, 300, 400]),
                "test_acc": np.array([0.2, 0.4, 0.5, 0.6]) + 0.01 * seed}))
    return FakeResult(runs)


def test_surface_html_holds_the_surfaces():
    res = surface_result()
    fig = interactive.surface_explorer(res, name="Fig 09: surface")
    html = fig._repr_html_()
    assert fig.div_id == "bnlab-fig-09-surface" and f'id="{fig.div_id}"' in html
    data = figure_json(html)["data"]
    assert [t["name"] for t in data] == ["Standard, seed 0", "Standard, seed 1", "Standard + BatchNorm, seed 0",
                                         "Standard + BatchNorm, seed 1"]
    assert [t.get("visible", True) for t in data] == [True, "legendonly", True, "legendonly"]
    loss = res.arrays["batch/seed1/loss"]
    trace = data[3]
    # plotly's z[row][column] is at (x[column], y[row]): row j is b_j, column i is a_i
    assert np.allclose(trace["customdata"], loss.T, rtol=1e-3)
    assert np.allclose(trace["z"], np.log10(loss.T), atol=1e-3)
    assert trace["customdata"][0][4] == float(f"{loss[4, 0]:.4g}")     # a = +1, b = -1
    assert "training loss = %{customdata" in trace["hovertemplate"]


def test_training_html_holds_every_seed_and_the_mean():
    res = training_result()
    html = interactive.training_explorer(res, metrics=("train_acc", "train_loss", "test_acc"), points=50)._repr_html_()
    fig = figure_json(html)
    data = fig["data"]
    assert len(data) == 2 * 3 * 3                                       # 2 networks x 3 metrics x (2 seeds + mean)
    legend = [t["name"] for t in data if t.get("showlegend")]
    assert legend == ["Standard", "Standard + BatchNorm"]
    groups = {t["legendgroup"] for t in data}
    assert groups == {"none/0.1", "batch/0.1"}                          # one legend click hides a network everywhere
    seed_acc = [t for t in data if t["name"] == "Standard + BatchNorm, seed 1" and t.get("yaxis", "y") == "y"][0]
    assert seed_acc["dx"] == 8 and seed_acc["x0"] == 7                 # every 8th step, ending at the last
    assert len(seed_acc["y"]) == 50
    tails = [t for t in data if t["name"] == "Standard, seed 1" and t.get("yaxis") == "y2"][0]["y"]
    assert tails[-1] is None and tails[0] is not None                  # the diverged tail is a gap
    test_acc = [t for t in data if t["name"] == "Standard" and t.get("yaxis") == "y3"][0]
    assert (test_acc["x0"], test_acc["dx"]) == (100, 100) and test_acc["y"] == [0.205, 0.405, 0.505, 0.605]
    assert fig["layout"]["yaxis2"]["type"] == "log"


@pytest.mark.parametrize("make", [lambda: interactive.surface_explorer(surface_result()),
                                  lambda: interactive.training_explorer(training_result())])
def test_html_is_deterministic_and_offline(make):
    html = make()._repr_html_()
    assert html == make()._repr_html_()
    assert "://" not in html and "cdn" not in html.lower(), "the figure must not load anything from the network"
    assert "<script src" not in html and html.count("</script>") == 1  # plotly.js comes from the page; no early end
    assert "NaN" not in html and "Infinity" not in html                # valid JSON for the browser
    assert "Plotly.newPlot" in html and "window.Plotly" in html         # and says so where plotly.js is missing
    assert "shown in the HTML book" in repr(make())                     # text/plain (the PDF) is one sentence


def test_the_book_surface(tmp_path):
    """The cached loss surface the chapter shows: all networks and seeds, hover values, a page-size budget."""
    import bnlab
    res = bnlab.run("loss_surface", mode="cached", quiet=True)
    html = interactive.surface_explorer(res, name="fig-09-surface-explorer")._repr_html_()
    data = figure_json(html)["data"]
    assert len(data) == 2 * len(res.arrays["seeds"])
    assert np.allclose(data[0]["customdata"], np.asarray(res.arrays["none/loss"]).T, rtol=1e-3)
    assert len(html) < 100_000


def test_missing_plotly_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(ImportError, match=re.escape("bnlab[interactive]")):
        interactive.surface_explorer(surface_result())
