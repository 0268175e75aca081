"""Numbers in the prose come from the data: a chapter glues each result it reports, and its markdown inserts it
with myst-nb's ``{glue:text}`name``` role, so the text changes when the cached result does.

:func:`glue` writes what ``myst_nb.glue(name, value, display=False)`` writes (a hidden display output with the
``scrapbook`` metadata the book's build reads), without importing myst-nb, so a chapter runs on Colab too.
Values are glued as formatted text, the same on every machine.
"""
from __future__ import annotations

import numpy as np
from IPython.display import display

from .claims import judge, specs

GLUE_PREFIX = "application/papermill.record/"   # myst-nb's mime prefix for a glued value that is not displayed


class Text(str):
    """A string shown without quotes (its repr is itself): what ``{glue:text}`` inserts."""

    def __repr__(self):
        return str(self)


def fmt(value, spec: str = ".3g") -> Text:
    """``value`` formatted with ``spec`` (NaN as "n/a"); strings pass through."""
    if isinstance(value, str):
        return Text(value)
    v = float(value)
    return Text("n/a" if not np.isfinite(v) else format(v, spec))


def _number(value):
    return float(value) if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool) \
        else None


def glue(name: str, value, spec: str = ".3g", per_seed=None) -> Text:
    """Record ``value`` (formatted with ``spec``) under ``name`` for ``{glue:text}`name``` in the chapter's
    markdown; shows nothing. Returns the text. The unformatted value and, for a statistic pooled over seeds, its
    value in each seed go into the output's metadata (``bnlab``), for the checks of the prose."""
    text = fmt(value, spec)
    meta = {"scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX}}
    raw = _number(value)
    if raw is not None and np.isfinite(raw):
        meta["bnlab"] = {"raw": raw}
        if per_seed is not None and len(per_seed) > 1:
            meta["bnlab"]["per_seed"] = [v if np.isfinite(v) else None for v in map(float, per_seed)]
    # quoted, as myst_nb.glue stores a string: the book's build reads text/plain back with ast.literal_eval, which
    # would turn an unquoted "0.20" into 0.2 and "150,191" into the tuple (150, 191)
    display({GLUE_PREFIX + "text/plain": str.__repr__(text)}, raw=True, metadata=meta)
    return text


def seeds_disagree(values, bounds=()) -> bool:
    """Whether per-seed values disagree: they differ in sign, spread over more than a factor of two, or fall on both
    sides of a bound (fractions within the "comparable" tolerance of 0.02 agree). A sentence may not rest on their
    pooled value alone."""
    v = [float(x) for x in values if x is not None and np.isfinite(x)]
    if len(v) < 2:
        return False
    lo, hi = min(v), max(v)
    if max(abs(lo), abs(hi)) <= 1 and hi - lo <= 0.02:
        return False
    if lo < 0 < hi or (lo > 0 and hi / lo > 2) or (hi < 0 and lo / hi > 2):
        return True
    return any(lo < b < hi for b in bounds)


def glue_all(values: dict) -> None:
    """Glue each ``name: (value, spec)`` of ``values`` (what a chapter's passages return, ``bnlab.passages``). Where the
    value pools seeds that disagree, its per-seed range is glued too, as ``<name>_seed_low`` and ``<name>_seed_high``."""
    per_seed = getattr(values, "per_seed", {})
    for name, (value, spec) in values.items():
        seeds = per_seed.get(name)
        glue(name, value, spec or ".3g", seeds)
        if seeds and seeds_disagree(seeds):
            finite = [x for x in seeds if np.isfinite(x)]
            glue(f"{name}_seed_low", min(finite), spec or ".3g")
            glue(f"{name}_seed_high", max(finite), spec or ".3g")


def glue_claims(result, chapter: str | None = None) -> list:
    """Glue every registered claim of ``result``'s experiment (and ``chapter``): ``<id>_verdict``, ``<id>_effect``
    (median over seeds), ``<id>_low`` and ``<id>_high`` (the per-seed range), ``<id>_seeds``. Returns the verdicts."""
    found = [judge(s, result) for s in specs(result.experiment, chapter)]
    for v in found:
        f = v.spec.effect_format
        lo, hi = v.seed_range
        glue(f"{v.spec.id}_verdict", v.verdict)
        glue(f"{v.spec.id}_effect", v.effect, f, v.effects)
        glue(f"{v.spec.id}_low", lo, f)
        glue(f"{v.spec.id}_high", hi, f)
        glue(f"{v.spec.id}_seeds", str(len(v.seeds)))
    return found


__all__ = ["glue", "glue_all", "seeds_disagree", "glue_claims", "fmt", "Text", "GLUE_PREFIX"]
