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
    if not len(a):
        return float("nan")
    if key == "test_acc":
        return float(a[-1])
    n = max(1, int(len(a) * frac))
    return float(_nan(np.nanmean, a[-n:])) if run.status == "ok" else float("nan")


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
