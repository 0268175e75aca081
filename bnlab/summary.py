"""Numbers behind each chapter's claims: summary tables and explicit, checkable verdicts.

A chapter prints these instead of hard-coding numbers in prose, so the text always matches the
result it shows (cached or live). Verdicts state their criterion.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .experiments import NORM_LABELS


def _nan(fn, a, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(a, *args, **kw)


def final(run, key: str, frac: float = 0.1) -> float:
    """Mean of the last ``frac`` of a curve (the final value for evaluation curves); NaN if diverged."""
    a = np.asarray(run.arrays.get(key, []), dtype=np.float64)
    if not len(a) or run.status != "ok":
        return float("nan")
    if key == "test_acc":
        return float(a[-1])
    n = max(1, int(len(a) * frac))
    return float(_nan(np.nanmean, a[-n:]))


def mean_std(values) -> str:
    v = np.asarray(values, dtype=np.float64)
    if not len(v) or np.all(np.isnan(v)):
        return "n/a"
    if len(v) == 1:
        return f"{v[0]:.3f}"
    return f"{_nan(np.nanmean, v):.3f} +- {_nan(np.nanstd, v):.3f}"


def table(rows, headers) -> str:
    """A plain-text table (stable across machines: values are pre-formatted strings)."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def groups(result):
    """(norm, lr, runs) for each network and learning rate, in registry order."""
    seen = []
    for r in result.runs:
        if (r.norm, r.lr) not in seen:
            seen.append((r.norm, r.lr))
    return [(n, lr, result.select(norm=n, lr=lr)) for n, lr in seen]


def training_table(result) -> str:
    """Final training accuracy/loss and test accuracy per network and learning rate, over seeds."""
    rows = []
    classifier = "train_acc" in result.runs[0].arrays
    for norm, lr, runs in groups(result):
        div = [r for r in runs if r.status == "diverged"]
        status = "ok" if not div else f"{len(div)}/{len(runs)} diverged (step {min(r.diverged_step for r in div)})"
        if classifier:
            rows.append([NORM_LABELS[norm], f"{lr:g}", len(runs), mean_std([final(r, "train_acc") for r in runs]),
                         mean_std([final(r, "test_acc") for r in runs]), status])
        else:
            rows.append([NORM_LABELS[norm], f"{lr:g}", len(runs),
                         f"{_nan(np.nanmean, [final(r, 'train_loss') for r in runs]):.4g}", status])
    headers = (["network", "lr", "seeds", "final train acc", "final test acc", "status"] if classifier else
               ["network", "lr", "seeds", "final training loss", "status"])
    return table(rows, headers)


@dataclass
class Claim:
    """A claim of the paper, the number we measured, and whether our run reproduces it."""

    text: str
    evidence: str
    holds: bool

    def __str__(self):
        return f"[{'reproduced' if self.holds else 'NOT reproduced'}] {self.text}\n    {self.evidence}"


def _final_by(result, norm, lr, key):
    return [final(r, key) for r in result.select(norm=norm, lr=lr)]


def claim_faster(result, norm_a="batch", norm_b="none", lr=None, key="train_acc") -> Claim:
    """Network a reaches a higher final training accuracy than b (mean over seeds)."""
    a, b = _final_by(result, norm_a, lr, key), _final_by(result, norm_b, lr, key)
    ma, mb = _nan(np.nanmean, a), _nan(np.nanmean, b)
    holds = bool(np.isfinite(ma) and (not np.isfinite(mb) or ma > mb))
    return Claim(f"{NORM_LABELS[norm_a]} trains better than {NORM_LABELS[norm_b]} at lr {lr:g}",
                 f"final {key.replace('_', ' ')}: {mean_std(a)} vs {mean_std(b)}", holds)


