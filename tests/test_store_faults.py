"""Nothing served wrong, no work lost: the run store under kills, full disks, races and bad records (issue 14).
One test (or one parametrised group) per class of failure; each fails on the code before the fix."""
import contextlib
import json
import math
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import bnlab.engine as engine_mod
from bnlab import estimate, runner, store
from bnlab.config import DataConfig, ModelConfig, ProbeConfig, RunConfig, TrainConfig, config_hash
from bnlab.experiments import get
from bnlab.plan import RunPlan
from bnlab.train import train
from conftest import cpu_plan, needs_fashion

ROOT = Path(__file__).resolve().parents[1]


def dln(lr=1e-6, steps=30, depth=25):
    return RunConfig("d", ModelConfig(arch="dln", dln_depth=depth), DataConfig("dln_synthetic"),
                     TrainConfig(lr=lr, steps=steps, batch_size=1000, precision="fp64", eval_every=steps),
                     ProbeConfig(every=10, ics_layers=(3,)))


# ---- 1. work lost in a window: a kill at each of a run's final writes ----------------------------------
@pytest.mark.parametrize("point", ["npz", "json", "after json"])
def test_a_kill_at_each_final_write_loses_no_training_step(point, monkeypatch):
    cfg = dln().to_dict()
    h, plan = config_hash(cfg), cpu_plan()
    reference = train(dln(), plan)
    real = os.replace

    def killed(src, dst):
        if Path(dst).parent == plan.store.runs and Path(dst).suffix == "." + point.split()[-1]:
            if point.startswith("after"):
                real(src, dst)
            raise SystemExit("killed")                   # what a SIGTERM's handler (bnlab.launch) raises
        return real(src, dst)
    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(SystemExit):
        runner.run_one(cfg, plan)
    monkeypatch.setattr(os, "replace", real)
    again, reused = runner.run_one(cfg, plan)
    assert reused or again.meta["resumed_at_step"] == 30            # no step trained twice
    for k, v in reference.arrays.items():
        np.testing.assert_array_equal(again[k], v, err_msg=k)
    assert not plan.store.checkpoint_path(h).exists() and plan.store.load_run(h) is not None


# ---- 2. wrong data served: records and checkpoints that are not what their name says --------------------------
def _damage_types(meta):
    meta["status"], meta["diverged_step"] = 1, "x"


def _damage_hash(meta):
    meta["config"]["train"]["lr"] = 2e-6                 # another config's record under this name


def _damage_missing(meta):
    del meta["meta"]


@pytest.mark.parametrize("damage", [_damage_types, _damage_hash, _damage_missing], ids=["types", "hash", "missing"])
def test_an_invalid_run_record_is_named_moved_aside_and_recomputed(damage):
    cfg = dln().to_dict()
    h, plan = config_hash(cfg), cpu_plan()
    first, _ = runner.run_one(cfg, plan)
    js, _ = plan.store.run_paths(h)
    meta = json.loads(js.read_text())
    damage(meta)
    js.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match=f"{h}.*moved to"):
        again, reused = runner.run_one(cfg, plan)
    assert not reused and (js.parent / (js.name + ".corrupt")).exists()
    np.testing.assert_array_equal(again["train_loss"], first["train_loss"])
    assert runner.run_one(cfg, plan)[1]                                    # the recomputed record is served


def _interrupted_checkpoint(cfg, path, monkeypatch, ctrl_c_at=12):
    real, calls = engine_mod.loss_fn, {"n": 0}

    def interrupting(model, out, y):
        calls["n"] += 1
        if calls["n"] == ctrl_c_at:
            os.kill(os.getpid(), signal.SIGINT)
        return real(model, out, y)
    monkeypatch.setattr(engine_mod, "loss_fn", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, cpu_plan(), checkpoint=path)
    monkeypatch.setattr(engine_mod, "loss_fn", real)
    assert path.exists()


def test_a_checkpoint_of_another_config_is_not_resumed(tmp_path, monkeypatch, ctrl_c):
    mine, other = dln(lr=1e-6), dln(lr=3e-6)                             # the same network, another lr
    ckpt = tmp_path / "run.ckpt"
    _interrupted_checkpoint(other, ckpt, monkeypatch)
    with pytest.warns(UserWarning, match="belongs to config"):
        res = train(mine, cpu_plan(), checkpoint=ckpt)
    assert res.meta["resumed_at_step"] == 0 and (tmp_path / "run.ckpt.corrupt").exists()
    np.testing.assert_array_equal(res["train_loss"], train(mine, cpu_plan())["train_loss"])


