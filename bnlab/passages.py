"""The numbers a chapter's prose reports, computed from its results: the mechanism.

A chapter module (``bnlab/chapters/<slug>.py``) writes one function per passage that needs more than a table shows,
decorated with :func:`passage`: it returns ``{glue name: (value, format spec)}``, and the chapter's ``show`` glues
them (``bnlab.glue.glue_all``) so its markdown inserts them (``{glue:text}`name```). Keeping the arithmetic in the
package keeps the notebooks thin and lets a reader see how each number in the text is made. The helpers at the end
are the ones several chapters' passages share.
"""
from __future__ import annotations

import dataclasses
import functools
import warnings

import numpy as np

from .results import Result
from .statistics import SWEEP_FAILED_ACC, analysis_seeds, final


class Passage(dict):
    """A passage's ``{glue name: (value, format spec)}``, with ``per_seed``: each name's value computed on each seed's
    runs alone (where the result has several seeds), so a check can see which pooled numbers rest on seeds that
    disagree (``tests/test_prose.py``)."""

    per_seed: dict = {}


def _one_seed(arg, seed):
    """``arg`` restricted to one seed's runs when it is a result of training runs (anything else as it is)."""
    if isinstance(arg, Result) and arg.runs:
        return dataclasses.replace(arg, runs=[r for r in arg.runs if r.seed == seed])
    return arg


def _seeds_of(args) -> list:
    sets = [{r.seed for r in a.runs} for a in args if isinstance(a, Result) and a.runs]
    return sorted(set.intersection(*sets)) if sets else []


def _quietly(fn, *args, **kw):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def passage(fn=None, *, per_seed: bool = True):
    """A passage's numbers describe the runs the text was written about (the shipped ``cpu`` scale); on a run too
    short to have them (e.g. no initial plateau in 12 smoke steps) the chapter still runs: a warning says which
    passage has no numbers, and nothing is glued for it. Each number is also computed per seed (``Passage``), unless
    the passage describes seeds it picks itself (``per_seed=False``: its numbers are per seed already)."""
    if fn is None:
        return functools.partial(passage, per_seed=per_seed)

    @functools.wraps(fn)
    def wrapper(*args, **kw):
        try:
            out = Passage(_quietly(fn, *args, **kw))
        except (ValueError, IndexError, KeyError, ZeroDivisionError) as err:
            warnings.warn(f"the numbers of {fn.__name__} cannot be computed from this result "
                          f"({type(err).__name__}: {err}); the text describes the shipped runs", stacklevel=2)
            return Passage()
        seeds = _seeds_of(args) if per_seed else []
        values = {name: [] for name in out}
        for seed in seeds if len(seeds) > 1 else ():
            try:
                one = _quietly(fn, *[_one_seed(a, seed) for a in args], **kw)
            except (ValueError, IndexError, KeyError, ZeroDivisionError):
                one = {}
            for name in out:
                v = one.get(name, (float("nan"), ""))[0]
                values[name].append(float(v) if isinstance(v, (int, float, np.floating, np.integer)) else float("nan"))
        out.per_seed = {k: v for k, v in values.items() if v}
        return out
    return wrapper


def mean_final(result, norm, lr, key, seed=None) -> float:
    return float(np.mean([final(r, key) for r in result.select(norm=norm, lr=lr, seed=seed)]))


def by_seed(pooled: Passage, name: str) -> list:
    """A passage's number ``name`` in each seed (a one-seed result: the number itself)."""
    return [v for v in pooled.per_seed.get(name, []) if np.isfinite(v)] or [pooled[name][0]]


RATE_TAGS = {0.0001: "small", 0.003: "mid", 0.1: "large"}


def span(tag, values, spec) -> dict:
    """The lowest and highest of ``values`` as ``{tag}_low`` and ``{tag}_high``."""
    return {f"{tag}_low": (min(values), spec), f"{tag}_high": (max(values), spec)}


def sweep_seeds(res, tag) -> dict:
    """Per network and rate of a learning-rate sweep, over its seeds: how many seeds, how many diverged, how many
    trained (final training accuracy >= SWEEP_FAILED_ACC), and the lowest and highest final test accuracy of the
    seeds that did not diverge (``{tag}_{std|bn}_{small|mid|large}_...``); the number of training steps."""
    out = {f"{tag}_steps": (res.runs[0].config["train"]["steps"], ".0f")}
    for norm, short in (("none", "std"), ("batch", "bn")):
        for lr, rate in RATE_TAGS.items():
            runs = res.select(norm=norm, lr=lr)
            ok = [r for r in runs if r.status == "ok"]
            test = [final(r, "test_acc") for r in ok]
            key = f"{tag}_{short}_{rate}"
            out |= {f"{key}_seeds": (len(runs), ".0f"), f"{key}_diverged": (len(runs) - len(ok), ".0f"),
                    f"{key}_trained": (sum(final(r, "train_acc") >= SWEEP_FAILED_ACC for r in ok), ".0f")}
            if test:
                out |= span(f"{key}_test", test, ".2f")
    return out


def losses(res, norm, lr, step=None) -> list:
    """The training loss of every seed of one arm at ``step`` (None: the final loss of the runs that did not diverge)."""
    runs = res.select(norm=norm, lr=lr)
    if step is None:
        return [final(r, "train_loss") for r in runs if r.status == "ok"]
    return [r.arrays["train_loss"][step] for r in runs if len(r.arrays["train_loss"]) > step]


def over_seeds(res, stats, tag, keys) -> dict:
    """The lowest and highest of ``stats(res, net, seed)[key]`` over an analysis's seeds, per network
    (``{tag}_{std|bn}_{key}_low`` / ``_high``), and the number of seeds (``{tag}_seeds``)."""
    seeds = analysis_seeds(res)
    out = {f"{tag}_seeds": (len(seeds), ".0f")}
    for net, short in (("none", "std"), ("batch", "bn")):
        per_seed = [stats(res, net, seed) for seed in seeds]
        for key, spec in keys:
            out |= span(f"{tag}_{short}_{key}", [s[key] for s in per_seed], spec)
    return out