def ics_stats(result, norm, lr):
    """Median over steps and seeds of ||G - G'|| and cos(G, G') per measured layer."""
    runs = result.select(norm=norm, lr=lr)
    l2 = np.concatenate([r.arrays["ics_l2"] for r in runs])
    cos = np.concatenate([r.arrays["ics_cos"] for r in runs])
    rel = np.concatenate([r.arrays["ics_l2"] / np.maximum(r.arrays["ics_gnorm"], 1e-300) for r in runs])
    return {"layers": list(runs[0].arrays["ics_layers"]), "l2": _nan(np.nanmedian, l2, axis=0),
            "cos": _nan(np.nanmedian, cos, axis=0), "rel": _nan(np.nanmedian, rel, axis=0)}


def ics_table(result) -> str:
    rows = []
    for norm, lr, _ in groups(result):
        s = ics_stats(result, norm, lr)
        for i, layer in enumerate(s["layers"]):
            rows.append([NORM_LABELS[norm], f"{lr:g}", f"#{layer}", f"{s['l2'][i]:.3g}", f"{s['rel'][i]:.3g}",
                         f"{s['cos'][i]:.3f}"])
    return table(rows, ["network", "lr", "layer", "median ||G-G'||", "median ||G-G'||/||G||",
                        "median cos(G,G')"])


def landscape_stats(result, norm, lr=None):
    """Medians over probed steps (and seeds) of loss spread, max gradient change and max beta."""
    runs = result.select(norm=norm, lr=lr)
    loss = np.concatenate([r.arrays["land_loss"] for r in runs])
    change = np.concatenate([r.arrays["land_grad_change"] for r in runs])
    beta = np.concatenate([r.arrays["land_beta"] for r in runs])
    spread = _nan(np.nanmax, loss, axis=1) - _nan(np.nanmin, loss, axis=1)
    return {"loss_spread": float(_nan(np.nanmedian, spread)),
            "grad_change": float(_nan(np.nanmedian, _nan(np.nanmax, change, axis=1))),
            "beta": float(_nan(np.nanmedian, _nan(np.nanmax, beta, axis=1))),
            "beta_max": float(_nan(np.nanmax, beta))}


def landscape_table(result, lr=None) -> str:
    rows = []
    for norm, lr_, _ in groups(result):
        if lr is not None and lr_ != lr:
            continue
        s = landscape_stats(result, norm, lr_)
        rows.append([NORM_LABELS[norm], f"{lr_:g}", f"{s['loss_spread']:.4g}", f"{s['grad_change']:.4g}",
                     f"{s['beta']:.4g}", f"{s['beta_max']:.4g}"])
    return table(rows, ["network", "lr", "median loss range", "median max grad change", "median max beta",
                        "largest beta"])


def claim_smoother(result, lr=None, smooth="batch", rough="none") -> list:
    """BN's landscape: narrower loss range, smaller gradient change, smaller beta (medians over steps)."""
    a, b = landscape_stats(result, smooth, lr), landscape_stats(result, rough, lr)
    out = []
    for key, what in (("loss_spread", "loss varies less along the gradient"),
                      ("grad_change", "gradients are more predictive (smaller change)"),
                      ("beta", "effective beta-smoothness is smaller")):
        ratio = b[key] / a[key] if a[key] > 0 else float("inf")
        out.append(Claim(f"with {NORM_LABELS[smooth]}, {what}",
                         f"median {key}: {a[key]:.4g} vs {b[key]:.4g} for {NORM_LABELS[rough]} "
                         f"(ratio {ratio:.3g})", bool(a[key] < b[key])))
    out.append(Claim(f"with {NORM_LABELS[smooth]}, the worst effective beta-smoothness over training is smaller",
                     f"largest beta: {a['beta_max']:.4g} vs {b['beta_max']:.4g} for {NORM_LABELS[rough]}",
                     bool(a["beta_max"] < b["beta_max"])))
    return out


