"""The engine's options change how a step runs, never what it computes; independent runs can run in parallel."""
import numpy as np
import pytest
import torch

from bnlab import runner
from bnlab.config import DataConfig, ModelConfig, ProbeConfig, RunConfig, TrainConfig, replace
from bnlab.scales import SMOKE
from bnlab.plan import RunPlan
from bnlab.engine import EngineOptions, Stepper
from bnlab.recipes import dln_run
from bnlab.models import build, loss_fn
from bnlab.train import train
from conftest import cpu_plan, needs_fashion


def tiny(norm="batch", steps=6, probes=True):
    return RunConfig("e", ModelConfig(arch="vgg16", norm=norm, width=0.0625, in_channels=1),
                     DataConfig("fashion_mnist", train_subset=512, test_subset=128),
                     TrainConfig(lr=0.1, steps=steps, eval_every=steps),
                     ProbeConfig(every=3 if probes else 0, activation_layers=(2,) if probes else (),
                                 ics_layers=(5,) if probes else (), landscape=probes, landscape_points=2))


def test_options_come_from_the_environment_at_the_edge(monkeypatch):
    assert RunPlan.from_env().engine == EngineOptions()
    monkeypatch.setenv("BNLAB_CHANNELS_LAST", "1")
    monkeypatch.setenv("BNLAB_COMPILE", "0")
    monkeypatch.setenv("BNLAB_LANDSCAPE", "vmap")
    assert RunPlan.from_env().engine == EngineOptions(channels_last=True, compile=False, landscape="vmap")
    with pytest.raises(ValueError, match="loop"):
        EngineOptions(landscape="fast")


def test_auto_landscape_back_end_is_vmap_only_for_the_linear_network():
    auto = EngineOptions()
    assert auto.landscape == "auto" and auto.describe()["landscape"] == "auto"
    assert [auto.landscape_for(a) for a in ("dln", "vgg16", "resnet")] == ["vmap", "loop", "loop"]
    assert auto.describe("dln")["landscape"] == "vmap"
    assert EngineOptions(landscape="loop").landscape_for("dln") == "loop"


def test_stepper_is_one_sgd_step():
    torch.manual_seed(0)
    model = build(ModelConfig(arch="vgg11", norm="none", width=0.125, in_channels=1))
    ref = build(ModelConfig(arch="vgg11", norm="none", width=0.125, in_channels=1))
    x, y = torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))
    stepper = Stepper(model, torch.optim.SGD(model.parameters(), lr=0.5))
    out, loss = stepper.step(0, x, y)
    loss_fn(ref, ref(x), y).backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q - 0.5 * q.grad)
    assert loss.requires_grad and out.shape == (8, 10)


def test_channels_last_takes_the_same_step():
    """Same parameters after one step, up to float rounding. (Whole runs are not compared: at this size a rounding
    difference grows ~100x per step, as it does between 1 and 2 CPU threads.)"""
    cfg = ModelConfig(arch="vgg16", norm="batch", width=0.0625, in_channels=1)
    x, y = torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,))
    after = {}
    for cl in (False, True):
        model = build(cfg, seed=0)
        out, loss = Stepper(model, torch.optim.SGD(model.parameters(), lr=0.1), EngineOptions(channels_last=cl)).step(
            0, x, y)
        after[cl] = (loss.item(), [p.detach().contiguous() for p in model.parameters()])
        if cl:
            assert model.blocks[0].layer.weight.is_contiguous(memory_format=torch.channels_last)
    assert after[True][0] == pytest.approx(after[False][0], rel=1e-6)
    for p, q in zip(after[True][1], after[False][1]):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


@needs_fashion
def test_run_records_its_engine_options():
    res = train(tiny(steps=3), cpu_plan(engine=EngineOptions(channels_last=True)))
    assert res.status == "ok" and res.meta["engine"] == {"channels_last": True, "compile": False, "landscape": "loop"}
    assert {"ics_l2", "land_loss", "act_var"} <= set(res.arrays)       # probes work on an NHWC model


