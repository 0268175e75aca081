"""Command line: ``python -m bnlab list | reproduce EXPERIMENT --scale cpu | estimate --scale colab | verify``."""
import argparse
import os
import sys
from dataclasses import replace

import torch

from . import claims, results, scorecard
from .config import SCALES
from .engine import LANDSCAPE_BACKENDS
from .estimate import main as estimate_main, preview
from .experiments import registry as experiments
from .launch import ClusterOptions, launch
from .plan import RunPlan, check_device
from .runner import reproduce


def _check_device(parser, device: str) -> None:
    """--device must name a device torch knows and this machine has (one check, ``plan.check_device``, for the
    flag, ``RunPlan(device=...)`` and ``BNLAB_DEVICE``)."""
    try:
        check_device(device, "--device")
    except ValueError as err:
        parser.error(str(err))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bnlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments and which scales ship as cached results")
    rep = sub.add_parser("reproduce", help="recompute an experiment and save it with its provenance")
    rep.add_argument("experiment", nargs="*", help="experiment names (see `list`); none with --all")
    rep.add_argument("--all", action="store_true", help="every experiment")
    rep.add_argument("--scale", default="cpu", choices=SCALES)
    rep.add_argument("--out", default=None, help="folder for the result (bnlab/cached to refresh the shipped "
                                                 "cache); default: the reader's run store under $BNLAB_HOME")
    rep.add_argument("--jobs", default=None, help="independent runs in N parallel processes: they split a "
                                                  "CPU's cores, or take the visible GPUs in turn (several workers "
                                                  "per GPU when N is larger); 'auto': one per core on a CPU (or "
                                                  "BNLAB_JOBS; default 1)")
    rep.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    rep.add_argument("--channels-last", action="store_true", help="NHWC convolutions (or BNLAB_CHANNELS_LAST=1)")
    rep.add_argument("--compile", choices=("auto", "on", "off"), default=None,
                     help="torch.compile(mode='reduce-overhead') for steps without probes (or BNLAB_COMPILE=1/0); "
                          "default auto: on a CPU with a C++ compiler, for runs long enough to pay for compiling")
    rep.add_argument("--landscape", choices=LANDSCAPE_BACKENDS, default=None,
                     help="landscape probe back-end (or BNLAB_LANDSCAPE; default auto: vmap for the DLN, "
                          "the loop otherwise)")
    _cluster_arguments(rep)
    sub.add_parser("verify", help="check the shipped cache against MANIFEST.json")
    cl = sub.add_parser("claims", help="every tested claim with its verdict, effect, seed range and scale")
    cl.add_argument("--scale", default="cpu", choices=SCALES,
                    help="the shipped results at this scale, else those `reproduce` left in the run store")
    sub.add_parser("estimate", add_help=False,
                   help="runs, PFLOP and minutes per chapter at a scale, before running (estimate --help)")
    return parser


def _cluster_arguments(rep) -> None:
    cluster = rep.add_argument_group("cluster (through submitit: pip install 'bnlab[cluster]')")
    cluster.add_argument("--launcher", choices=("local", "slurm"), default=None,
                         help="submit each unique run as a job: 'slurm' to a Slurm cluster, 'local' as processes "
                              "here; the jobs share the run store, so put $BNLAB_HOME on a shared filesystem")
    cluster.add_argument("--partition", default="", help="Slurm partition")
    cluster.add_argument("--gpus-per-job", type=int, default=None,
                         help="GPUs per job (default 1 on Slurm; with 'local', 1 if this machine has a GPU, else 0)")
    cluster.add_argument("--cpus-per-job", type=int, default=4, help="CPU cores per job (default 4)")
    cluster.add_argument("--time", type=int, default=240, metavar="MINUTES",
                         help="time limit per job; a run that needs longer is requeued and resumes (default 240)")
    cluster.add_argument("--slurm-arg", action="append", default=[], metavar="KEY=VALUE",
                         help="extra sbatch parameter, e.g. --slurm-arg account=myproject (repeatable)")
    cluster.add_argument("--cluster-folder", default="", help="submitit's logs (default $BNLAB_HOME/submitit)")
    cluster.add_argument("--no-wait", action="store_true",
                         help="submit and return; the same command later assembles the finished runs")


