"""The chapters' tables: the statistics of a result (``bnlab.statistics``) formatted for reading.

A chapter shows these instead of typing numbers, so the text always matches the result it shows (cached or live).
Each is a :class:`Table`, a pandas DataFrame of pre-formatted cells (each number at the precision that suits it, the
same on every machine) that Jupyter, Jupyter Book and Colab show as an HTML table and ``print`` as plain text. A
mean over seeds has the range of the per-seed values in a column of its own.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .norms import NORM_LABELS
from .statistics import (ANALYSIS_NETS, analysis_seeds, final, groups, ics_stats, landscape_stats, moment_stats, nan_safe, sharpness_stats,
                         step_size_stats, surface_stats, thm44_vs_vanilla)


class Table(pd.DataFrame):
    """A DataFrame shown without its row index: as an HTML table (``_repr_html_``, class ``bnlab-table``) in a
    notebook or the book, as aligned plain text by ``print`` and ``repr``."""

    @property
    def _constructor(self):
        return Table

    def _repr_html_(self) -> str:
        # attrs["escape"] False: the cells hold HTML (links) on purpose (``claims.scorecard``)
        return self.to_html(index=False, border=0, classes="bnlab-table", na_rep="", escape=self.attrs.get("escape", True))

    def __repr__(self) -> str:
        return self.to_string(index=False)

    __str__ = __repr__


def _mean(values, spec=".3f") -> str:
    v = np.asarray(values, dtype=np.float64)
    return "n/a" if not len(v) or np.all(np.isnan(v)) else format(nan_safe(np.nanmean, v), spec)


def _range(values, spec=".3f") -> str:
    """The spread over seeds as the range of the per-seed values, lowest to highest; "-" for a single seed."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2 or np.all(np.isnan(v)):
        return "-"
    return f"{format(nan_safe(np.nanmin, v), spec)} to {format(nan_safe(np.nanmax, v), spec)}"


def table(rows, headers) -> Table:
    """A :class:`Table` of pre-formatted cells (stable across machines: values are formatted strings)."""
    return Table([[str(c) for c in r] for r in rows], columns=list(headers))


def training_table(result) -> Table:
    """Final training accuracy/loss and test accuracy per network and learning rate: mean over seeds, and the
    range of the per-seed values in the column after it."""
    rows = []
    classifier = "train_acc" in result.runs[0].arrays
    for norm, lr, runs in groups(result):
        div = [r for r in runs if r.status == "diverged"]
        status = "ok" if not div else f"{len(div)}/{len(runs)} diverged (step {min(r.diverged_step for r in div)})"
        if classifier:
            train, test = [final(r, "train_acc") for r in runs], [final(r, "test_acc") for r in runs]
            rows.append([NORM_LABELS[norm], f"{lr:g}", len(runs), _mean(train), _range(train), _mean(test), _range(test),
                         status])
        else:
            loss = [final(r, "train_loss") for r in runs]
            rows.append([NORM_LABELS[norm], f"{lr:g}", len(runs),
                         f"{nan_safe(np.nanmean, loss):.4g}", _range(loss, ".4g"), status])
    headers = (["network", "lr", "seeds", "final train acc", "train acc, seed range", "final test acc",
                "test acc, seed range", "status"] if classifier else
               ["network", "lr", "seeds", "final training loss", "seed range", "status"])
    return table(rows, headers)


def ics_table(result) -> Table:
    rows = []
    for norm, lr, _ in groups(result):
        s = ics_stats(result, norm, lr)
        for i, layer in enumerate(s["layers"]):
            rows.append([NORM_LABELS[norm], f"{lr:g}", f"#{layer}", f"{s['l2'][i]:.3g}", f"{s['rel'][i]:.3g}",
                         f"{s['cos'][i]:.3f}"])
    return table(rows, ["network", "lr", "layer", "median ||G-G'||", "median ||G-G'||/||G||",
                        "median cos(G,G')"])