@needs_fashion
def test_landscape_back_ends_give_the_same_measurements():
    loop = train(tiny(steps=1), cpu_plan(engine=EngineOptions(landscape="loop")))
    vmap = train(tiny(steps=1), cpu_plan(engine=EngineOptions(landscape="vmap")))
    assert vmap.meta["engine"]["landscape"] == "vmap"
    for key in ("land_loss", "land_grad_change"):
        np.testing.assert_allclose(vmap[key], loop[key], rtol=1e-4, err_msg=key)


@needs_fashion
def test_independent_runs_in_parallel_processes_match_one_process(tmp_path, monkeypatch, shared_home):
    serial = runner.compute("bjorck_lr_sweep", cpu_plan(jobs=1, home=shared_home))   # trained once per session
    monkeypatch.setenv("BNLAB_HOME", str(tmp_path / "fresh"))       # a fresh run store: nothing reused
    parallel = runner.compute("bjorck_lr_sweep", cpu_plan(jobs=2))
    assert parallel.provenance["device_name"].startswith("CPU (2 processes")
    assert parallel.provenance["engine"] == {"channels_last": False, "compile": "auto", "landscape": "auto"}
    # what the runs did: smoke runs are too short for "auto" to compile
    assert parallel.provenance["engine_runs"] == {"compiled": 0, "eager": len(parallel.runs), "fallbacks": []}
    for a, b in zip(serial.runs, parallel.runs):
        assert a.config == b.config and a.status == b.status
        np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-4, err_msg=a.name)


def test_compiled_step_matches_the_eager_step():
    """torch.compile (inductor on a CPU, CUDA graphs on a GPU) must take the same SGD step as eager mode."""
    cfg = ModelConfig(arch="vgg11", norm="batch", width=0.0625, in_channels=1)
    x, y = torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,))
    losses, params = {}, {}
    for compiled in (False, True):
        torch.manual_seed(0)
        model = build(cfg, seed=0)
        stepper = Stepper(model, torch.optim.SGD(model.parameters(), lr=0.1), EngineOptions(compile=compiled))
        losses[compiled] = [stepper.step(i, x, y)[1].item() for i in range(3)]
        params[compiled] = [p.detach().clone() for p in model.parameters()]
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
    for p, q in zip(params[True], params[False]):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("norm", ["none", "batch", "l1"])
def test_auto_back_end_measures_the_linear_network_as_the_loop_does(norm):
    base = dln_run(SMOKE, norm, 1e-6, 0)
    cfg = replace(base, train=replace(base.train, steps=3), probe=replace(base.probe, every=1))
    auto = train(cfg, cpu_plan(engine=EngineOptions()))
    loop = train(cfg, cpu_plan(engine=EngineOptions(landscape="loop")))
    assert auto.meta["engine"]["landscape"] == "vmap" and loop.meta["engine"]["landscape"] == "loop"
    np.testing.assert_array_equal(auto["train_loss"], loop["train_loss"])     # the probe leaves training alone
    for key in ("land_loss", "land_grad_change", "land_beta"):
        np.testing.assert_allclose(auto[key], loop[key], rtol=1e-10, err_msg=key)


def _tf32_flags():
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


@needs_fashion
def test_tf32_precision_trains_and_evaluates_in_tf32_between_measurements(monkeypatch):
    import bnlab.evaluation as train_mod
    seen, at_eval = [], []
    step, evaluate = Stepper.step, train_mod.evaluate

    def spy_step(self, i, x, y, probes=()):
        seen.append((bool(probes), *_tf32_flags()))
        return step(self, i, x, y, probes)

    def spy_eval(*args, **kwargs):
        at_eval.append(_tf32_flags())
        return evaluate(*args, **kwargs)
    monkeypatch.setattr(Stepper, "step", spy_step)
    monkeypatch.setattr(train_mod, "evaluate", spy_eval)
    base = tiny(steps=6)
    res = train(replace(base, train=replace(base.train, precision="tf32", eval_every=2)), cpu_plan())
    # probes every 3 steps and at the last: steps 0, 3, 5 run strict, the others in TF32
    assert seen == [(True, False, False), (False, True, True), (False, True, True), (True, False, False),
                    (False, True, True), (True, False, False)]
    assert at_eval == [(True, True)] * 3 and _tf32_flags() == (False, False)     # evaluations in TF32; reset after
    assert res.status == "ok"


