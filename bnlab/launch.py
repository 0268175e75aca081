"""Many runs at once on a cluster, through submitit: ``python -m bnlab reproduce E --launcher slurm``.

Each unique run of the experiments asked for becomes one job, keyed by its config hash (an analysis experiment
is one job of its own), and writes into the run store that every job shares (``$BNLAB_HOME`` on a shared
filesystem). A run already in the store is never resubmitted; a run in flight (its store claim is live, or its job
is still queued or running) is not submitted again. A preempted or timed-out job is requeued by submitit and
resumes from its checkpoint in the store. A job that dies (killed, node failure) leaves its run missing: the same
command resubmits it. Once every run is in the store, the command assembles the experiment's result exactly as a
local ``reproduce`` would, from the same stored runs.

``submitit`` is an optional dependency (``pip install 'bnlab[cluster]'``), imported only here. The launcher
``local`` runs the jobs as processes on this machine with submitit's local executor (how the tests exercise it).
"""
from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import config_hash
from .experiments import get as get_experiment
from .plan import RunPlan
from .runner import compute, reproduce, run_one
from .atomic import atomic_json
from .store import pid_alive

LAUNCHERS = ("local", "slurm")
# submitit job states that mean "not over yet" (queued, running, or coming back after a requeue)
ACTIVE_STATES = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED",
                 "PREEMPTED", "READY", "UNKNOWN")


def _submitit():
    try:
        import submitit
    except ImportError:
        raise RuntimeError("the cluster launcher needs submitit: pip install 'bnlab[cluster]' "
                           "(or pip install submitit)") from None
    return submitit


@dataclass(frozen=True)
class ClusterOptions:
    """What each job asks the scheduler for; ``slurm_args`` are extra sbatch parameters (``{"account": "x"}``)."""

    launcher: str = "slurm"
    folder: str = ""               # submitit's logs and pickles; default: $BNLAB_HOME/submitit
    partition: str = ""
    gpus_per_job: int = 1
    time_min: int = 240            # a job's time limit; a run that needs longer is requeued from its checkpoint
    cpus_per_job: int = 4
    slurm_args: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"unknown launcher {self.launcher!r}; choose one of {LAUNCHERS}")
        if self.gpus_per_job < 0 or self.time_min < 1 or self.cpus_per_job < 1:
            raise ValueError("gpus_per_job must be >= 0, time_min >= 1 and cpus_per_job >= 1")


def executor(opts: ClusterOptions, plan: RunPlan):
    """The submitit executor for ``opts`` (the local one runs jobs as processes on this machine); its logs go to
    ``opts.folder``, by default next to the plan's run store."""
    submitit = _submitit()
    folder = opts.folder or str(plan.home / "submitit")
    if opts.launcher == "local":
        ex = submitit.LocalExecutor(folder)
        ex.update_parameters(timeout_min=opts.time_min, gpus_per_node=opts.gpus_per_job)
        return ex
    ex = submitit.AutoExecutor(folder, cluster="slurm")
    ex.update_parameters(**slurm_parameters(opts))
    return ex


def slurm_parameters(opts: ClusterOptions) -> dict:
    """submitit's AutoExecutor parameters for one bnlab job on Slurm (one task, its GPUs, a requeue signal)."""
    params = {"timeout_min": opts.time_min, "gpus_per_node": opts.gpus_per_job, "tasks_per_node": 1, "nodes": 1,
              "cpus_per_task": opts.cpus_per_job, "slurm_signal_delay_s": 120, "name": "bnlab"}
    if opts.partition:
        params["slurm_partition"] = opts.partition
    if opts.slurm_args:
        params["slurm_additional_parameters"] = dict(opts.slurm_args)
    return params


# ---- what a job runs ---------------------------------------------------------------------------------
class RunJob:
    """One training run as a submitit job. ``checkpoint`` (called by submitit on preemption or time-out) requeues
    the same call: the run's own checkpoint in the store, written as the job is stopped, makes it resume."""

    def __init__(self, cfg_dict: dict, plan: RunPlan):
        self.cfg_dict, self.plan = cfg_dict, plan

    def on_node(self) -> RunPlan:
        """The plan as the job runs it: the device picked on the node it landed on, no progress bars in the log."""
        return self.plan.with_(device=None, progress=False)

    def __call__(self) -> dict:
        run, reused = run_one(self.cfg_dict, self.on_node())
        return {"config_hash": config_hash(self.cfg_dict), "status": run.status, "reused": reused}

    def checkpoint(self, *args, **kwargs):
        return _submitit().helpers.DelayedSubmission(self, *args, **kwargs)


class AnalysisJob(RunJob):
    """An analysis experiment as one job; it stores its result with the store's analyses."""

    def __init__(self, experiment: str, plan: RunPlan):
        self.experiment, self.plan = experiment, plan

    def __call__(self) -> dict:
        res = compute(self.experiment, self.on_node())
        return {"experiment": self.experiment, "reused": bool(res.reused)}