def landscape_table(result, lr=None) -> Table:
    rows = []
    for norm, lr_, _ in groups(result):
        if lr is not None and lr_ != lr:
            continue
        s = landscape_stats(result, norm, lr_)
        rows.append([NORM_LABELS[norm], f"{lr_:g}", f"{s['loss_spread']:.4g}", f"{s['grad_change']:.4g}",
                     f"{s['beta']:.4g}", f"{s['beta_max']:.4g}"])
    return table(rows, ["network", "lr", "median loss range", "median max grad change", "median max beta",
                        "largest beta"])


def moments_table(result, layers, norms, lr=None, relative=False) -> Table:
    """How much the layer inputs' moments move (means over steps, units and seeds); ``relative``: the step-to-step
    changes in units of each unit's standard deviation (``statistics.moment_changes``)."""
    rows = []
    for layer in layers:
        for norm in norms:
            s = moment_stats(result, layer, norm, lr)
            values = (s["rel_d_mean"], s["rel_d_std"]) if relative else \
                (s["d_mean"], s["d_var"], s["drift_mean"], s["drift_var"])
            rows.append([f"#{layer}", NORM_LABELS[norm], *(f"{v:.3g}" for v in values)])
    columns = ["mean |d mean| / std", "mean |d std| / std"] if relative else \
        ["mean |d mean|", "mean |d var|", "mean |mean drift|", "mean |var drift|"]
    return table(rows, ["layer", "network", *columns])


def rescaling_table(result, lr=None) -> Table:
    """Per network: the weights' norm, the training step's length relative to it (lr ||g|| / ||w||), the effective
    beta and beta x ||w||^2 (medians over probed steps and seeds), so a smaller beta can be told from larger weights."""
    rows = []
    for norm, lr_, _ in groups(result):
        if lr is not None and lr_ != lr:
            continue
        s = landscape_stats(result, norm, lr_)
        rows.append([NORM_LABELS[norm], f"{lr_:g}", f"{s['wnorm']:.3g}", f"{s['rel_step']:.2g}", f"{s['beta']:.3g}",
                     f"{s['beta_scaled']:.3g}"])
    return table(rows, ["network", "lr", "median ||w||", "median lr ||g|| / ||w||", "median max beta",
                        "median beta x ||w||^2"])


def theory_table(result) -> Table:
    """Largest relative error of each identity, how often the printed Thm 4.1 bound fails, and Thm 4.4's comparison
    of BN's worst-case weight gradient with the vanilla network's at the same weights."""
    a = result.arrays
    n = a["thm41_printed_violated"].size
    t44 = thm44_vs_vanilla(result)
    rows = [["Thm 4.1, corrected (1/m): equality", f"{float(a['thm41_max_relerr']):.1e}", "-"],
            ["Thm 4.1 as printed (1/sqrt m): inequality", "-",
             f"violated for {int(a['thm41_printed_violations'])} of {n} unit-batches"],
            ["Thm 4.2, eq. (50): equality", f"{float(a['thm42_max_relerr']):.1e}", "-"],
            ["Thm 4.4: BN's worst-case weight gradient / the vanilla network's", "-",
             f"median {t44['median']:.2f}; below 1 for {t44['below']:.0%} of unit-batches"],
            ["Lemma 4.5, an identity (per unit)", f"{float(np.max(a['lemma45_unit_relerr'])):.1e}", "-"],
            ["BN scale invariance", f"{float(np.max(a['lemma45_z_relerr'])):.1e}", "-"]]
    return table(rows, ["statement", "max relative error", "note"])


