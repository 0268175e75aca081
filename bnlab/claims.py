"""The claims the book tests, as data, and how they are judged: each claim with its criterion fixed in code, judged
per seed. The claims themselves live with their chapters (``bnlab/chapters/<slug>.py``); :func:`registry` collects them.

A :class:`ClaimSpec` names the paper's statement (with its number where the paper gives one), the experiment,
the statistic and the criterion; its ``measure(result, seed)`` returns the effect for one seed and whether the
criterion holds there. :func:`judge` turns that into a :class:`Verdict` over the seeds:

- **reproduced**: the criterion holds in every seed;
- **not reproduced**: it holds in none;
- **mixed**: the seeds disagree;
- **not meaningful**: smoke scale, fewer seeds than the claim needs, or a run it compares diverged where the claim
  is about training.

Every verdict is shown with its effect (median over seeds), the per-seed range and the scale. Chapters show their
claims' verdicts (:func:`verdicts`); ``python -m bnlab claims`` and the scorecard page list them all.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from .criteria import RULES
from .statistics import analysis_seeds
from .tables import Table

VERDICTS = ("reproduced", "not reproduced", "mixed", "not meaningful")
# the words an identity check and an erratum are judged in (holds / fails, confirmed / not): never "reproduced"
CHECK_VERDICTS = {"identity": ("holds", "fails", "not meaningful"),
                  "erratum": ("confirmed", "not confirmed", "not meaningful")}
MIN_SEEDS = 3            # a claim about training needs this many seeds before it gets a verdict
# What a claim is. Only a paper's own claims (and the predictions we registered) are reproduced or not; an identity
# check says whether the algebra and our code agree, an erratum whether a printed statement is wrong.
KINDS = {"paper": "a paper's claim", "extension": "our extension (a claim the papers do not make, or a paper's "
         "claim at a setting it did not test)", "prediction": "a prediction of our own explanation, registered "
         "before its runs", "identity": "an identity check (the algebra, or our code)", "erratum": "an erratum (a "
         "printed statement that is wrong)"}


class Criterion(str):
    """A criterion in words that knows the rule (``bnlab.criteria.RULES``) that decides it."""

    def __new__(cls, text: str, rule: str):
        if rule not in RULES:
            raise KeyError(f"unknown rule {rule!r}; one of {sorted(RULES)}")
        obj = super().__new__(cls, text)
        obj.rule = rule
        return obj


def criterion(rule: str, lead: str = "") -> Criterion:
    """The criterion of ``rule`` in words (after ``lead``), tied to the rule."""
    return Criterion(f"{lead} {RULES[rule].text()}".strip(), rule)


def ics_contrast() -> Criterion:
    return Criterion(f"BN's {RULES['uncorrelated'].text()}, and the standard network's {RULES['aligned'].text()}, at "
                     "every layer", "uncorrelated")


@dataclass(frozen=True)
class ClaimSpec:
    """One tested claim. ``measure(result, seed) -> (effect, holds)`` for one seed (``seed`` None for an analysis
    that is one computation; an analysis that trains per seed is judged per seed); ``arms``: the (norm, lr) pairs
    it compares, whose common seeds are judged."""

    id: str
    experiment: str
    paper: str                   # the statement we test, with the paper's number where it gives one
    statistic: str               # what ``measure`` returns as the effect, per seed
    criterion: str               # when the claim holds for one seed, in words (the code is ``measure``)
    measure: Callable
    arms: tuple = ()             # (norm, lr) pairs; () for an analysis (judged over its ``seeds`` where it has them)
    needs_training: bool = True  # a diverged run makes the verdict "not meaningful"
    min_seeds: int = MIN_SEEDS
    effect_format: str = ".3g"
    source: str = "Santurkar et al. 2018"
    prediction: str = ""         # the verdict an explanation of ours predicts, registered before the runs that judge it
    kind: str = "paper"          # a key of KINDS
    registered_in: str = ""      # the commit that registered it before the runs that judge it ("": after them)
    chapter: str = ""            # the chapter's notebook name, filled in from _toc.yml (bnlab.chapters.claims)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id!r}: unknown kind {self.kind!r}; one of {sorted(KINDS)}")
        if self.kind in ("extension", "prediction", "erratum"):     # ours, whatever statement they test
            object.__setattr__(self, "source", "ours")

    @property
    def registered(self) -> str:
        """"before" or "after" the numbers that judge it were first seen (from git history: ``registered_in``)."""
        return "before" if self.registered_in else "after"

    @property
    def rule(self) -> str:
        """The wording rule (``bnlab.criteria.RULES``) that decides this claim."""
        return getattr(self.criterion, "rule", "")


@dataclass
class Verdict:
    """A claim judged on one result: per-seed effects and outcomes, and the verdict over them."""

    spec: ClaimSpec
    scale: str
    seeds: list
    effects: list
    holds: list
    verdict: str
    why: str = ""

    @property
    def effect(self) -> float:
        """The median effect over the seeds."""
        v = [e for e in self.effects if not np.isnan(e)]
        return float(np.median(v)) if v else float("nan")

    @property
    def seed_range(self) -> tuple:
        v = [e for e in self.effects if not np.isnan(e)]
        return (min(v), max(v)) if v else (float("nan"), float("nan"))

    @property
    def seed_count(self) -> str:
        """How many seeds were judged ("-" for an analysis that is one computation)."""
        return "-" if self.seeds == [None] else str(len(self.seeds))

    def ours(self) -> str:
        """The effect and its per-seed range, as the tables show it."""
        f = self.spec.effect_format
        if not self.effects:
            return "-"
        if len(self.effects) == 1:
            return format(self.effect, f)
        lo, hi = self.seed_range
        return f"{format(self.effect, f)} (seeds: {format(lo, f)} to {format(hi, f)})"

    def row(self) -> list:
        verdict = self.verdict + (f" ({self.why})" if self.why else "")
        return [self.spec.id, self.spec.paper, self.spec.criterion, self.ours(), verdict, self.scale, self.seed_count]

    def __str__(self):
        return f"[{self.verdict}] {self.spec.id}: {self.spec.paper}\n    {self.spec.statistic}: {self.ours()}" + \
            (f"; {self.why}" if self.why else "")

    def _repr_html_(self) -> str:
        return table([self])._repr_html_()


COLUMNS = ["claim", "statement", "criterion (per seed)", "ours: median (seed range)", "verdict", "scale", "seeds"]


def table(found: list) -> Table:
    """Verdicts as a table (one row per claim) that a notebook shows as HTML with lines that wrap."""
    return Table([v.row() for v in found], columns=COLUMNS)


# ---- judging -------------------------------------------------------------------------------------------------
def common_seeds(result, arms) -> list:
    """The seeds every compared arm has (sorted)."""
    sets = [{r.seed for r in result.select(norm=n, lr=lr)} for n, lr in arms]
    return sorted(set.intersection(*sets)) if sets else []


def _seed_list(seeds) -> str:
    seeds = [s for s in seeds if s is not None]
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds)) if seeds else "the computation"


def judge(spec: ClaimSpec, result) -> Verdict:
    """The verdict of ``spec`` on ``result`` (see the module docstring for the rules)."""
    seeds = common_seeds(result, spec.arms) if spec.arms else analysis_seeds(result)
    effects, holds, unmet = [], [], []
    for seed in seeds:
        effect, ok, *reason = spec.measure(result, seed)
        effects.append(float(effect))
        holds.append(None if ok is None else bool(ok))
        if ok is None:                       # a precondition of the claim failed in this seed
            unmet.append((seed, reason[0]))
    why = ""
    if result.scale == "smoke":
        why = "smoke scale: a few steps of noise"
    elif len(seeds) < spec.min_seeds:
        why = f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}; the criterion needs {spec.min_seeds}"
    elif spec.needs_training and any(r.status == "diverged" for n, lr in spec.arms
                                     for r in result.select(norm=n, lr=lr) if r.seed in seeds):
        why = "a compared run diverged"
    elif unmet:
        why = "; ".join(f"precondition failed in {_seed_list([sd for sd, r in unmet if r == reason])}: {reason}"
                        for reason in dict.fromkeys(r for _, r in unmet))
    if why:
        verdict = "not meaningful"
    elif all(holds):
        verdict = CHECK_VERDICTS.get(spec.kind, VERDICTS)[0]
    elif not any(holds):
        verdict = CHECK_VERDICTS.get(spec.kind, VERDICTS)[1]
    else:
        verdict = "mixed"
    return Verdict(spec, result.scale, seeds, effects, holds, verdict, why)


def specs(experiment: str | None = None, chapter: str | None = None) -> list:
    return [s for s in registry() if (experiment is None or s.experiment == experiment)
            and (chapter is None or s.chapter == chapter)]


def verdicts(result, chapter: str | None = None, ids=None) -> Table:
    """The table of the registered claims on ``result``'s experiment (those of ``chapter``, or the ``ids``)."""
    chosen = [s for s in specs(result.experiment, chapter) if ids is None or s.id in ids]
    return table([judge(s, result) for s in chosen])


