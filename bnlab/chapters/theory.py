"""Chapter: the theory of Santurkar et al. 2018, Section 4, checked numerically: Theorems 4.1, 4.2 and 4.4 and Lemma 4.5
on a BN layer, with the printed form of Theorem 4.1 that fails (our erratum)."""
from __future__ import annotations

import numpy as np

from .. import tables, theory
from ..claims import ClaimSpec, classify, criterion
from ..criteria import printed_thm41_fails, theory_error, thm44_bn_below_vanilla
from ..experiments import Experiment
from ..passages import passage
from ..statistics import thm44_vs_vanilla
from ..triage import Triage
from . import Chapter, View

EXPERIMENTS = (
    Experiment("theory", "Sec. 4", "numerical checks of Theorems 4.1, 4.2, 4.4 and Lemma 4.5", analysis=theory.THEORY),
)

CLAIMS = classify([
    ClaimSpec("thm41_identity", "theory",
              "Thm 4.1 with the corrected 1/m factor holds as an equality", "largest relative error",
              criterion("identity"), theory_error("thm41_relerr"), needs_training=False, min_seeds=1,
              effect_format=".1e"),
    ClaimSpec("thm41_printed_bound_fails", "theory",
              "Thm 4.1 as printed (1/sqrt m) is violated somewhere (our erratum)",
              "unit-batches where the printed bound fails", criterion("somewhere"), printed_thm41_fails, needs_training=False,
              min_seeds=1, effect_format=".0f", source="ours"),
    ClaimSpec("thm42_identity", "theory", "Thm 4.2, eq. (50), holds as an equality",
              "largest relative error", criterion("identity"), theory_error("thm42_relerr"), needs_training=False,
              min_seeds=1, effect_format=".1e"),
    ClaimSpec("thm44_bn_below_vanilla", "theory",
              "Thm 4.4: with BN the worst-case gradient with respect to the weights is smaller than the vanilla "
              "network's at the same weights", "median of BN's worst case over the vanilla network's",
              criterion("lower", "BN's lower in every cell (batch size; at initialisation and after training):"), thm44_bn_below_vanilla,
              needs_training=False, min_seeds=1, effect_format=".2f"),
    ClaimSpec("lemma45_identity", "theory", "Lemma 4.5's distance identity (an identity, per unit)",
              "largest relative error", criterion("identity"), theory_error("lemma45_unit_relerr"),
              needs_training=False, min_seeds=1, effect_format=".1e"),
], kinds={"identity": ("thm41_identity", "thm42_identity", "lemma45_identity"), "erratum": ("thm41_printed_bound_fails",)})

TRIAGE = {
    "thm44_bn_below_vanilla": Triage("architecture", "", "in our network the pre-BN activations are not large, so "
                                     "gamma/sigma gives little; BN's worst case is the smaller one for most units "
                                     "but not at every batch size and phase"),
}


@passage
def theory_checks(res) -> dict:
    a = res.arrays
    t44 = thm44_vs_vanilla(res)
    worst = np.unravel_index(np.nanargmax(t44["cells"]), t44["cells"].shape)
    share_above = np.mean(a["gamma2_over_sigma2"] > 1, axis=-1)     # [phase, batch size]: gamma^2 / sigma_j^2 > 1
    return {"thm41_checked": (str(a["thm41_printed_violated"].size), ""),
            "thm41_printed_negative": (np.mean(a["thm41_rhs_printed"] < 0), ".0%"),
            "thm44_max_ratio": (a["thm44_max_ratio"], ".2f"),
            "thm44_below": (t44["below"], ".0%"), "thm44_worst_cell": (t44["worst_cell"], ".2f"),
            "thm44_worst_cell_m": (str(int(a["batch_sizes"][worst[1]])), ""),
            "thm44_worst_cell_phase": ("at initialisation" if worst[0] == 0 else "after training", ""),
            "thm44_actual_median": (t44["actual_median"], ".2f"), "thm44_actual_below": (t44["actual_below"], ".0%"),
            "gamma_sigma_above_low": (share_above.min(), ".0%"), "gamma_sigma_above_high": (share_above.max(), ".0%"),
            "gamma_sigma_above_worst": (share_above[worst], ".0%"),
            "scale_invariance_relerr": (np.max(a["lemma45_z_relerr"]), ".1e")}


@passage
def theory_details(res) -> dict:
    """Ranges over batch sizes and phases of the medians ``tables.theory_details`` shows, the median sigma and the
    smallest Hessian term of Thm 4.2."""
    a = res.arrays
    out = {"sigma_median": (np.median(a["sigma"]), ".2f"),
           "thm42_hessian_term_min": (a["thm42_term_hessian"].min(), ".1e")}
    for name, per_cell in (("shrink_median", np.median(a["thm41_shrink"], axis=-1)),
                           ("g_yhat_positive", np.mean(a["g_yhat"] > 0, axis=-1)),
                           ("quad_form_negative", np.mean(a["thm42_lhs"] < 0, axis=-1)),
                           ("top_sv_ones_cos", a["thm44_top_sv_ones_cos"])):
        out |= {f"{name}_low": (per_cell.min(), ".2f"), f"{name}_high": (per_cell.max(), ".2f")}
    return out


@passage
def lemma45(res) -> dict:
    """For how many units the rescaled optimum k W* is closer to the initial weights, and the median saving."""
    a = res.arrays
    return {"lemma45_units_closer": (str(int(np.sum(a["lemma45_unit_reduction"] > 0))), ""),
            "lemma45_units": (str(a["lemma45_unit_reduction"].size), ""),
            "lemma45_saving": (np.median(a["lemma45_unit_reduction"] / a["lemma45_unit_dist"]), ".0%")}


CHAPTER = Chapter(
    "theory",
    experiments=EXPERIMENTS,
    computes=("theory",),
    claims=CLAIMS,
    views={"theory": View((), (theory_checks,)),
           "details": View((tables.theory_details,), (theory_details,), claims=False),
           "lemma45": View((), (lemma45,), claims=False)},
    triage=TRIAGE,
    step=("theory", "The theory of Section 4"),
)

show = CHAPTER.show


# ---- exercises ------------------------------------------------------------------------------------------------------
def exercise_batch(m: int, seed: int = 0):
    """A batch of ``m`` Fashion-MNIST training images, flattened ([m, 1024], float64, standardised as in the chapter's
    checks), and their labels, drawn with ``seed``: the reader's own batch for the exercises' checks."""
    from ..config import DataConfig
    from ..data import load_images
    from ..plan import RunPlan
    from ..scales import get_scale
    subset = get_scale("smoke").theory.train_subset
    data = load_images(DataConfig("fashion_mnist", train_subset=subset, test_subset=16), root=RunPlan.from_env().data_dir)
    x, labels = next(data.batches(m, seed, dtype=theory.F64))
    return x.reshape(m, -1), labels