def theory_details(result) -> Table:
    """Per batch size and phase: how much BN shrinks the gradient, how often the Thm 4.2 quadratic form is
    negative, how often <g, yhat> > 0, and how tight the Thm 4.4 bound is (medians over units)."""
    a = result.arrays
    rows = []
    for p, phase in enumerate(("init", f"after {int(a['phase_steps'][1])} steps")):
        for i, m in enumerate(a["batch_sizes"]):
            rows.append([phase, int(m), f"{np.median(a['thm41_projection'][p, i]):.3f}",
                         f"{(m - 2) / m:.3f}", f"{np.median(a['thm41_shrink'][p, i]):.3f}",
                         f"{np.mean(a['thm42_lhs'][p, i] < 0):.2f}", f"{np.mean(a['g_yhat'][p, i] > 0):.2f}",
                         f"{np.median(a['thm44_actual'][p, i] / a['thm44_bound'][p, i]):.3f}"])
    return table(rows, ["phase", "m", "median projection", "(m-2)/m", "median |grad_y|^2/|g|^2",
                        "frac. quad. form < 0", "frac. <g,yhat> > 0", "median Thm 4.4 actual/bound"])


def _eta_txt(x: float, eta_max: float) -> str:
    return f"> {eta_max:g}" if not np.isfinite(x) else f"{x:.3g}"


def step_size_table(result) -> Table:
    """One row per network for the first mini-batch (the network at initialisation) and one for the medians
    over all measured mini-batches."""
    rows = []
    n_all = len(result.arrays["none/rel_loss"])
    for first, which in ((1, "step 0 (init)"), (None, f"median, {n_all} batches")):
        for net in ANALYSIS_NETS:
            s = step_size_stats(result, net, first)
            rows.append([NORM_LABELS[net], f"{s['lr']:g}", which, f"{s['gnorm']:.3g}",
                         f"{s['diverging']}/{s['batches']}", _eta_txt(s["onset"], s["eta_max"]),
                         "-" if not np.isfinite(s["onset_dist"]) else f"{s['onset_dist']:.3g}",
                         f"{s['decreasing']:.3g}", f"{s['best']:.3g}", f"{s['min_rel']:.3f}", f"{s['at_lr']:.4f}"])
    thr = float(result.arrays["threshold"])
    return table(rows, ["network", "lr", "mini-batches", "|g|", f"batches > {thr:g}", "first eta > thr.",
                        "... as eta |g|/|w|", "largest eta < 1", "best eta", "min rel. loss", "rel. loss at lr"])


def _per_network_table(result, stats, columns) -> Table:
    """One row per network of chapter 9 (``ANALYSIS_NETS``) and seed: ``stats(result, net, seed)`` formatted by
    ``columns``, a list of (header, key, format spec)."""
    seeds = analysis_seeds(result)
    rows = [[NORM_LABELS[net], "-" if seed is None else str(seed)]
            + [format(s[key], spec) for _, key, spec in columns]
            for net in ANALYSIS_NETS for seed in seeds for s in (stats(result, net, seed),)]
    return table(rows, ["network", "seed"] + [header for header, _, _ in columns])


def sharpness_table(result) -> Table:
    lr = float(result.arrays["lr"])
    return _per_network_table(result, sharpness_stats, [
        ("lmax step 0", "first", ".3g"), ("lmin step 0", "min_first", ".3g"), ("gHg/|g|^2 step 0", "curv_first", ".3g"),
        ("median lmax", "median", ".3g"), ("median lmax 2nd half", "late", ".3g"), ("largest lmax", "largest", ".3g"),
        (f"frac. lmax > 2/lr = {2 / lr:g}", "above", ".2f"), ("median eff. beta", "beta", ".3g"),
        ("median |Hg|/|g|", "hg", ".3g"), ("final test acc", "test_acc", ".3f")])


def surface_table(result) -> Table:
    return _per_network_table(result, surface_stats, [
        ("test acc", "test_acc", ".3f"), ("centre loss", "centre", ".3f"), ("frac. < 2x centre", "within2x", ".2f"),
        ("frac. < ln 10", "below_chance", ".2f"), ("median edge loss", "edge", ".3g"),
        ("curvature at centre", "curv", ".3g"), ("max a-axis (inference)", "slice_eval_max", ".3g"),
        ("max a-axis (training mode)", "slice_train_max", ".3g")])


