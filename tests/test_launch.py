"""Many runs at once: workers spread over the GPUs, one run store shared by many processes (claims), and cluster
jobs through submitit (its local executor here, with a job preempted and one killed half-way)."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from bnlab import runner
from bnlab.__main__ import main
from bnlab.config import config_hash
from bnlab.experiments import get
from conftest import cpu_plan, needs_fashion


# ---- several GPUs ---------------------------------------------------------------------------------------
def test_workers_take_the_visible_gpus_in_turn():
    cuda = torch.device("cuda")
    assert runner.worker_devices(cuda, 5, visible=2) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert runner.worker_devices(cuda, 3, visible=4) == ["cuda:0", "cuda:1", "cuda:2"]
    assert runner.worker_devices(torch.device("cuda:1"), 3, visible=4) == ["cuda:1"] * 3   # asked for one GPU
    assert runner.worker_devices(cuda, 2, visible=1) == ["cuda"] * 2
    assert runner.worker_devices(torch.device("cpu"), 2) == ["cpu", "cpu"]


def test_each_pool_worker_keeps_the_device_its_turn_gives(monkeypatch):
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    selected = []
    monkeypatch.setattr(torch.cuda, "set_device", selected.append)      # no GPU here: record what it would select
    ctx = __import__("multiprocessing").get_context("spawn")
    counter = ctx.Value("i", 0)
    seen = []
    for _ in range(3):                                  # three workers start, one after another
        runner._init_worker(cpu_plan(), ["cuda:0", "cuda:1"], counter, 1)
        seen.append(runner._WORKER["device"])
    assert seen == ["cuda:0", "cuda:1", "cuda:0"]
    assert selected == seen                             # each makes its GPU the default one


def test_a_run_records_the_device_that_ran_it():
    cfg = get("ics_dln").runs("smoke")[0]
    run, reused = runner.run_one(cfg.to_dict(), cpu_plan())
    assert not reused and run.meta["device"] == "cpu" and run.meta["device_name"].startswith("CPU")
    again, reused = runner.run_one(cfg.to_dict(), cpu_plan())
    assert reused and again.meta["device"] == "cpu"


# ---- one run store, many processes ----------------------------------------------------------------------
def test_a_claim_waits_for_its_live_holder_and_takes_over_a_dead_one():
    key, store = "0123456789abcdef", cpu_plan().store
    released = threading.Event()

    def hold():
        with store.claim(key):
            time.sleep(1.0)
        released.set()
    t = threading.Thread(target=hold)
    t.start()
    while store.claim_holder(key) is None:
        time.sleep(0.01)
    assert store.claim_holder(key)["pid"] == os.getpid()
    with store.claim(key, poll_s=0.05):
        assert released.is_set()                        # got it only once the holder let go
    t.join()
    assert not store.claim_path(key).exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.claim_path(key).write_text(json.dumps({"pid": dead.pid, "host": __import__("socket").gethostname()}))
    assert store.claim_holder(key) is None              # its process is gone: stale
    t0 = time.perf_counter()
    with store.claim(key, poll_s=5.0):
        assert time.perf_counter() - t0 < 1.0           # taken over at once, no waiting


# ---- a cluster through submitit ------------------------------------------------------------------------
def test_reproduce_help_shows_the_launcher(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    out = capsys.readouterr().out
    assert "--launcher" in out and "slurm" in out and "--slurm-arg" in out and "--no-wait" in out


def test_bad_launcher_arguments_are_refused(capsys):
    for argv in (["reproduce", "ics_dln", "--launcher", "pbs"], ["reproduce", "ics_dln", "--launcher", "local",
                                                                 "--slurm-arg", "account"],
                 ["reproduce", "ics_dln", "--launcher", "local", "--time", "0"], ["reproduce", "ics_dln", "--jobs", "0"],
                 ["reproduce", "nosuch", "--all"]):
        with pytest.raises(SystemExit) as err:
            main(argv)
        assert err.value.code == 2, argv


def test_slurm_parameters_carry_partition_gpus_time_and_extra_sbatch_arguments():
    from bnlab.launch import ClusterOptions, slurm_parameters
    p = slurm_parameters(ClusterOptions("slurm", partition="gpu", gpus_per_job=2, time_min=90,
                                        slurm_args={"account": "bn", "qos": "low"}))
    assert p["slurm_partition"] == "gpu" and p["gpus_per_node"] == 2 and p["timeout_min"] == 90
    assert p["slurm_additional_parameters"] == {"account": "bn", "qos": "low"} and p["slurm_signal_delay_s"] > 0


def _wait_for(predicate, timeout=120.0):
    t0 = time.time()
    while not predicate():
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.05)


@needs_fashion
def test_local_submitit_jobs_with_one_preempted_and_one_killed_assemble_what_a_local_run_gives(tmp_path, shared_home):
    pytest.importorskip("submitit")
    from bnlab import launch
    names, scale = ["landscape_dln", "theory"], "smoke"
    opts = launch.ClusterOptions("local", folder=str(tmp_path / "submitit"), gpus_per_job=0, time_min=10)
    plan = cpu_plan()
    keys = [w.key for w in launch.work_for(names, plan)]
    assert len(keys) == 3                               # two DLN runs and the theory analysis, one job each

    first = launch.submit(names, plan, opts)
    assert sorted(first["submitted"]) == sorted(keys)
    runs = [k for k in keys if len(k) == 16]           # config hashes; the analysis is theory-<hash>
    preempted, killed = runs[0], runs[1]
    _wait_for(lambda: plan.store.claim_holder(preempted) is not None)        # its run has started
    # preemption, as Slurm signals it: submitit checkpoints the job and requeues it, and the run resumes
    os.kill(plan.store.claim_holder(preempted)["pid"], signal.SIGUSR2)
    _wait_for(lambda: plan.store.claim_holder(killed) is not None)
    again = launch.submit(names, plan, opts)                            # while the jobs are going
    assert not again["submitted"] and killed in again["in_flight"]
    os.kill(plan.store.claim_holder(killed)["pid"], signal.SIGKILL)           # a job dies half-way
    failed = launch.wait(first["submitted"], poll_s=0.2)
    assert list(failed) == [killed]
    job = first["submitted"][preempted]
    assert "Requeued job" in (job.stdout() or "") + (job.stderr() or "")   # it came back after the signal
    with pytest.raises(RuntimeError, match="Run the same command again"):
        launch.assemble(names, plan)

    third = launch.submit(names, plan, opts)                            # resubmits the dead one only
    assert list(third["submitted"]) == [killed] and sorted(third["stored"]) == sorted(set(keys) - {killed})
    assert launch.wait(third["submitted"], poll_s=0.2) == {}
    assembled = {r.experiment: r for r in launch.assemble(names, plan)}
    assert not launch.submit(names, plan, opts)["submitted"]           # nothing is ever resubmitted once stored

    # the same experiments, computed here in one process (in the session's store: other tests train them too)
    local = {n: runner.compute(n, cpu_plan(scale=scale, home=shared_home)) for n in names}
    for a, b in zip(assembled["landscape_dln"].runs, local["landscape_dln"].runs):
        assert config_hash(a.config) == config_hash(b.config) and a.status == b.status
        assert sorted(a.arrays) == sorted(b.arrays)
        for k in a.arrays:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{a.name}: {k}")
    for k in local["theory"].arrays:
        np.testing.assert_array_equal(assembled["theory"].arrays[k], local["theory"].arrays[k], err_msg=k)
