"""Why a claim did not reproduce: every "not reproduced" or "mixed" verdict at the shipped scale gets one reason from
a fixed set, the limit or choice it names, and one sentence of evidence; and every claim gets the caveat of its own
scale (a VGG verdict at 1/16 width is not a deep linear network's verdict at the paper's size).

The reasons are our reading of the runs, written after the verdicts were seen; the chapters give the evidence in
full. ``tests/test_triage.py`` checks that every not-reproduced or mixed verdict at ``cpu`` has one and none is stale.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from .config import PAPER, PAPER_SETTINGS, get_scale

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


_WIDTH = ("not the length of training: trained six times longer (the longer reading, where the standard VGG's initial "
          "plateau is a thirtieth of the probes instead of a fifth) the ratio is no closer to the factor of two, so our "
          "plateau explanation failed; the width and the data set remain untested, and the edge of stability, where "
          "both networks' beta sits near 2/lr, predicts no factor of two at any size")
_EOS = ("between its episodes each network trains at the edge of stability, where the learning rate, not the network, "
        "sets the curvature along the gradient; in some seeds the standard network stalls on a flat plateau")
_STALLED = ("at lr 0.01 the standard VGG stays on its plateau for most of the 1,000 steps: there is no trained standard "
            "network to compare")
_AVERAGED = "the averaged-loss reading takes steps 1,000 times shorter, and BN reaches the edge of stability in some seeds only"

# The verdicts at the shipped cpu scale that are not reproduced or mixed, and why we think so.
TRIAGE = {
    "noisy_bn_trains_like_bn": Triage("scale", "width", "noisy BN ends a few points below BN in every seed; our guess "
                                      "is that at 1/16 width each layer's noise averages over 16 times fewer channels"),
    "noisy_bn_beats_standard": Triage("scale", "steps", "noisy BN is ahead of the standard network in every seed, but "
                                      "after 1,000 steps not by the margin 'far better' asks in all of them; BN itself "
                                      "leads by only a few points at this length"),
    "noisy_bn_less_stable": Triage("scale", "plateau share", "the standard network's deep inputs grow from almost "
                                   "zero while it leaves its plateau; over the second half of training noisy BN's "
                                   "means do move more at every layer (chapter 3)"),
    "relative_noise_stops_standard": Triage("design", "noise relative to each channel's spread", "noise scaled to "
                                            "the activations slows the standard network but does not stop it; the "
                                            "paper's absolute control is a claim of its own"),
    "ics_dln_contrast_summed": Triage("paper size", "", "the DLN runs at the paper's size; with BN, G and G' are "
                                      "aligned at one layer and opposed at the other, and the standard network's "
                                      "steps overshoot too (chapter 4)"),
    "ics_dln_contrast_averaged": Triage("paper size", "loss reading", "with steps this small BN's G' hardly turns in "
                                        "most seeds; where it does, it points against G: opposed, not uncorrelated"),
    "predictive_gradients_vgg": Triage("scale", "width", _WIDTH),
    "smaller_beta_vgg": Triage("scale", "width", _WIDTH),
    "smaller_scaled_beta_vgg": Triage("scale", "width", "the same gap as beta's: both networks' weights have about the "
                                      "same norm, so the rescaled measure tells beta's story; " + _WIDTH),
    "predictive_gradients_vgg_long": Triage("scale", "width", _WIDTH),
    "smaller_beta_vgg_long": Triage("scale", "width", _WIDTH),
    "smaller_scaled_beta_vgg_long": Triage("scale", "width", "the same gap as beta's; " + _WIDTH),
    "predictive_gradients_early_vgg_long": Triage("design", "the early window, steps 200-500", "as in the short "
                                                  "reading, a window where the standard network leaves its plateau; "
                                                  "the verdict held as registered, though the values moved: the runs "
                                                  "differ from the short ones from their first steps by rounding "
                                                  "(another CPU), which training amplifies"),
    "smoother_loss_vgg_lr0.01": Triage("scale", "steps", _STALLED),
    "predictive_gradients_vgg_lr0.01": Triage("scale", "steps", _STALLED),
    "smaller_beta_vgg_lr0.01": Triage("scale", "steps", _STALLED),
    "predictive_gradients_early_vgg": Triage("design", "the early window, steps 200-500", "at our length this window "
                                             "is where the standard network leaves its plateau; the paper's 'early' "
                                             "is in a run 15 times longer"),
    "smoother_loss_dln_summed": Triage("paper size", "", _EOS),
    "predictive_gradients_dln_summed": Triage("paper size", "", _EOS),
    "smaller_beta_dln_summed": Triage("paper size", "", _EOS),
    "smaller_scaled_beta_dln_summed": Triage("paper size", "", "the weight norms hardly change, so the rescaled "
                                             "measure tells beta's story: " + _EOS),
    "smoother_loss_dln_averaged": Triage("paper size", "loss reading", _AVERAGED),
    "predictive_gradients_dln_averaged": Triage("paper size", "loss reading", _AVERAGED),
    "smaller_beta_dln_averaged": Triage("paper size", "loss reading", _AVERAGED),
    "l1_better_than_bn_dln": Triage("paper size", "", "after 10,000 steps l1 and BN end at the same loss, a tie; l1 "
                                    "is ahead earlier in training in every seed (chapter 6)"),
    "linf_beats_standard_dln": Triage("paper size", "", "l-inf lowers the loss in most seeds but not in all; the "
                                      "standard network's seeds differ most (chapter 6)"),
    "thm44_bn_below_vanilla": Triage("architecture", "", "in our network the pre-BN activations are not large, so "
                                     "gamma/sigma gives little; BN's worst case is the smaller one for most units "
                                     "but not at every batch size and phase (chapter 7)"),
    "step_size_onset_init": Triage("architecture", "", "without BN our VGG starts on a flat plateau (vanishing signal), "
                                   "not at the edge of an explosion as Bjorck et al.'s deep ResNet does"),
    "step_size_range_init": Triage("architecture", "", "without BN our VGG starts on a flat plateau (vanishing "
                                   "signal), not at the edge of an explosion"),
    "step_size_onset_median": Triage("architecture", "", "the same plateau: over the mini-batches the VGG without BN "
                                     "has no explosive regime to find"),
    "step_size_range_median": Triage("architecture", "", "the same plateau: over the mini-batches the VGG without BN "
                                     "has no explosive regime to find"),
    "step_size_onset_median_resnet": Triage("architecture", "", "the ResNet without BN explodes only until its first "
                                            "step, which knocks it onto a chance-level plateau (chapter 8)"),
    "step_size_range_median_resnet": Triage("architecture", "", "the ResNet without BN explodes only until its first "
                                            "step, which knocks it onto a chance-level plateau (chapter 8)"),
    "sweep_standard_fails_at_0.1_resnet20": Triage("architecture", "", "a ResNet-20's output does not explode at "
                                                   "initialisation, so without BN lr 0.1 can train, and does in some seeds"),
    "sharpness_smaller_with_bn": Triage("design", "our extension", "both networks train at the edge of stability, "
                                        "where the learning rate sets the top eigenvalue, not the network (chapter 9)"),
    "wider_basin_with_bn": Triage("design", "our extension", "Li et al.'s filter-normalised directions after 500 "
                                  "steps on 512 images; BN's basin is the narrower one in every seed"),
    "rescaled_beats_standard": Triage("architecture", "", "one seed of the fixed rescaling blows up late in training "
                                      "and stalls at chance; the others are ahead"),
    "more_than_rescaling": Triage("design", "the factor of two", "the rescaled network's beta and gradient change are "
                                  "larger than BN's in every seed, but by less than the factor the smoothness claims ask"),
}


def why(claim_id: str) -> str:
    """The reason a claim did not reproduce at the shipped scale, in words ("" when it has none)."""
    t = TRIAGE.get(claim_id)
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


__all__ = ["REASONS", "Triage", "TRIAGE", "why", "scale_caveat"]