def initial_signal_table(result, norms=ANALYSIS_NETS, lr=0.1, seed=0) -> Table:
    """Variance of the layer inputs at step 0 (mean over the recorded units), per recorded layer and network:
    how much signal reaches each depth at initialisation."""
    runs = {n: result.select(norm=n, lr=lr, seed=seed)[0] for n in norms}
    layers = list(runs[norms[0]].arrays["act_layers"])
    rows = [[f"#{k}"] + [f"{float(runs[n].arrays['act_var'][0, i].mean()):.3g}" for n in norms]
            for i, k in enumerate(layers)]
    return table(rows, ["layer"] + [f"variance at step 0, {NORM_LABELS[n]}" for n in norms])


def depth_profile_table(result, every: int = 4) -> Table:
    """The scale (root mean square) of every ``every``-th block's output at initialisation, per network, and the
    ratio of the last block's to the first's: Bjorck et al.'s growth of activations with depth without BN."""
    rms = {n: result.arrays[f"{n}/block_rms"] for n in ANALYSIS_NETS}
    n_blocks = len(rms["none"])
    idx = sorted(set(range(0, n_blocks, every)) | {n_blocks - 1})
    rows = [[f"#{i + 1}"] + [f"{float(rms[n][i]):.3g}" for n in ANALYSIS_NETS] for i in idx]
    rows.append(["last / first"] + [f"{float(rms[n][-1] / rms[n][0]):.3g}" for n in ANALYSIS_NETS])
    return table(rows, ["block"] + [f"output rms at init, {NORM_LABELS[n]}" for n in ANALYSIS_NETS])


# ---- the chapter on later work ---------------------------------------------------------------------------------------
def _med(values, spec=".3g") -> str:
    v = np.asarray(values, dtype=np.float64)
    return "n/a" if not v.size or np.all(np.isnan(v)) else format(nan_safe(np.nanmedian, v), spec)


def rank_table(result) -> Table:
    """Per network and normalisation, at the last hidden block: stable rank, mean |cos| between two examples and the
    orthogonality gap, medians over seeds with their range."""
    a, rows = result.arrays, []
    for net in ("vgg", "resnet", "dln"):
        for n in ("none", "batch", "layer", "group", "rescaled"):
            if f"{net}/{n}/srank" in a:
                sr, cos, gap = (a[f"{net}/{n}/{k}"][:, -1] for k in ("srank", "cos", "gap"))
                rows.append([net, NORM_LABELS[n], _med(sr), _range(sr, ".3g"), _med(cos, ".2f"), _range(cos, ".2f"),
                             _med(gap, ".2f")])
    return table(rows, ["network", "normalisation", "stable rank", "seed range", "mean |cos|", "seed range",
                        "orthogonality gap"])


def explosion_table(result) -> Table:
    """The fitted rate of the squared gradient per layer (BN and standard, and BN at the inset batch sizes), and BN's
    gradient range D_t after 0, 1, 10 steps and at the end, per learning rate."""
    a, rows = result.arrays, []
    for n in ("batch", "none"):
        rows.append([f"rate per layer, {NORM_LABELS[n]}", _med(a[f"{n}/rate"], ".3f"), _range(a[f"{n}/rate"], ".3f")])
    for k, b in enumerate(np.atleast_1d(a["inset_batches"])):
        r = a["batch/inset_rate"][:, k]
        rows.append([f"rate per layer, BN, batch {int(b)}", _med(r, ".3f"), _range(r, ".3f")])
    for k, lr in enumerate(np.atleast_1d(a["dyn_lrs"])):
        D = a["dyn/D"][:, k]
        for t in sorted({0, 1, min(10, D.shape[1] - 1), D.shape[1] - 1}):
            rows.append([f"D_{t}, BN, lr {float(lr):g}", _med(D[:, t], ".2f"), _range(D[:, t], ".2f")])
    return table(rows, ["quantity", "median over seeds", "seed range"])