def test_a_foreign_checkpoint_of_another_network_is_moved_aside_not_a_crash(tmp_path, monkeypatch, ctrl_c):
    ckpt = tmp_path / "run.ckpt"
    _interrupted_checkpoint(dln(depth=10), ckpt, monkeypatch)
    state = torch.load(ckpt, weights_only=False)
    state.pop("config_hash", None)                       # as bnlab before 0.2.1 wrote them: no config hash
    state["losses"], state["accs"] = torch.zeros(30, dtype=torch.float64), torch.zeros(30, dtype=torch.float64)
    torch.save(state, ckpt)
    with pytest.warns(UserWarning, match="does not fit this run"):
        res = train(dln(depth=25), cpu_plan(), checkpoint=ckpt)
    assert res.meta["resumed_at_step"] == 0 and (tmp_path / "run.ckpt.corrupt").exists()


# ---- 3. claims: exclusive under contention, unexpected content is stale -------------------------------------
STRESS = textwrap.dedent("""
    import importlib.util, os, sys, time
    spec = importlib.util.spec_from_file_location("store_alone", os.path.join(sys.argv[1], "bnlab", "store.py"))
    st = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(st)
    store, n = st.RunStore(sys.argv[2]), int(sys.argv[3])
    inside, overlaps = store.runs / "inside", 0
    for _ in range(n):
        with store.claim("h", poll_s=0.0005):
            try:
                os.close(os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                overlaps += 1            # another process holds the same claim at this instant
                continue
            time.sleep(0.0002)
            os.unlink(inside)
    print(overlaps)
""")


def test_four_processes_contending_for_one_claim_never_hold_it_together(tmp_path):
    (tmp_path / "runs").mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", STRESS, str(ROOT), str(tmp_path), "150"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-1500:] for _, e in outs]
    assert [int(o) for o, _ in outs] == [0, 0, 0, 0]
    assert sorted(os.listdir(tmp_path / "runs")) == []                # no claim, break lock or temp file left


@pytest.mark.parametrize("content", ['[1, 2]', 'null', '{"pid": "me"}', '{"pid": 1, "host": 2}', ''])
def test_a_claim_with_unexpected_content_is_taken_over_with_a_warning(content):
    st = cpu_plan().store
    path = st.claim_path("h")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    past = time.time() - 2 * store.CLAIM_WRITE_S                  # not a claim being written this instant
    os.utime(path, (past, past))
    with pytest.warns(UserWarning, match="unexpected content"):
        with st.claim("h", poll_s=0.01):
            assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