@needs_fashion
def test_tf32_precision_changes_nothing_on_a_cpu():
    base = tiny(steps=4)
    fp32 = train(base, cpu_plan())
    tf32 = train(replace(base, train=replace(base.train, precision="tf32")), cpu_plan())
    for key in ("train_loss", "ics_l2", "land_loss", "test_acc"):
        np.testing.assert_array_equal(tf32[key], fp32[key], err_msg=key)


def test_paper_scales_train_in_tf32_and_measure_strictly():
    from bnlab.scales import CPU, PAPER, PAPER_FMNIST
    from bnlab.recipes import resnet_run, vgg_run
    for scale in (PAPER, PAPER_FMNIST):
        assert vgg_run(scale, "batch", 0.1, 0).train.precision == "tf32"
        assert resnet_run(scale, "none", 0.1, 0).train.precision == "tf32"
        assert dln_run(scale, "batch", 1e-6, 0).train.precision == "fp64"
    assert vgg_run(CPU, "batch", 0.1, 0).train.precision == "fp32"      # the shipped cpu caches keep their hashes


# ---- torch.compile: when, and what happens when it cannot -------------------------------------------------------
@pytest.fixture
def no_compiler():
    """Inductor pointed at a C++ compiler that does not exist, as on a machine without one."""
    import torch._inductor.config as inductor_config
    from bnlab import compiling
    compiling._cpu_compiler.cache_clear()
    with inductor_config.patch({"cpp.cxx": (None, "/nonexistent/g++")}):
        yield compiling
    compiling._cpu_compiler.cache_clear()


def test_auto_compiles_only_long_cpu_runs():
    from bnlab.compiling import AUTO_MIN_STEPS, cpu_compiler, decide
    cpu = torch.device("cpu")
    assert decide(False, cpu, 10 ** 6) == (False, None)
    assert decide("auto", cpu, AUTO_MIN_STEPS - 1) == (False, None)           # smoke runs never pay for compiling
    assert decide("auto", torch.device("cuda"), 10 ** 6) == (False, None)      # not measured on a GPU here
    if cpu_compiler() is not None:
        assert decide("auto", cpu, AUTO_MIN_STEPS) == (True, None) and decide(True, cpu, 1) == (True, None)


def test_without_a_compiler_nothing_compiles(no_compiler):
    compiling, cpu = no_compiler, torch.device("cpu")
    assert compiling.cpu_compiler() is None
    on, why = compiling.decide("auto", cpu, 10 ** 6)
    assert not on and "no C++ compiler" in why
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        assert compiling.decide(True, cpu, 10) == (False, why)


def test_compile_falls_back_cleanly_without_a_compiler(no_compiler):
    """A run that asks for torch.compile on a machine without a C++ compiler trains eagerly, takes the very same
    steps, and its record says why it did not compile."""
    base = dln_run(SMOKE, "batch", 1e-6, 0)
    cfg = replace(base, train=replace(base.train, steps=4), probe=replace(base.probe, every=2))
    plain = train(cfg, cpu_plan(engine=EngineOptions(compile=False)))
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        fallback = train(cfg, cpu_plan(engine=EngineOptions(compile=True)))
    assert fallback.meta["engine"]["compile"] is False and "no C++ compiler" in fallback.meta["engine"]["compile_fallback"]
    assert plain.meta["engine"] == {"channels_last": False, "compile": False, "landscape": "vmap"}
    for key in plain.arrays:
        np.testing.assert_array_equal(fallback[key], plain[key], err_msg=key)


