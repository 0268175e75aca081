"""Figures for the book, one module per kind of figure; every chapter uses the same palette (``style``)."""
from .analyses import (depth_profile_figure, sharpness_figure, step_size_figure, surface_3d_figure, surface_contour_figure,
                     surface_slice_figure)
from .findings import verdict_map
from .distributions import distribution_figure, histogram_figure, moments_figure, scale_figure
from .ics import ics_figure
from .landscape import landscape_figure, predictiveness_vs_distance, rescaling_figure
from .scale_invariance import dynamics_figure, population_figure
from .signal import explosion_figure, rank_figure, residual_figure, trainability_figure
from .style import NORM_COLOURS, setup
from .theory import lemma45_figure, theorem41_figure, theorem42_figure
from .training import curves, training_figure

__all__ = ["setup", "NORM_COLOURS", "training_figure", "curves", "distribution_figure", "histogram_figure",
           "moments_figure", "scale_figure", "rescaling_figure", "ics_figure", "landscape_figure", "predictiveness_vs_distance",
           "theorem41_figure", "theorem42_figure", "lemma45_figure", "step_size_figure", "sharpness_figure",
           "surface_contour_figure", "surface_3d_figure", "surface_slice_figure", "depth_profile_figure", "verdict_map",
           "rank_figure", "explosion_figure", "trainability_figure", "residual_figure", "dynamics_figure",
           "population_figure"]