def moment_stats(result, layer, norm, lr=None) -> dict:
    """Mean over steps, units and seeds of the step-to-step change of the mean and variance of inputs."""
    from .plots.distributions import moment_changes
    m = moment_changes(result.select(norm=norm, lr=lr), layer)
    return {k: float(_nan(np.nanmean, v)) for k, v in m.items()}


def moments_table(result, layers, norms, lr=None) -> str:
    rows = []
    for layer in layers:
        for norm in norms:
            s = moment_stats(result, layer, norm, lr)
            rows.append([f"#{layer}", NORM_LABELS[norm], f"{s['d_mean']:.3g}", f"{s['d_var']:.3g}",
                         f"{s['drift_mean']:.3g}", f"{s['drift_var']:.3g}"])
    return table(rows, ["layer", "network", "mean |d mean|", "mean |d var|", "mean |mean drift|",
                        "mean |var drift|"])


def theory_table(result) -> str:
    """Largest relative error of each identity and how often the printed Thm 4.1 bound fails."""
    a = result.arrays
    n = a["thm41_printed_violated"].size
    rows = [["Thm 4.1, corrected (1/m): equality", f"{float(a['thm41_max_relerr']):.1e}", "-"],
            ["Thm 4.1 as printed (1/sqrt m): inequality", "-",
             f"violated for {int(a['thm41_printed_violations'])} of {n} unit-batches"],
            ["Thm 4.2, eq. (50): equality", f"{float(a['thm42_max_relerr']):.1e}", "-"],
            ["Thm 4.4: actual / bound", f"max {float(a['thm44_max_ratio']):.3f}", "bound holds" if
             float(a["thm44_max_ratio"]) <= 1 + 1e-9 else "bound FAILS"],
            ["Lemma 4.5 identity (per unit)", f"{float(np.max(a['lemma45_unit_relerr'])):.1e}", "-"],
            ["BN scale invariance", f"{float(np.max(a['lemma45_z_relerr'])):.1e}", "-"]]
    return table(rows, ["statement", "max relative error", "note"])


def theory_details(result) -> str:
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


def claim_ics_not_reduced(result, lr) -> Claim:
    """[S Fig. 3]: BN does not reduce gradient-based ICS. Criterion (ours): at every measured layer the BN
    network's median ||G - G'|| is at least half the standard network's and its median cosine is at most
    0.05 above it."""
    bn, std = ics_stats(result, "batch", lr), ics_stats(result, "none", lr)
    holds = bool(np.all(bn["l2"] >= 0.5 * std["l2"]) and np.all(bn["cos"] <= std["cos"] + 0.05))
    parts = [f"layer #{k}: ||G-G'|| {b:.3g} vs {s:.3g}, cos {cb:.3f} vs {cs:.3f}" for k, b, s, cb, cs in
             zip(bn["layers"], bn["l2"], std["l2"], bn["cos"], std["cos"])]
    return Claim(f"BatchNorm does not reduce gradient-based ICS at lr {lr:g} (BN vs standard, medians)",
                 "; ".join(parts), holds)


# ---- beyond the paper (book/08_bjorck, book/09_smoothness) ---------------------------------------------------------
BEYOND_NETS = ("none", "batch")


def _eta_txt(x: float, eta_max: float) -> str:
    return f"> {eta_max:g}" if not np.isfinite(x) else f"{x:.3g}"