# ---- submitting ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Work:
    """One unit of work: a training run (by config hash) or an analysis experiment."""

    key: str
    job: object

    def stored(self, plan: RunPlan) -> bool:
        if isinstance(self.job, AnalysisJob):
            name = self.job.experiment
            return plan.store.has_analysis(name, get_experiment(name).config_hash(plan.scale))
        return plan.store.has_run(self.key)


def work_for(names, plan: RunPlan) -> list:
    """The unique work of the experiments ``names`` at the plan's scale (a run shared by two experiments is one
    job); an analysis is keyed by its name and sized config hash."""
    out, seen = [], set()
    for name in names:
        exp = get_experiment(name)
        if exp.analysis is not None:
            key = f"{name}-{exp.config_hash(plan.scale)}"
            if key not in seen:
                seen.add(key)
                out.append(Work(key, AnalysisJob(name, plan)))
            continue
        for cfg in exp.runs(plan.scale):
            if cfg.hash not in seen:
                seen.add(cfg.hash)
                out.append(Work(cfg.hash, RunJob(cfg.to_dict(), plan)))
    return out


def _marker(plan: RunPlan, key: str) -> Path:
    return plan.store.runs / "jobs" / f"{key}.json"


def in_flight(plan: RunPlan, key: str) -> bool:
    """Whether the work ``key`` is being done now: its store claim is live, or the job submitted for it is still
    queued or running (Slurm: by the scheduler's state; local: its controller process is alive on this host)."""
    if plan.store.claim_holder(key) is not None:
        return True
    try:
        job = json.loads(_marker(plan, key).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    if job["launcher"] == "local":
        return job["host"] == socket.gethostname() and pid_alive(int(job["job_id"]))
    state = _submitit().SlurmJob(job["folder"], job["job_id"]).state
    return state.upper() in ACTIVE_STATES


def submit(names, plan: RunPlan, opts: ClusterOptions, ex=None) -> dict:
    """Submit every unit of work not stored and not in flight; returns {"submitted": {key: job}, "in_flight": [keys],
    "stored": [keys]}. Each submission is recorded under ``runs/jobs/`` so later commands see it in flight."""
    ex = ex if ex is not None else executor(opts, plan)
    out = {"submitted": {}, "in_flight": [], "stored": []}
    for w in work_for(names, plan):
        if w.stored(plan):
            out["stored"].append(w.key)
        elif in_flight(plan, w.key):
            out["in_flight"].append(w.key)
        else:
            job = ex.submit(w.job)
            atomic_json(_marker(plan, w.key), {"launcher": opts.launcher, "job_id": str(job.job_id),
                                               "folder": str(job.paths.folder), "host": socket.gethostname(),
                                               "submitted": time.time()})
            out["submitted"][w.key] = job
    return out


def wait(jobs: dict, poll_s: float = 2.0) -> dict:
    """Wait for submitted jobs; returns {key: error message} for those that ended without their work stored."""
    failed = {}
    for key, job in jobs.items():
        while not job.done():
            time.sleep(poll_s)
        try:
            job.result()
        except Exception as err:   # noqa: BLE001  (a job's exception comes back as submitit's FailedJobState etc.)
            failed[key] = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return failed


def missing(names, plan: RunPlan) -> list:
    return [w.key for w in work_for(names, plan) if not w.stored(plan)]


def assemble(names, plan: RunPlan, out=None) -> list:
    """Each experiment's result from the stored runs, saved as a local ``reproduce`` saves it; an error naming the
    runs still missing (rerun the same command to submit them) if any is."""
    absent = missing(names, plan)
    if absent:
        raise RuntimeError(f"{len(absent)} run(s) are not in the run store yet ({', '.join(absent[:5])}"
                           f"{', ...' if len(absent) > 5 else ''}): they are in flight, or their job died. Run the "
                           "same command again: it submits what is neither stored nor in flight, and assembles "
                           "once everything is stored.")
    return [reproduce(name, plan.with_(progress=False), out=out) for name in names]


def launch(names, plan: RunPlan, opts: ClusterOptions, wait_for_jobs: bool = True, out=None, log=print) -> list:
    """Submit what is missing; with ``wait_for_jobs``, wait and assemble. Returns the assembled results (or [])."""
    sub = submit(names, plan, opts)
    log(f"{len(sub['submitted'])} job(s) submitted ({opts.launcher}), {len(sub['in_flight'])} in flight, "
        f"{len(sub['stored'])} already in the run store ({plan.store.runs})")
    if not wait_for_jobs:
        if sub["submitted"] or sub["in_flight"]:
            log("not waiting: run the same command again to assemble once the jobs have finished")
            return []
    failed = wait(sub["submitted"])
    for key, why in failed.items():
        log(f"job for {key} ended without its run: {why}")
    while sub["in_flight"] and any(in_flight(plan, k) for k in sub["in_flight"]):
        time.sleep(5.0)      # someone else's jobs: wait until they are done too
    return assemble(names, plan, out=out)