def trainability_table(result) -> Table:
    """Final training accuracy of plain BN MLPs per depth and learning rate: median over seeds and range."""
    a, rows = result.arrays, []
    for i, d in enumerate(np.atleast_1d(a["depths"])):
        for k, lr in enumerate(np.atleast_1d(a["lrs"])):
            acc, div = a["acc"][:, i, k], a["diverged_step"][:, i, k]
            rows.append([int(d), f"{float(lr):g}", _med(acc, ".2f"), _range(acc, ".2f"), int(np.sum(div >= 0))])
    return table(rows, ["depth", "lr", "final train acc", "seed range", "seeds diverged"])


def residual_table(result) -> Table:
    """Per network: the fitted exponent of rms(branch)/rms(skip) against the block in the first stage, and the
    median ratio over all blocks."""
    a, rows = result.arrays, []
    for n in ("batch", "none"):
        p, r = a[f"{n}/exponent"], np.nanmedian(a[f"{n}/ratio"], axis=1)
        rows.append([NORM_LABELS[n], _med(p, ".2f"), _range(p, ".2f"), _med(r, ".2f"), _range(r, ".2f")])
    return table(rows, ["network", "exponent p (ratio ~ k^-p)", "seed range", "median ratio, all blocks",
                        "seed range"])


def scale_invariance_table(result) -> Table:
    """Per arm: final effective rate eta/||W||^2 and training accuracy, the late angle over its equilibrium, the
    largest |cos(w, g)| and the median Pythagoras error; medians over seeds."""
    a, rows = result.arrays, []
    for arm in [str(x) for x in np.atleast_1d(a["arms"])]:
        eff = float(a[f"{arm}/conv_lr"]) / np.nanmedian(a[f"{arm}/w_sq"][:, -1], axis=-1)
        acc = np.nanmean(a[f"{arm}/train_acc"][:, -50:], axis=1)
        ang = a[f"{arm}/angle"]
        late = np.nanmedian(np.nanmean(ang[:, int(round(ang.shape[1] * 0.6)):], axis=1), axis=-1)
        delta = float(a[f"{arm}/delta_star"])
        rows.append([arm, f"{float(a[f'{arm}/conv_lr']):g}", f"{float(a[f'{arm}/wd']):g}", _med(eff), _med(acc, ".3f"),
                     _med(late / delta, ".2f") if delta > 0 else "-",
                     format(float(np.nanmax(a[f"{arm}/max_cos"])), ".1e"),
                     format(float(np.nanmedian(np.abs(a[f"{arm}/pythagoras"] - 1))), ".1e"),
                     int(np.sum(a[f"{arm}/diverged_step"] >= 0))])
    return table(rows, ["arm", "conv lr", "weight decay", "final eta/||W||^2", "final train acc",
                        "late angle / Delta*", "max |cos(w, g)|", "Pythagoras error", "seeds diverged"])


def population_table(result) -> Table:
    """Mean test accuracy over the evaluations with running averages, PreciseBN and batch statistics, per arm."""
    a, rows = result.arrays, []
    for arm in ("k1", "lr0.5"):
        means = {k: np.nanmean(a[f"{arm}/{k}"], axis=1) for k in ("acc_ema", "acc_precise", "acc_batch")}
        rows.append([arm, *(_med(means[k], ".3f") for k in means),
                     _med(means["acc_precise"] - means["acc_ema"], "+.3f"),
                     _range(means["acc_precise"] - means["acc_ema"], "+.3f")])
    return table(rows, ["arm", "EMA", "PreciseBN", "batch statistics", "PreciseBN minus EMA", "seed range"])