def step_size_stats(result, net: str, first: int | None = None) -> dict:
    """Bjorck et al.'s test for one network, medians over the measured mini-batches (or over the ``first`` ones;
    ``first=1`` is the network at initialisation): the smallest step size whose relative loss exceeds the
    threshold (inf: none in the grid) and the same as a relative distance eta |g| / |w|, the largest step size up
    to which every step lowers the loss, the best step size, the gradient norm, and the relative loss at the
    network's own learning rate."""
    from .beyond import divergence_onset, largest_decreasing
    a = result.arrays
    eta = a["eta"]
    rows = slice(0, first)
    rel = np.where(a[f"{net}/nonfinite"], np.inf, a[f"{net}/rel_loss"])[rows]
    gnorm, wnorm = a[f"{net}/gnorm"][rows], a[f"{net}/wnorm"][rows]
    onset = divergence_onset(eta, rel, float(a["threshold"]))
    lr = float(a[f"{net}/lr"])
    at_lr = rel[:, int(np.argmin(np.abs(np.log(eta) - np.log(lr))))]
    return {"lr": lr, "batches": len(rel), "diverging": int(np.isfinite(onset).sum()),
            "gnorm": float(np.median(gnorm)), "onset_dist": float(np.median(onset * gnorm / wnorm)),
            "onset": float(np.median(onset)), "decreasing": float(np.median(largest_decreasing(eta, rel))),
            "best": float(np.median(eta[np.argmin(rel, 1)])), "min_rel": float(np.median(rel.min(1))),
            "at_lr": float(np.median(at_lr)), "eta_max": float(eta[-1])}


def step_size_table(result) -> str:
    """One row per network for the first mini-batch (the network at initialisation) and one for the medians
    over all measured mini-batches."""
    rows = []
    n_all = len(result.arrays["none/rel_loss"])
    for first, which in ((1, "step 0 (init)"), (None, f"median, {n_all} batches")):
        for net in BEYOND_NETS:
            s = step_size_stats(result, net, first)
            rows.append([NORM_LABELS[net], f"{s['lr']:g}", which, f"{s['gnorm']:.3g}",
                         f"{s['diverging']}/{s['batches']}", _eta_txt(s["onset"], s["eta_max"]),
                         "-" if not np.isfinite(s["onset_dist"]) else f"{s['onset_dist']:.3g}",
                         f"{s['decreasing']:.3g}", f"{s['best']:.3g}", f"{s['min_rel']:.3f}", f"{s['at_lr']:.4f}"])
    thr = float(result.arrays["threshold"])
    return table(rows, ["network", "lr", "mini-batches", "|g|", f"batches > {thr:g}", "first eta > thr.",
                        "... as eta |g|/|w|", "largest eta < 1", "best eta", "min rel. loss", "rel. loss at lr"])


def claim_bjorck_step_size(result) -> list:
    """Bjorck et al. (paper-spec.md 11.3), read twice: at initialisation (the first mini-batch) and as medians over
    all measured mini-batches. Criteria (ours): (1) the standard network's divergence onset lies within a decade
    of 10^-3; (2) BN's range of loss-lowering step sizes and its divergence onset are both at least 100 times the
    standard network's (no divergence in the grid counts as beyond the grid)."""
    thr = float(result.arrays["threshold"])
    out = []
    n_all = len(result.arrays["none/rel_loss"])
    for first, when in ((1, "at initialisation (first mini-batch)"), (None, f"median over {n_all} mini-batches")):
        std, bn = step_size_stats(result, "none", first), step_size_stats(result, "batch", first)
        out.append(Claim(f"without BatchNorm the relative loss exceeds {thr:g} once the step size passes about 1e-3 "
                         f"-- {when}", f"smallest step size with relative loss > {thr:g}: "
                         f"{_eta_txt(std['onset'], std['eta_max'])}", bool(1e-4 <= std["onset"] <= 1e-2)))
        out.append(Claim(f"with BatchNorm a step lowers the loss over a much wider range of step sizes -- {when}",
                         f"largest step size with every step lowering the loss: {bn['decreasing']:.3g} vs "
                         f"{std['decreasing']:.3g}; divergence onset: {_eta_txt(bn['onset'], bn['eta_max'])} vs "
                         f"{_eta_txt(std['onset'], std['eta_max'])}",
                         bool(bn["decreasing"] >= 100 * std["decreasing"] and bn["onset"] >= 100 * std["onset"])))
    return out