def get(claim_id: str) -> ClaimSpec:
    for s in registry():
        if s.id == claim_id:
            return s
    raise KeyError(f"unknown claim {claim_id!r}; `python -m bnlab claims` lists them")


# ---- the registry: every chapter module's claims (bnlab.chapters) -------------------------------------------------
def bn_pair(lr: float) -> tuple:
    """The arms a BN-against-standard claim compares at ``lr``."""
    return (("none", lr), ("batch", lr))


def registry() -> tuple:
    """Every registered claim, in the book's order (each chapter module declares its own)."""
    from . import chapters
    return chapters.claims()


def classify(specs, kinds: dict = {}, registered_in: dict = {}, predictions: dict = {}) -> tuple:  # noqa: B006
    """A chapter's claims with their kind (``kinds``: {kind: claim ids}; "paper" otherwise), the commit that registered
    a criterion before the runs that judge it (``registered_in``: {claim id: commit}; the others were registered
    after their first numbers were seen) and the verdict a registered prediction expects (``predictions``)."""
    kind_of = {i: kind for kind, ids in kinds.items() for i in ids}
    unknown = (set(kind_of) | set(registered_in) | set(predictions)) - {s.id for s in specs}
    if unknown:
        raise KeyError(f"classify: no claim {sorted(unknown)} in this chapter")
    return tuple(replace(s, kind=kind_of.get(s.id, "paper"), registered_in=registered_in.get(s.id, ""),
                         prediction=predictions.get(s.id, "")) for s in specs)


def __getattr__(name):
    if name == "REGISTRY":
        return registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---- every claim at once (the CLI and the scorecard) ----------------------------------------------------------
def judge_all(load, scale: str | None = None) -> list:
    """A :class:`Verdict` (or, where no result is found, a row saying so) per registered claim. ``load(experiment,
    scale)`` returns a result or raises (``bnlab.results.load`` for the shipped caches)."""
    found, cache = [], {}
    for spec in registry():
        if spec.experiment not in cache:
            try:
                cache[spec.experiment] = load(spec.experiment, scale)
            except Exception as err:  # noqa: BLE001  (missing or stale result: say so in its row)
                cache[spec.experiment] = err
        res = cache[spec.experiment]
        if isinstance(res, Exception):
            found.append(Verdict(spec, scale or "-", [], [], [], "not meaningful", f"no result: {res}"))
        else:
            found.append(judge(spec, res))
    return found


__all__ = ["ClaimSpec", "Criterion", "Verdict", "VERDICTS", "CHECK_VERDICTS", "KINDS", "MIN_SEEDS", "judge", "verdicts",
           "specs", "get", "table", "judge_all", "registry", "classify", "bn_pair", "criterion", "ics_contrast"]