def test_noisy_batchnorm_stays_eager_so_its_noise_is_the_runs_own():
    from bnlab.compiling import decide
    noisy = build(ModelConfig(arch="dln", norm="noisy_batch"), seed=0, dtype=torch.float64)
    on, why = decide(True, torch.device("cpu"), 10 ** 6, noisy)
    assert not on and "noisy BatchNorm" in why
    assert decide("auto", torch.device("cpu"), 10, noisy) == (False, None)      # too short to compile anyway


def test_a_failed_compile_runs_eagerly_and_says_why(monkeypatch):
    from bnlab import compiling

    def broken(model, mode=None):
        def call(x):
            raise RuntimeError("C++ compile error: cannot find Python.h")
        return call
    monkeypatch.setattr(compiling.torch, "compile", broken)
    model = build(ModelConfig(arch="dln", norm="none"), seed=0, dtype=torch.float64)
    stepper = Stepper(model, torch.optim.SGD(model.parameters(), lr=1e-3), EngineOptions(compile=True), steps=10)
    x, y = torch.randn(8, 10, dtype=torch.float64), torch.randn(8, 10, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        stepper.step(0, x, y)
    stepper.step(1, x, y)                                                     # warned once, eager from then on
    record = stepper.describe("dln")
    assert record["compile"] is False and "cannot find Python.h" in record["compile_fallback"]


@pytest.mark.skipif(not __import__("bnlab.compiling").compiling.cpu_compiler(), reason="no C++ compiler")
def test_a_compiled_run_matches_the_plain_run():
    """Compiled unprobed steps (inductor) and eager ones differ only by floating-point reordering: float64 deep
    linear network, probes on the steps between (eager, but the landscape loop's points through the compiled
    forward), the same records to 1e-9 relative."""
    base = dln_run(SMOKE, "batch", 1e-6, 0)
    cfg = replace(base, train=replace(base.train, steps=8), probe=replace(base.probe, every=4))
    plain = train(cfg, cpu_plan(engine=EngineOptions(compile=False, landscape="loop")))
    compiled = train(cfg, cpu_plan(engine=EngineOptions(compile=True, landscape="loop")))
    assert compiled.meta["engine"]["compile"] is True and "compile_fallback" not in compiled.meta["engine"]
    for key in plain.arrays:
        np.testing.assert_allclose(compiled[key], plain[key], rtol=1e-9, atol=1e-12, err_msg=key)


def test_every_shipped_cache_records_the_engine_options_of_each_run():
    """A cache says how it was computed: the options asked for, and per run what it ran with (compiled or not)."""
    import json
    from bnlab.results import CACHED_DIR
    files = sorted(CACHED_DIR.glob("*/*.json"))
    assert files
    for js in files:
        meta = json.loads(js.read_text())
        assert {"channels_last", "compile", "landscape"} <= set(meta["provenance"]["engine"]), js
        for run in meta["runs"]:
            engine = run["meta"]["engine"]
            assert engine["compile"] in (True, False) and engine["landscape"] in ("loop", "vmap"), (js, engine)


def test_a_stepper_that_does_not_know_its_run_length_stays_eager_unless_told():
    """Only a run long enough pays for compiling: a Stepper built without ``steps`` (the benchmark's baselines, a
    user's own loop) does not compile under "auto"; ``compile=True`` still does."""
    model = build(ModelConfig(arch="dln", norm="none"), seed=0, dtype=torch.float64)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    assert not Stepper(model, opt, EngineOptions()).compiled
    assert not Stepper(model, opt, EngineOptions(), steps=10).compiled
    from bnlab.compiling import CompiledForward, cpu_compiler
    if cpu_compiler() is not None:
        assert isinstance(Stepper(model, opt, EngineOptions(compile=True)).forward, CompiledForward)


def test_jobs_come_from_the_argument_then_BNLAB_JOBS_then_the_default_and_auto_is_one_per_core_on_a_cpu():
    from bnlab.plan import MAX_AUTO_JOBS, auto_jobs
    assert RunPlan.from_env(device="cpu", env={}).jobs == 1
    assert RunPlan.from_env(device="cpu", env={"BNLAB_JOBS": "3"}).jobs == 3
    assert RunPlan.from_env(device="cpu", jobs=2, env={"BNLAB_JOBS": "3"}).jobs == 2
    assert auto_jobs("cpu") == max(1, min(MAX_AUTO_JOBS, torch.get_num_threads()))
    assert RunPlan.from_env(device="cpu", env={"BNLAB_JOBS": "auto"}).jobs == auto_jobs("cpu")
    assert RunPlan.from_env(device="cpu", env={}, default_jobs="auto").jobs == auto_jobs("cpu")
    assert RunPlan.from_env(device="cpu", env={"BNLAB_JOBS": "1"}, default_jobs="auto").jobs == 1
    for bad in ("0", "two", "-1", "1.5"):
        with pytest.raises(ValueError, match=r"BNLAB_JOBS.*whole number >= 1 or 'auto'"):
            RunPlan.from_env(device="cpu", env={"BNLAB_JOBS": bad})


def test_a_live_run_takes_the_pool_only_when_it_is_long_and_the_estimate_says_the_pool_is_faster(monkeypatch):
    """Starting a worker costs seconds (importing torch): a live run estimated under POOL_MIN_MINUTES is not split;
    nor is one whose networks the benchmark found no faster in the pool (bnlab.plan.PROCESS_SPEEDUP)."""
    from bnlab import plan as plan_module
    from bnlab.runner import POOL_MIN_GAIN, POOL_MIN_MINUTES, live_plan
    plan, text, minutes = live_plan("ics_dln", cpu_plan(jobs=2))            # smoke scale: seconds
    assert minutes < POOL_MIN_MINUTES and plan.jobs == 1 and "Plan: ics_dln" in text
    monkeypatch.setitem(plan_module.PROCESS_SPEEDUP, ("dln", False), 2 * POOL_MIN_GAIN)
    monkeypatch.setitem(plan_module.PROCESS_SPEEDUP, ("dln", True), 2 * POOL_MIN_GAIN)
    single = live_plan("ics_dln", cpu_plan(scale="cpu", jobs=1))[2]
    plan, text, minutes = live_plan("ics_dln", cpu_plan(scale="cpu", jobs=2))
    assert single >= POOL_MIN_MINUTES and plan.jobs == 2 and "2 runs at once" in text and minutes < single
    monkeypatch.setitem(plan_module.PROCESS_SPEEDUP, ("dln", False), 1.0)
    monkeypatch.setitem(plan_module.PROCESS_SPEEDUP, ("dln", True), 1.0)
    plan, text, minutes = live_plan("ics_dln", cpu_plan(scale="cpu", jobs=2))
    assert plan.jobs == 1 and minutes == pytest.approx(single, rel=0.2) and "at once" not in text


def test_a_script_without_a_main_guard_runs_its_pool_once(tmp_path):
    """Spawned workers re-run the parent's main script unless the runner hides it: a reader's unguarded script that
    computes live in a process pool must start the experiment once, not again in every worker."""
    import subprocess
    import sys
    script = tmp_path / "unguarded.py"
    script.write_text("from bnlab import runner\nfrom bnlab.plan import RunPlan\nprint('SCRIPT STARTED', flush=True)\n"
                      "res = runner.compute('ics_dln', RunPlan.from_env(scale='smoke', device='cpu', jobs=2, "
                      "progress=False))\nprint('DONE', res.provenance['device_name'], flush=True)\n")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("SCRIPT STARTED") == 1 and "DONE CPU (2 processes" in done.stdout, done.stdout
