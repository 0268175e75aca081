"""Nothing lost, nothing served unverified: interrupts at the risky points, tampered / truncated / missing files,
processes sharing a run store, bad arguments. Each test is a scenario a demanding user tried (issue 13)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from bnlab import results, runner, statistics, store
from bnlab.__main__ import main
from bnlab.config import DataConfig, ModelConfig, ProbeConfig, RunConfig, TrainConfig, config_hash
from bnlab.experiments import get
from bnlab.measure.ics import ICSProbe
from bnlab.train import train
from conftest import cpu_plan, needs_fashion


def small_vgg(norm="batch", steps=12, every=4, lr=0.1, ics=(5,)):
    return RunConfig("t", ModelConfig(arch="vgg16", norm=norm, width=0.0625, in_channels=1),
                     DataConfig("fashion_mnist", train_subset=256, test_subset=64),
                     TrainConfig(lr=lr, steps=steps, batch_size=32, eval_every=steps),
                     ProbeConfig(every=every, ics_layers=ics, activation_layers=(2,)))


# ---- 1. Ctrl-C during a measurement -----------------------------------------------------------------
@needs_fashion
def test_ctrl_c_during_an_ics_measurement_keeps_that_point(tmp_path, monkeypatch, ctrl_c):
    cfg = small_vgg()
    reference = train(cfg, cpu_plan())
    real, calls = ICSProbe.after_step, {"n": 0}

    def interrupted(self, step, model, x, y):
        calls["n"] += 1
        if calls["n"] == 2:                                   # the second ICS measurement (step 4)
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, step, model, x, y)
    monkeypatch.setattr(ICSProbe, "after_step", interrupted)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, cpu_plan(), checkpoint=ckpt)
    monkeypatch.setattr(ICSProbe, "after_step", real)
    resumed = train(cfg, cpu_plan(), checkpoint=ckpt)
    assert list(resumed["ics_step"]) == list(reference["ics_step"]) == [0, 4, 8, 11]
    for k in reference.arrays:
        np.testing.assert_allclose(resumed[k], reference[k], rtol=1e-6, atol=1e-7, err_msg=k)


# ---- 2. cached results are checked against MANIFEST.json when loaded --------------------------------------
@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """A copy of the shipped cache (one experiment) that a test may damage, in place of the real one."""
    folder = tmp_path / "cached"
    shutil.copytree(results.CACHED_DIR / "ics_dln", folder / "ics_dln")
    manifest = json.loads((results.CACHED_DIR / "MANIFEST.json").read_text())
    (folder / "MANIFEST.json").write_text(json.dumps({k: v for k, v in manifest.items() if k.startswith("ics_dln/")}))
    monkeypatch.setattr(results, "CACHED_DIR", folder)
    results._CHECKED.clear()
    yield folder
    results._CHECKED.clear()


def test_an_edited_cached_status_is_refused_with_the_file_and_the_fix(shipped_copy):
    results.load("ics_dln", "cpu")                          # intact: loads
    js = shipped_copy / "ics_dln" / "cpu.json"
    meta = json.loads(js.read_text())
    meta["runs"][0]["status"] = "diverged"
    js.write_text(json.dumps(meta))
    with pytest.raises(results.CachedResultCorrupt, match=r"cpu\.json.*reproduce ics_dln --scale cpu"):
        results.load("ics_dln", "cpu")


def test_a_flipped_byte_in_a_cached_npz_is_a_clear_error_not_a_bad_zip(shipped_copy):
    npz = shipped_copy / "ics_dln" / "cpu.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(results.CachedResultCorrupt, match=r"cpu\.npz.*MANIFEST\.json"):
        results.load("ics_dln", "cpu")


def test_a_missing_or_truncated_manifest_is_named(shipped_copy, capsys):
    manifest = shipped_copy / "MANIFEST.json"
    manifest.write_text(manifest.read_text()[:40])
    with pytest.raises(results.CachedResultCorrupt, match="MANIFEST.json"):
        results.load("ics_dln", "cpu")
    assert main(["verify"]) == 1
    assert "MANIFEST.json is missing or unreadable" in capsys.readouterr().err
    manifest.unlink()
    with pytest.raises(results.CachedResultCorrupt, match="Reinstall bnlab"):
        results.load("ics_dln", "cpu")


def test_verify_calls_a_missing_file_missing(shipped_copy):
    (shipped_copy / "ics_dln" / "cpu.npz").unlink()
    assert results.verify_manifest() == ["ics_dln/cpu.npz: missing"]


# ---- 3. processes sharing a run store --------------------------------------------------------------------
def test_two_processes_on_one_config_train_it_once_and_leave_no_temp_files():
    cfg = get("ics_dln").runs("smoke")[1].to_dict()
    code = textwrap.dedent(f"""
        import json
        from bnlab import runner
        from bnlab.plan import RunPlan
        run, reused = runner.run_one(json.loads({json.dumps(json.dumps(cfg))}), RunPlan.from_env(device="cpu", progress=False))
        print("REUSED" if reused else "TRAINED", run.status)
    """)
    env = {**os.environ, "BNLAB_PROGRESS": "0"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert sorted(o[0].split()[-2] for o in outs) == ["REUSED", "TRAINED"], outs
    assert not list(cpu_plan().store.runs.glob("*.tmp")) and not list(cpu_plan().store.runs.glob(".*.tmp"))
    assert not list(cpu_plan().store.runs.glob("*.claim"))


# ---- 4. corrupt files: named, moved aside, recomputed ---------------------------------------------------
def test_a_truncated_run_store_file_is_quarantined_and_the_run_computed_again():
    cfg = get("ics_dln").runs("smoke")[0].to_dict()
    first, _ = runner.run_one(cfg, cpu_plan())
    h = config_hash(cfg)
    js, npz = cpu_plan().store.run_paths(h)
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.warns(UserWarning, match="could not be read"):
        again, reused = runner.run_one(cfg, cpu_plan())
    assert not reused and (npz.parent / (npz.name + ".corrupt")).exists()
    np.testing.assert_array_equal(again["train_loss"], first["train_loss"])
    js.write_text("{not json")
    with pytest.warns(UserWarning, match="JSONDecodeError"):
        _, reused = runner.run_one(cfg, cpu_plan())
    assert not reused


@needs_fashion
def test_a_truncated_checkpoint_is_moved_aside_and_the_run_starts_over(tmp_path):
    cfg = small_vgg(steps=6, every=0, ics=())
    reference = train(cfg, cpu_plan())
    ckpt = tmp_path / "run.ckpt"
    ckpt.write_bytes(b"PK\x03\x04 truncated")
    with pytest.warns(UserWarning, match="run.ckpt could not be read"):
        res = train(cfg, cpu_plan(), checkpoint=ckpt)
    assert (tmp_path / "run.ckpt.corrupt").exists()
    np.testing.assert_array_equal(res["train_loss"], reference["train_loss"])


@needs_fashion
def test_a_corrupt_dataset_cache_falls_back_to_the_source_files(tmp_path):
    from bnlab.data import load_images
    good = load_images(DataConfig("fashion_mnist", train_subset=64, test_subset=64), device="cpu", root=tmp_path / "data")
    cache = tmp_path / "data" / "fashion_mnist.pt"
    cache.write_bytes(cache.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="could not be read"):
        again = load_images(DataConfig("fashion_mnist", train_subset=64, test_subset=64), device="cpu",
                            root=tmp_path / "data")
    assert torch.equal(good.x_train, again.x_train) and cache.exists()


def test_stale_temp_files_are_removed_and_fresh_ones_kept():
    folder = cpu_plan().store.ensure_writable()
    old, fresh = folder / ".abc.npz.1234.tmp", folder / ".def.npz.5678.tmp"
    old.write_text("x"), fresh.write_text("y")
    past = time.time() - 2 * store.TMP_STALE_S
    os.utime(old, (past, past))
    assert cpu_plan().store.remove_stale_temps() == [old]
    assert fresh.exists() and not old.exists()


# ---- 5. bad command-line input -------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["reproduce", "nosuch", "--all"], ["reproduce", "ics_dln", "--jobs", "0"],
                                  ["reproduce", "ics_dln", "--jobs", "-1"], ["reproduce", "ics_dln", "--device", "gpu"],
                                  ["reproduce", "ics_dln", "--device", "cuda:7"], ["reproduce", "ics_dln", "--scale", "huge"]])
def test_bad_arguments_are_refused_with_the_choices(argv, capsys):
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2 and "error:" in capsys.readouterr().err


def test_jobs_beyond_the_runs_start_only_as_many_workers_and_say_so():
    res = runner.compute("ics_dln", cpu_plan(jobs=1000))
    assert res.provenance["device_name"].startswith("CPU (2 processes")      # two runs, two workers, not 1000


def test_a_closed_pipe_ends_quietly():
    read, write = os.pipe()
    os.close(read)                                          # the reader is gone before anything is written
    proc = subprocess.run([sys.executable, "-m", "bnlab", "list"], stdout=write, stderr=subprocess.PIPE, text=True)
    os.close(write)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


# ---- 6. divergence ---------------------------------------------------------------------------------------
@needs_fashion
def test_divergence_is_recorded_at_its_step_and_nothing_is_measured_after_it():
    cfg = small_vgg(norm="none", steps=40, every=1, lr=90.0, ics=(5,))
    cfg = RunConfig(cfg.name, cfg.model, cfg.data, TrainConfig(lr=90.0, steps=40, batch_size=32, eval_every=2),
                    cfg.probe)
    res = train(cfg, cpu_plan())
    assert res.status == "diverged"
    d = res.diverged_step
    losses = res["train_loss"]
    assert np.isfinite(losses[:d]).all() and not np.isfinite(losses[d])   # the first non-finite step, exactly
    assert d < 39 and all(s < d for s in res["ics_step"]) and all(s < d for s in res["act_step"])
    assert all(e <= d for e in res["eval_step"])
    from bnlab.results import Run
    run = Run(cfg.to_dict(), res.status, d, res.arrays)
    assert np.isnan(statistics.final(run, "test_acc")) and np.isnan(statistics.final(run, "train_acc"))


# ---- 7. validation and random streams -----------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: TrainConfig(steps=2.5), lambda: ModelConfig(arch="resnet", depth=20.0),
                                  lambda: ModelConfig(num_classes=0), lambda: ModelConfig(in_channels=0),
                                  lambda: TrainConfig(seed=-1), lambda: TrainConfig(lr="0.1"),
                                  lambda: TrainConfig(lr=True)])
def test_config_values_of_the_wrong_kind_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_an_empty_scale_variable_means_unset(monkeypatch):
    monkeypatch.setenv("BNLAB_SCALE", "")
    assert runner.run("ics_dln", mode="cached", quiet=True).scale == "cpu"


def test_a_home_that_cannot_be_written_says_to_set_bnlab_home(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")                        # unwritable for any user, root included
    monkeypatch.setenv("BNLAB_HOME", str(blocker / "bnlab"))
    with pytest.raises(store.StoreNotWritable, match="Set BNLAB_HOME"):
        runner.compute("ics_dln", cpu_plan())


@needs_fashion
def test_noisy_batchnorm_draws_from_the_runs_own_generator_saved_in_its_checkpoint(tmp_path, monkeypatch, ctrl_c):
    import bnlab.engine as engine_mod
    cfg = small_vgg(norm="noisy_batch", steps=12, every=4)
    reference = train(cfg, cpu_plan())
    real, calls = engine_mod.loss_fn, {"n": 0}

    def interrupting(model, out, y):
        calls["n"] += 1
        if calls["n"] == 7:
            os.kill(os.getpid(), signal.SIGINT)
        return real(model, out, y)
    monkeypatch.setattr(engine_mod, "loss_fn", interrupting)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, cpu_plan(), checkpoint=ckpt)
    monkeypatch.setattr(engine_mod, "loss_fn", real)
    assert "noise" in torch.load(ckpt, weights_only=False)
    torch.manual_seed(12345)                                  # whatever else uses the global generator meanwhile
    torch.rand(1000)
    resumed = train(cfg, cpu_plan(), checkpoint=ckpt)
    np.testing.assert_array_equal(resumed["train_loss"], reference["train_loss"])