def sharpness_stats(result, net: str) -> dict:
    """lambda_max, the smallest Ritz value and g^T H g / |g|^2 at step 0; lambda_max's median over the second half
    of the measurements and overall, its largest value, how often it exceeds 2/lr; medians of effective beta
    (max over eta), |Hg|/|g|, g^T H g / |g|^2 and the smallest Ritz value; the final test accuracy."""
    a = result.arrays
    lam = a[f"{net}/sharp_max"]
    half = lam[len(lam) // 2:]
    beta = _nan(np.nanmax, a[f"{net}/land_beta"], axis=1)
    acc = a[f"{net}/test_acc"]
    return {"first": float(lam[0]), "min_first": float(a[f"{net}/sharp_min"][0]),
            "curv_first": float(a[f"{net}/sharp_grad_curvature"][0]),
            "median": float(np.median(lam)), "late": float(np.median(half)),
            "largest": float(lam.max()), "above": float(np.mean(lam > 2 / float(a["lr"]))),
            "beta": float(_nan(np.nanmedian, beta)), "hg": float(np.median(a[f"{net}/sharp_hg_ratio"])),
            "curv": float(np.median(a[f"{net}/sharp_grad_curvature"])),
            "min": float(np.median(a[f"{net}/sharp_min"])), "test_acc": float(acc[-1]) if len(acc) else float("nan")}


def _per_network_table(result, stats, columns) -> str:
    """One row per network of chapters 8 and 9 (``BEYOND_NETS``): ``stats(result, net)`` formatted by ``columns``, a list of
    (header, key, format spec)."""
    rows = [[NORM_LABELS[net]] + [format(s[key], spec) for _, key, spec in columns]
            for net, s in ((net, stats(result, net)) for net in BEYOND_NETS)]
    return table(rows, ["network"] + [header for header, _, _ in columns])


def sharpness_table(result) -> str:
    lr = float(result.arrays["lr"])
    return _per_network_table(result, sharpness_stats, [
        ("lmax step 0", "first", ".3g"), ("lmin step 0", "min_first", ".3g"), ("gHg/|g|^2 step 0", "curv_first", ".3g"),
        ("median lmax", "median", ".3g"), ("median lmax 2nd half", "late", ".3g"), ("largest lmax", "largest", ".3g"),
        (f"frac. lmax > 2/lr = {2 / lr:g}", "above", ".2f"), ("median eff. beta", "beta", ".3g"),
        ("median |Hg|/|g|", "hg", ".3g"), ("final test acc", "test_acc", ".3f")])


def claim_sharpness(result) -> list:
    """(1) The smoothness story predicts a smaller top Hessian eigenvalue with BN: median over all measurements.
    (2) Cohen et al.'s edge of stability (shown for full-batch GD): lambda_max settles near 2/lr. Criterion
    (ours): the median over the second half of the measurements lies within a factor 2 of 2/lr."""
    std, bn = sharpness_stats(result, "none"), sharpness_stats(result, "batch")
    edge = 2 / float(result.arrays["lr"])
    out = [Claim("with BatchNorm the top Hessian eigenvalue is smaller",
                 f"median lambda_max: {bn['median']:.3g} vs {std['median']:.3g} for {NORM_LABELS['none']}",
                 bool(bn["median"] < std["median"]))]
    for net, s in (("none", std), ("batch", bn)):
        out.append(Claim(f"{NORM_LABELS[net]}: lambda_max settles near 2/lr = {edge:g} (edge of stability)",
                         f"median lambda_max over the second half: {s['late']:.3g} "
                         f"(ratio to 2/lr {s['late'] / edge:.2f})", bool(0.5 <= s["late"] / edge <= 2.0)))
    return out


def surface_stats(result, net: str) -> dict:
    """The 2-D surface of one network: loss and accuracy at the centre, the share of the plotted square where
    the loss stays below twice the centre's and below chance level (ln 10), the median loss on the square's edge,
    the finite-difference curvature at the centre (mean of the a and b directions), and the largest loss on the
    a-axis in inference mode and in training mode."""
    a = result.arrays
    L, c = a[f"{net}/loss"], a["coords"]
    mid, h = len(c) // 2, float(c[1] - c[0])
    l0 = float(L[mid, mid])
    edge = np.concatenate([L[0], L[-1], L[1:-1, 0], L[1:-1, -1]])
    curv = ((L[mid + 1, mid] + L[mid - 1, mid] - 2 * l0) + (L[mid, mid + 1] + L[mid, mid - 1] - 2 * l0)) / (2 * h * h)
    return {"centre": l0, "acc": float(a[f"{net}/acc"][mid, mid]), "test_acc": float(a[f"{net}/test_acc"]),
            "within2x": float(np.mean(L < 2 * l0)), "below_chance": float(np.mean(L < np.log(10))),
            "edge": float(np.median(edge)), "curv": float(curv), "slice_eval_max": float(L[:, mid].max()),
            "slice_train_max": float(a[f"{net}/slice_train_mode"].max())}


def surface_table(result) -> str:
    return _per_network_table(result, surface_stats, [
        ("test acc", "test_acc", ".3f"), ("centre loss", "centre", ".3f"), ("frac. < 2x centre", "within2x", ".2f"),
        ("frac. < ln 10", "below_chance", ".2f"), ("median edge loss", "edge", ".3g"),
        ("curvature at centre", "curv", ".3g"), ("max a-axis (inference)", "slice_eval_max", ".3g"),
        ("max a-axis (training mode)", "slice_train_max", ".3g")])


def claim_surface(result) -> Claim:
    """The smoothness story, read on Li et al.'s picture: with BN, a larger share of the plotted square keeps the
    loss below twice its value at the trained weights."""
    std, bn = surface_stats(result, "none"), surface_stats(result, "batch")
    return Claim("with BatchNorm the basin around the trained weights is wider (share of the square with loss "
                 "< 2x centre)", f"{bn['within2x']:.2f} vs {std['within2x']:.2f}; curvature at the centre "
                 f"{bn['curv']:.3g} vs {std['curv']:.3g}", bool(bn["within2x"] > std["within2x"]))


def claim_more_than_rescaling(result, lr=None) -> Claim:
    """BN's smoothing is more than its rescaling at initialisation. Criterion (ours): the fixed-rescaling
    network's median effective beta and median gradient change are both larger than BN's."""
    bn, rs = landscape_stats(result, "batch", lr), landscape_stats(result, "rescaled", lr)
    return Claim("BatchNorm's smoothing is more than a fixed rescaling set at initialisation",
                 f"median max beta {bn['beta']:.4g} (BN) vs {rs['beta']:.4g} (fixed rescaling); median max gradient "
                 f"change {bn['grad_change']:.4g} vs {rs['grad_change']:.4g}",
                 bool(rs["beta"] > bn["beta"] and rs["grad_change"] > bn["grad_change"]))


def initial_signal_table(result, norms=BEYOND_NETS, lr=0.1, seed=0) -> str:
    """Variance of the layer inputs at step 0 (mean over the recorded units), per recorded layer and network:
    how much signal reaches each depth at initialisation."""
    runs = {n: result.select(norm=n, lr=lr, seed=seed)[0] for n in norms}
    layers = list(runs[norms[0]].arrays["act_layers"])
    rows = [[f"#{k}"] + [f"{float(runs[n].arrays['act_var'][0, i].mean()):.3g}" for n in norms]
            for i, k in enumerate(layers)]
    return table(rows, ["layer"] + [f"variance at step 0, {NORM_LABELS[n]}" for n in norms])


# ---- Bjorck et al.'s learning-rate sweep (ResNet) -------------------------------------------------------------
SWEEP_FAILED_ACC = 0.2      # [ours] a run "fails" when it diverges or its final training accuracy stays below this
SWEEP_MARGIN = 0.01         # [ours] "better" test accuracy: by more than this (one seed: differences below are noise)


def _sweep(result, norm):
    """{lr: (final train acc, final test acc, diverged)} for one network: means over the seeds that did not diverge;
    "diverged" only if every seed did."""
    out = {}
    for lr in sorted({r.lr for r in result.select(norm=norm)}):
        runs = result.select(norm=norm, lr=lr)
        ok = [r for r in runs if r.status == "ok"]
        out[lr] = (float(_nan(np.nanmean, [final(r, "train_acc") for r in ok])) if ok else float("nan"),
                   float(_nan(np.nanmean, [final(r, "test_acc") for r in ok])) if ok else float("nan"),
                   not ok)
    return out


def claim_bjorck_lr_sweep(result) -> list:
    """Bjorck et al.'s Fig. 1 (paper-spec.md 11.2), on means over seeds. Criteria (ours): (1) without BN the largest
    rate fails (every seed diverges, or the final training accuracy stays < 0.2); (2) at the smallest rate both
    networks learn (training accuracy >= 0.2) and their test accuracies lie within 0.05; (3) BN's best test
    accuracy comes at a rate above the smallest and beats the best of the network without BN by more than 0.01."""
    std, bn = _sweep(result, "none"), _sweep(result, "batch")
    lrs = sorted(std)
    lo, hi = lrs[0], lrs[-1]
    txt = lambda t: "diverged" if t[2] else f"train {t[0]:.3f}, test {t[1]:.3f}"  # noqa: E731
    fails = std[hi][2] or not std[hi][0] >= SWEEP_FAILED_ACC
    c1 = Claim(f"without BatchNorm the largest learning rate ({hi:g}) fails", f"standard at lr {hi:g}: "
               f"{txt(std[hi])}; with BN: {txt(bn[hi])}", bool(fails))
    gap = abs(bn[lo][1] - std[lo][1])
    learned = min(bn[lo][0], std[lo][0]) >= SWEEP_FAILED_ACC
    c2 = Claim(f"at the smallest rate ({lo:g}) both networks reach about the same test accuracy",
               f"test accuracy {bn[lo][1]:.3f} with BN vs {std[lo][1]:.3f} without (gap {gap:.3f}; criterion 0.05, "
               f"and both must have learned: final training accuracy >= {SWEEP_FAILED_ACC:g})"
               + ("" if learned else "; at least one network has not learned at this rate yet"),
               bool(np.isfinite(gap) and gap <= 0.05 and learned))
    best = lambda d: max(d, key=lambda lr: -1.0 if not np.isfinite(d[lr][1]) else d[lr][1])  # noqa: E731
    b_bn, b_std = best(bn), best(std)
    c3 = Claim("with BatchNorm a larger learning rate gives the best test accuracy, better than any rate without BN",
               f"best with BN: {bn[b_bn][1]:.3f} at lr {b_bn:g}; best without: {std[b_std][1]:.3f} at lr {b_std:g} "
               f"(criterion: a margin of {SWEEP_MARGIN:g})",
               bool(b_bn > lo and bn[b_bn][1] > std[b_std][1] + SWEEP_MARGIN))
    return [c1, c2, c3]


def depth_profile_table(result, every: int = 4) -> str:
    """The scale (root mean square) of every ``every``-th block's output at initialisation, per network, and the
    ratio of the last block's to the first's: Bjorck et al.'s growth of activations with depth without BN."""
    rms = {n: result.arrays[f"{n}/block_rms"] for n in BEYOND_NETS}
    n_blocks = len(rms["none"])
    idx = sorted(set(range(0, n_blocks, every)) | {n_blocks - 1})
    rows = [[f"#{i + 1}"] + [f"{float(rms[n][i]):.3g}" for n in BEYOND_NETS] for i in idx]
    rows.append(["last / first"] + [f"{float(rms[n][-1] / rms[n][0]):.3g}" for n in BEYOND_NETS])
    return table(rows, ["block"] + [f"output rms at init, {NORM_LABELS[n]}" for n in BEYOND_NETS])
