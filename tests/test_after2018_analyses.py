"""The analyses of the chapter "BatchNorm after 2018" run at smoke scale in seconds and return the arrays its claims
read, with the shapes their docstrings give."""
import time
from dataclasses import asdict

import numpy as np
import pytest

from bnlab import scale_invariance as si
from bnlab import explosion as ex, signal_propagation as sp
from bnlab.scales import SCALE_BY_NAME, SMOKE
from conftest import cpu_plan, needs_fashion


@pytest.mark.parametrize("a, sizes", [(sp.RANK_COLLAPSE, sp.RANK_SIZES), (ex.GRADIENT_EXPLOSION, ex.EXPLOSION_SIZES),
                                      (ex.TRAINABILITY, ex.TRAINABILITY_SIZES), (sp.RESIDUAL_SCALING, sp.RESIDUAL_SIZES),
                                      (si.SCALE_INVARIANCE, si.SIZES)],
                         ids=["rank_collapse", "gradient_explosion", "trainability", "residual_scaling", "scale_invariance"])
def test_every_scale_has_sizes_and_the_analyses_cost_something(a, sizes):
    assert set(sizes) == set(SCALE_BY_NAME)
    for scale in SCALE_BY_NAME.values():
        assert a.flops(scale) > 0 and a.block_steps(scale) > 0
        assert a.config(scale)["sizes"] == asdict(a.sizes(scale))


def test_a_bad_size_is_refused():
    with pytest.raises(ValueError):
        ex.ExplosionSizes(depth=2, width=32, batch=32, inset_batches=(8,), dyn_lrs=(0.1,), dyn_steps=3, seeds=(0,))
    with pytest.raises(ValueError):
        si.ScaleInvSizes(vgg_width=0.0625, steps=12, batch=32, lr=0.1, multipliers=(2,), wds=(2e-2,), high_lr=0.5,
                         eval_every=6, eval_images=128, precise_batches=3, small_batches=(2,), population_arms=("k2",),
                         seeds=(0,))


def _run(analysis):
    t0 = time.perf_counter()
    out = analysis.compute(SMOKE, cpu_plan())
    return out, time.perf_counter() - t0


@needs_fashion
def test_rank_collapse_at_smoke_scale():
    out, wall = _run(sp.RANK_COLLAPSE)
    s = sp.RANK_SIZES["smoke"]
    S = len(s.seeds)
    assert wall < 60 and list(out["seeds"]) == list(s.seeds)
    for net, blocks, norms in (("vgg", 13, s.vgg_norms), ("resnet", 1 + 3 * (s.resnet_depth - 2) // 6, ("none", "batch")),
                               ("dln", 25, ("none", "batch"))):
        for n in norms:
            for k in ("srank", "cos", "gap"):
                a = out[f"{net}/{n}/{k}"]
                assert a.shape == (S, blocks) and np.all(np.isfinite(a))
            assert np.all(out[f"{net}/{n}/srank"] >= 0) and np.all(out[f"{net}/{n}/cos"] <= 1 + 1e-12)


@needs_fashion
def test_gradient_explosion_at_smoke_scale():
    out, wall = _run(ex.GRADIENT_EXPLOSION)
    s = ex.EXPLOSION_SIZES["smoke"]
    S, NL, T = len(s.seeds), len(s.dyn_lrs), s.dyn_steps
    assert wall < 60
    for n in ("batch", "none"):
        assert out[f"{n}/grad_sq"].shape == (S, s.depth) and out[f"{n}/rate"].shape == (S,)
        assert out[f"vgg/{n}/weight_grad"].shape == (S, 14)
    assert out["batch/inset_rate"].shape == (S, len(s.inset_batches))
    assert out["dyn/grad_sq"].shape == (S, NL, T + 1, s.depth) and out["dyn/D"].shape == (S, NL, T + 1)
    assert out["dyn/train_loss"].shape == (S, NL, T)
    assert np.all(np.isfinite(out["dyn/D"][:, :, 0]))
    assert float(out["theory_rate"]) == pytest.approx(np.pi / (np.pi - 1))


@needs_fashion
def test_trainability_at_smoke_scale():
    out, wall = _run(ex.TRAINABILITY)
    s = ex.TRAINABILITY_SIZES["smoke"]
    shape = (len(s.seeds), len(s.depths), len(s.lrs))
    assert wall < 60
    assert out["acc"].shape == shape and out["diverged_step"].shape == shape
    assert out["train_acc"].shape == shape + (s.steps,)
    ok = out["diverged_step"] < 0
    assert np.allclose(out["acc"][ok], out["train_acc"][ok][:, -s.window:].mean(-1))


@needs_fashion
def test_residual_scaling_at_smoke_scale():
    out, wall = _run(sp.RESIDUAL_SCALING)
    s = sp.RESIDUAL_SIZES["smoke"]
    n = (s.depth - 2) // 6
    assert wall < 30 and int(out["stage_blocks"]) == n
    for norm in ("none", "batch"):
        assert out[f"{norm}/ratio"].shape == (len(s.seeds), 3 * n)
        assert out[f"{norm}/exponent"].shape == (len(s.seeds),)
        assert np.allclose(out[f"{norm}/ratio"], np.sqrt(out[f"{norm}/branch_sq"] / out[f"{norm}/skip_sq"]))


@needs_fashion
def test_scale_invariance_at_smoke_scale():
    out, wall = _run(si.SCALE_INVARIANCE)
    s = si.SIZES["smoke"]
    S, C, E = len(s.seeds), int(out["conv_layers"]), len(si.eval_steps(s))
    assert wall < 90 and C == 13 and list(out["arms"]) == si.arm_names(s)
    assert list(out["eval_step"]) == si.eval_steps(s)
    for arm in si.arm_names(s):
        for k in ("w_sq", "g_sq", "max_cos", "pythagoras", "angle"):
            assert out[f"{arm}/{k}"].shape == (S, s.steps, C)
        assert out[f"{arm}/train_acc"].shape == (S, s.steps) and out[f"{arm}/acc_ema"].shape == (S, E)
        for k in ("acc_precise", "acc_batch"):
            assert out[f"{arm}/{k}"].shape == (S, E)
            assert np.all(np.isfinite(out[f"{arm}/{k}"])) == (arm in s.population_arms)
        assert out[f"{arm}/acc_small_batches"].shape == (S, len(s.small_batches))
    ok = np.isfinite(out["k1/pythagoras"])
    # the identity on the real network, in fp32 (a step that barely moves a large filter rounds: the median is the claim's)
    assert np.median(np.abs(out["k1/pythagoras"][ok] - 1)) < 1e-3
    assert float(out["wd0.02/delta_star"]) == pytest.approx(np.arctan(np.sqrt(2 * 0.1 * 0.02 - (0.1 * 0.02) ** 2)
                                                                      / (1 - 0.1 * 0.02)))
    assert float(out["k100/conv_lr"]) == pytest.approx(10.0) and float(out["k100/other_lr"]) == pytest.approx(0.1)


@needs_fashion
def test_the_readers_explosion_rate_grows_with_bn_and_not_without():
    """``explosion.explosion_rate``, the exercise's measurement: BN's rate near pi/(pi-1) on a large batch, larger on
    a small one; the standard MLP's near 1."""
    from bnlab.explosion import explosion_rate
    plan = cpu_plan()
    big, small = explosion_rate(12, 64, 128, plan=plan), explosion_rate(12, 64, 4, plan=plan)
    flat = explosion_rate(12, 64, 128, norm="none", plan=plan)
    assert 1.3 < big < 1.7 and small > big and 0.9 < flat < 1.15, (big, small, flat)
