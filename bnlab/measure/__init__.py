"""Measurements taken during training: activation statistics, gradient-based ICS, landscape probes.

Each probe follows one protocol (``due``, ``before_forward``, ``after_backward``, ``after_step``,
``arrays``) so the training loop stays the same whatever is measured; all of them leave the run
undisturbed (parameters restored exactly, running statistics untouched, noise replayed).
"""
from .base import Probe
from .activations import ActivationProbe
from .ics import ICSProbe, gradient_ics
from .landscape import LandscapeProbe, probe_along_gradient
from .sharpness import SharpnessProbe, hessian_top


def make_probes(cfg, model, landscape_backend: str) -> list:
    """The probes a run's ProbeConfig asks for (the landscape probe with the back-end the run uses, "loop" or
    "vmap": ``bnlab.engine.EngineOptions.landscape_for``)."""
    p = cfg.probe
    if p.every == 0:
        return []
    probes = []
    if p.activation_layers:
        probes.append(ActivationProbe(model, p.activation_layers, p.activation_units, p.every, cfg.train.seed,
                                      cfg.train.steps))
    if p.ics_layers:
        probes.append(ICSProbe(p.ics_layers, p.every))
    if p.landscape:
        probes.append(LandscapeProbe(cfg.train.lr, p.landscape_range, p.landscape_points, p.landscape_log, p.every,
                                     backend=landscape_backend))
    return probes


__all__ = ["Probe", "make_probes", "ActivationProbe", "ICSProbe", "LandscapeProbe", "gradient_ics",
           "probe_along_gradient", "SharpnessProbe", "hessian_top"]
