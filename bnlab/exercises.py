"""The chapters' exercises that train: one small run of the reader's own (smoke scale by default), its cost printed
before it starts. Shared by every chapter whose exercises train (``bnlab.chapters.batchnorm``, ``landscape``,
``bjorck``), so it lives outside the chapter modules."""
from __future__ import annotations

EXERCISE_GFLOPS = 5.0    # [ours] a rough rate for a laptop CPU at these tiny sizes (a busy 2-core CI machine does ~5)


def exercise_cost(cfgs) -> str:
    """One line: how many runs and steps ``cfgs`` (RunConfigs) take, their GFLOP (``bnlab.flops``) and a rough time
    at :data:`EXERCISE_GFLOPS` plus a second per run to build it and load its data."""
    from .flops import run_flops
    gflop = sum(run_flops(c)["total"] for c in cfgs) / 1e9
    seconds = gflop / EXERCISE_GFLOPS + len(cfgs)
    return (f"cost: {len(cfgs)} run(s), {sum(c.train.steps for c in cfgs)} training steps in all, {gflop:.0f} GFLOP: "
            f"roughly {seconds:.0f} s on a laptop CPU")


def exercise_configs(norms, lr, network: str = "vgg", scale: str = "smoke", seed: int = 0, probes: bool = False,
                     steps: int | None = None) -> list:
    """The RunConfig of each (norm, lr) pair of ``norms`` x ``lr`` (one or a list of each) (``bnlab.recipes.RUN_BUILDERS[network]`` at
    ``scale``), without the probes unless ``probes`` (they cost several times the training), ``steps`` overriding the
    scale's length."""
    from dataclasses import replace
    from .config import ProbeConfig
    from .recipes import RUN_BUILDERS
    from .scales import get_scale
    out = []
    for norm in ([norms] if isinstance(norms, str) else norms):
        for rate in (lr if isinstance(lr, (list, tuple)) else [lr]):
            cfg = RUN_BUILDERS[network](get_scale(scale), norm, rate, seed)
            cfg = cfg if probes else replace(cfg, probe=ProbeConfig())
            out.append(cfg if steps is None else replace(cfg, train=replace(cfg.train, steps=steps,
                                                                             eval_every=min(cfg.train.eval_every, steps))))
    return out


def exercise_runs(cfgs, scale: str = "smoke") -> dict:
    """Print :func:`exercise_cost`, then train each of ``cfgs`` (no progress bar) and return {(norm, lr): its Run}.
    The runs go through the reader's run store like any other, so running an exercise again reads it back."""
    from .plan import RunPlan
    from .runner import run_one
    print(exercise_cost(cfgs), flush=True)
    plan = RunPlan.from_env(scale=scale, progress=False)
    return {(c.model.norm, c.train.lr): run_one(c.to_dict(), plan)[0] for c in cfgs}
