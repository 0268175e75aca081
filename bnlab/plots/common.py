"""Helpers shared by the figure modules: seed averaging and smoothing."""
import warnings

import numpy as np



def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average that ignores NaN (diverged tails stay NaN)."""
    if window <= 1:
        return y
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(y)
    c = np.cumsum(np.where(ok, y, 0.0))
    n = np.cumsum(ok)
    c = np.concatenate([[0.0], c])
    n = np.concatenate([[0], n])
    idx = np.arange(len(y))
    lo = np.maximum(0, idx + 1 - window)
    cnt = n[idx + 1] - n[lo]
    out = (c[idx + 1] - c[lo]) / np.maximum(cnt, 1)
    out[~ok] = np.nan
    return out


def band(ax, x, ys, colour, label, log=False, style="-", alpha=0.2):
    """Mean over seeds as a line, min-max over seeds as a shaded band."""
    ys = np.atleast_2d(ys)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mid = np.exp(np.nanmean(np.log(ys), 0)) if log else np.nanmean(ys, 0)
        lo, hi = np.nanmin(ys, 0), np.nanmax(ys, 0)
    ax.plot(x, mid, style, color=colour, label=label, lw=1.6)
    if ys.shape[0] > 1:
        ax.fill_between(x, lo, hi, color=colour, alpha=alpha, lw=0)
