"""Why a claim did not reproduce: every "not reproduced" or "mixed" verdict at the shipped scale gets one reason from
a fixed set, the limit or choice it names, and one sentence of evidence; and every claim gets the caveat of its own
scale (a VGG verdict at 1/16 width is not a deep linear network's verdict at the paper's size).

The reasons are our reading of the runs, written after the verdicts were seen; each chapter module holds its own
(``Chapter.triage``), and the chapters give the evidence in full. ``tests/test_triage.py`` checks that every not-reproduced or mixed verdict at ``cpu`` has one and none is stale.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from .config import PAPER_SETTINGS
from .scales import PAPER, get_scale

REASONS = {
    "scale": "limited by our scale",
    "design": "our design choice",
    "paper size": "at the paper's size, so likely genuine for our reading",
    "architecture": "architecture or initialisation",
}
LIMITS = {"scale": ("width", "steps", "plateau share", "data set"), "paper size": ("loss reading", "")}


@dataclass(frozen=True)
class Triage:
    """Why one claim did not reproduce: ``reason`` (a key of REASONS), the ``limit`` or choice it names, and one
    sentence of evidence."""

    reason: str
    limit: str
    evidence: str

    def __post_init__(self):
        if self.reason not in REASONS:
            raise ValueError(f"unknown reason {self.reason!r}; one of {sorted(REASONS)}")
        if self.reason in LIMITS and self.limit not in LIMITS[self.reason]:
            raise ValueError(f"a {self.reason!r} reason names one of {LIMITS[self.reason]}, got {self.limit!r}")

    def text(self) -> str:
        return f"{REASONS[self.reason]} ({self.limit}): {self.evidence}" if self.limit else \
            f"{REASONS[self.reason]}: {self.evidence}"


def why(claim_id: str) -> str:
    """The reason a claim did not reproduce at the shipped scale, in words ("" when it has none)."""
    from . import chapters
    t = chapters.triage().get(claim_id)
    return t.text() if t else ""


def _width(w: float) -> str:
    f = Fraction(w).limit_denominator(64)
    return "full width" if f == 1 else f"{f} of the width"


def scale_caveat(experiment: str, scale) -> str:
    """What a verdict of ``experiment`` at ``scale`` stands for, measured against the paper's sizes."""
    from .experiments import get
    from .results import DATASET_NAMES
    s, exp = get_scale(scale), get(experiment)
    data = DATASET_NAMES.get(s.dataset, s.dataset)
    paper_vgg = f"the paper: full width, {PAPER.vgg_steps:,} steps on CIFAR-10"
    if exp.network == "dln":
        d = PAPER_SETTINGS["dln"]
        size = "the paper's size" if s.dln_steps == PAPER.dln_steps else f"the paper trains {PAPER.dln_steps:,}"
        return f"DLN {d['depth']} x {d['dim']}x{d['dim']}, {s.dln_steps:,} full-batch steps: {size}"
    resnet = lambda depth, what: (f"ResNet-{depth} at {_width(s.resnet.width)}, {what} on {data} "  # noqa: E731
                                  f"(Bjorck et al.: ResNet-{PAPER.resnet.depth}, full width)")
    if exp.network in ("resnet", "resnet20"):
        return resnet(20 if exp.network == "resnet20" else s.resnet.depth, f"{s.resnet.steps or s.vgg_steps:,} steps")
    if experiment == "bjorck_step_size_resnet":
        return resnet(s.resnet.depth, f"the first {s.step_size.batches} mini-batches")
    if experiment == "theory":
        return f"a {s.theory.hidden}-unit BN layer on {data}, batch sizes {', '.join(map(str, s.theory.batch_sizes))}"
    steps = {"vgg_long": s.vgg_long_steps or s.vgg_steps, "vgg": s.vgg_steps}.get(exp.network) or \
        {"sharpness": s.sharpness.steps, "loss_surface": s.surface.steps}.get(experiment) or s.vgg_steps
    what = f"the first {s.step_size.batches} mini-batches" if experiment == "bjorck_step_size" else f"{steps:,} steps"
    return f"VGG at {_width(s.vgg_width)}, {what} on {data} ({paper_vgg})"


__all__ = ["REASONS", "Triage", "why", "scale_caveat"]