def _list() -> int:
    w_name, w_fig = max(map(len, experiments())), max(len(e.figures) for e in experiments().values())
    for name, exp in experiments().items():
        shipped = ", ".join(results.shipped_scales(name)) or "none"
        print(f"{name:{w_name}s}  {exp.figures:{w_fig}s}  shipped: {shipped:12s} {exp.description}")
    return 0


def _claims(scale: str) -> int:
    store = RunPlan.from_env(scale=scale).store

    def load(experiment, scale):
        if scale in results.shipped_scales(experiment):
            return results.load(experiment, scale)
        stored = store.runs / "experiments" / experiment / f"{scale}.json"
        if not stored.exists():
            raise results.CachedResultMissing(f"none at scale {scale} (`python -m bnlab reproduce {experiment} "
                                              f"--scale {scale}` makes one)")
        found = results.load_file(stored, "live")
        results.check_config(found)
        return found
    print(scorecard.format_text(claims.judge_all(load, scale)))
    return 0


def _verify() -> int:
    try:
        problems = results.verify_manifest()
    except results.CachedResultCorrupt as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("\n".join(problems) if problems else "all shipped files match MANIFEST.json")
    return 1 if problems else 0


def _reproduce(parser, args) -> int:
    if args.all and args.experiment:
        parser.error("name experiments or pass --all, not both")
    names = list(experiments()) if args.all else args.experiment
    if not names:
        parser.error("name an experiment or pass --all")
    unknown = [n for n in names if n not in experiments()]
    if unknown:
        parser.error(f"unknown experiment(s) {unknown}; choose from {list(experiments())}")
    # the edge: arguments and environment resolved once into the plan every run below is given
    try:
        env_plan = RunPlan.from_env(scale=args.scale, device=args.device, jobs=args.jobs)
    except ValueError as err:
        parser.error(str(err))
    engine = replace(env_plan.engine, channels_last=args.channels_last or env_plan.engine.channels_last,
                     compile={"on": True, "off": False, "auto": "auto", None: env_plan.engine.compile}[args.compile],
                     landscape=args.landscape or env_plan.engine.landscape)
    plan = env_plan.with_(engine=engine)
    if args.launcher:
        bad = [a for a in args.slurm_arg if "=" not in a]
        if bad:
            parser.error(f"--slurm-arg takes KEY=VALUE, got {bad}")
        if args.gpus_per_job is None:
            args.gpus_per_job = 1 if args.launcher == "slurm" or torch.cuda.is_available() else 0
        try:
            opts = ClusterOptions(args.launcher, args.cluster_folder, args.partition, args.gpus_per_job, args.time,
                                  args.cpus_per_job, dict(a.split("=", 1) for a in args.slurm_arg))
        except ValueError as err:
            parser.error(str(err))
        assembled = launch(names, plan, opts, wait_for_jobs=not args.no_wait, out=args.out)
    else:
        assembled = []
        for name in names:
            print(preview(name, plan)[0], flush=True)
            assembled.append(reproduce(name, plan, args.out))
    for res in assembled:
        bad = [f"{r.name} (seed {r.seed}) diverged at step {r.diverged_step}" for r in res.runs
               if r.status == "diverged"]
        print(res.banner() + ("\n  " + "\n  ".join(bad) if bad else ""))
    return 0


def main(argv=None) -> int:
    parser = _parser()
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["estimate"]:
        return estimate_main(argv[1:])
    args = parser.parse_args(argv)
    if getattr(args, "device", None) is not None:
        _check_device(parser, args.device)
    if args.command == "list":
        return _list()
    if args.command == "claims":
        return _claims(args.scale)
    if args.command == "verify":
        return _verify()
    return _reproduce(parser, args)


def cli() -> int:
    """``main`` with a closed pipe (``python -m bnlab list | head``) treated as the reader's choice, not an error."""
    try:
        return main()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error when Python flushes
        return 0


if __name__ == "__main__":
    sys.exit(cli())