# ---- 4. full disk -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def file_size_limit(nbytes):
    """Writes past ``nbytes`` fail with EFBIG, as on a full disk (the process survives: SIGXFSZ ignored)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_full_disk_is_a_clear_error_with_the_path_the_bytes_and_the_fix(tmp_path):
    from bnlab.checkpoint import Checkpointer
    ckpt = Checkpointer(tmp_path / "run.ckpt")
    with file_size_limit(100_000):
        with pytest.raises(OSError, match=r"run\.ckpt: it needs 4,00\d,\d+ bytes.*BNLAB_HOME"):
            ckpt.save({"w": torch.zeros(1_000_000)})
    assert os.listdir(tmp_path) == []                             # no temp file left behind


@needs_fashion
def test_the_optional_data_cache_skips_its_write_on_a_full_disk_with_a_warning(tmp_path):
    from bnlab.data import load_images
    with file_size_limit(1_000_000), pytest.warns(UserWarning, match="fashion_mnist.pt was not written"):
        data = load_images(DataConfig("fashion_mnist", train_subset=64, test_subset=64), "cpu", tmp_path / "data")
    assert data.x_train.shape[0] == 64 and not (tmp_path / "data" / "fashion_mnist.pt").exists()


# ---- 5. leftovers ---------------------------------------------------------------------------------------------
def test_stale_temp_files_go_from_every_store_folder_and_the_data_folder():
    plan = cpu_plan()
    temps = [plan.store.runs / "experiments" / "ics_dln" / ".cpu.npz.x1.tmp", plan.store.runs / "analyses" / ".a.tmp",
             plan.data_dir / ".fashion_mnist.pt.x2.tmp"]
    fresh = plan.data_dir / ".fresh.pt.x3.tmp"
    past = time.time() - 2 * store.TMP_STALE_S
    for t in temps + [fresh]:
        t.parent.mkdir(parents=True, exist_ok=True)
        t.write_text("left by a killed writer")
        if t != fresh:
            os.utime(t, (past, past))
    try:
        runner.compute("ics_dln", plan)
        assert not any(t.exists() for t in temps) and fresh.exists()
    finally:
        fresh.unlink(missing_ok=True)


# ---- 6. bad input stopped at the edge ----------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: TrainConfig(weight_decay=math.inf), lambda: ModelConfig(width=math.inf),
                                  lambda: ModelConfig(width=math.nan), lambda: ProbeConfig(ics_layers=(2.5,)),
                                  lambda: ProbeConfig(activation_layers=(2.0,)), lambda: DataConfig(dln_samples=0),
                                  lambda: TrainConfig(seed=2**64), lambda: ProbeConfig(landscape_range=(0.5, math.inf))])
def test_config_values_out_of_range_are_refused(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("argv", [["--tflops", "inf"], ["--tflops", "nan"], ["--tflops", "1e-12"],
                                  ["--block-ms", "-1"], ["--block-ms", "nan"]])
def test_numeric_estimate_options_are_checked(argv, capsys):
    with pytest.raises(SystemExit) as err:
        estimate.main(["--scale", "smoke", "--tflops", "1", *argv])
    assert err.value.code == 2 and "must be a number in" in capsys.readouterr().err


def test_an_unknown_device_from_python_or_the_environment_is_named_with_the_choices():
    with pytest.raises(ValueError, match=r"device 'gpu' is not a device; use cpu, cuda or cuda:N"):
        RunPlan(device="gpu")
    with pytest.raises(ValueError, match=r"BNLAB_DEVICE 'tpu0' is not a device"):
        RunPlan.from_env(env={"BNLAB_DEVICE": "tpu0"})


def test_a_bad_output_path_fails_before_anything_is_computed(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(runner, "compute", lambda *a, **k: pytest.fail("computed before the output was checked"))
    with pytest.raises(OSError, match="a-file"):
        runner.reproduce("ics_dln", cpu_plan(), out=blocker / "out")


# ---- 7. advice that fits this device; hours of work only when asked for ------------------------------------------
def test_a_long_plan_names_a_scale_that_fits_this_device_and_does_not_start_unasked(monkeypatch):
    text, minutes = estimate.preview("bn_vs_standard", cpu_plan(scale="paper"), tflops=0.05)   # a 2-core CPU
    assert minutes > 180 and "SCALE = 'cpu'" in text and "works offline" in text
    monkeypatch.setattr(runner, "reproduce", lambda *a, **k: pytest.fail("hours of work started unasked"))
    monkeypatch.setattr(runner, "preview", lambda name, plan: (text, minutes))
    with pytest.raises(RuntimeError, match="allow_long=True"):
        runner.run("bn_vs_standard", mode="live", scale="paper", quiet=True)


# ---- 8. divergence: nothing kept at or after the divergence step ----------------------------------------------
@needs_fashion
def test_the_evaluation_at_the_divergence_step_is_not_kept():
    cfg = RunConfig("t", ModelConfig(arch="vgg16", norm="none", width=0.0625, in_channels=1),
                    DataConfig("fashion_mnist", train_subset=256, test_subset=64),
                    TrainConfig(lr=90.0, steps=40, batch_size=32, eval_every=1))
    res = train(cfg, cpu_plan())
    assert res.status == "diverged" and len(res["eval_step"])
    assert max(res["eval_step"]) < res.diverged_step and np.isfinite(res["test_acc"]).all()


def test_a_float64_loss_beyond_float32_is_the_divergence_step(monkeypatch):
    real, calls = engine_mod.loss_fn, {"n": 0}

    def overflowing(model, out, y):
        calls["n"] += 1
        loss = real(model, out, y)
        return loss * 1e40 if calls["n"] == 8 else loss        # finite in float64, inf in float32 (step 7)
    monkeypatch.setattr(engine_mod, "loss_fn", overflowing)
    cfg = dln()
    res = train(RunConfig(cfg.name, cfg.model, cfg.data, cfg.train, ProbeConfig()), cpu_plan())
    loss = res["train_loss"]
    assert res.diverged_step == 7 and np.isfinite(loss[:7]).all() and not np.isfinite(loss[7:]).any()


# ---- 9. the experiment files are one unit --------------------------------------------------------------------
def test_an_experiment_json_is_never_read_with_the_npz_of_another_save(tmp_path, monkeypatch):
    from bnlab import results
    res = results.load("ics_dln", "cpu")
    results.save(res, tmp_path)
    res.runs[0].arrays["train_loss"] = res.runs[0].arrays["train_loss"] + 1.0
    real = os.replace

    def killed_before_the_json(src, dst):
        if Path(dst).suffix == ".json":
            raise SystemExit("killed")
        return real(src, dst)
    monkeypatch.setattr(os, "replace", killed_before_the_json)
    with pytest.raises(SystemExit):
        results.save(res, tmp_path)
    with pytest.raises(results.CachedResultCorrupt, match="reproduce ics_dln --scale cpu"):
        results.load_file(tmp_path / "ics_dln" / "cpu.json", "live")

