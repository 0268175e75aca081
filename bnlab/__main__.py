"""Command line: ``python -m bnlab list | reproduce EXPERIMENT --scale cpu | estimate --scale colab | verify``."""
import argparse
import sys


def main(argv=None) -> int:
    from .config import SCALES
    from .engine import LANDSCAPE_BACKENDS
    from .experiments import EXPERIMENTS
    parser = argparse.ArgumentParser(prog="python -m bnlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments and which scales ship as cached results")
    rep = sub.add_parser("reproduce", help="recompute an experiment and save it with its provenance")
    rep.add_argument("experiment", nargs="*", help="experiment names (see `list`); none with --all")
    rep.add_argument("--all", action="store_true", help="every experiment")
    rep.add_argument("--scale", default="cpu", choices=SCALES)
    rep.add_argument("--out", default=None, help="folder for the result (bnlab/cached to refresh the shipped "
                                                 "cache); default: the reader's run store under $BNLAB_HOME")
    rep.add_argument("--jobs", type=int, default=1, help="independent runs in parallel processes (they split a "
                                                         "CPU's cores, or share one GPU)")
    rep.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    rep.add_argument("--channels-last", action="store_true", help="NHWC convolutions (sets BNLAB_CHANNELS_LAST)")
    rep.add_argument("--compile", action="store_true", help="torch.compile(mode='reduce-overhead') for steps "
                                                            "without probes (sets BNLAB_COMPILE)")
    rep.add_argument("--landscape", choices=LANDSCAPE_BACKENDS, default=None,
                     help="landscape probe back-end (sets BNLAB_LANDSCAPE; default auto: vmap for the DLN, "
                          "the loop otherwise)")
    sub.add_parser("verify", help="check the shipped cache against MANIFEST.json")
    sub.add_parser("estimate", add_help=False,
                   help="runs, PFLOP and minutes per chapter at a scale, before running (estimate --help)")
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["estimate"]:
        from .estimate import main as estimate_main
        return estimate_main(argv[1:])
    args = parser.parse_args(argv)

    from . import results
    if args.command == "list":
        w_name, w_fig = max(map(len, EXPERIMENTS)), max(len(e.figures) for e in EXPERIMENTS.values())
        for name, exp in EXPERIMENTS.items():
            shipped = ", ".join(results.shipped_scales(name)) or "none"
            print(f"{name:{w_name}s}  {exp.figures:{w_fig}s}  shipped: {shipped:12s} {exp.description}")
        return 0
    if args.command == "verify":
        problems = results.verify_manifest()
        print("\n".join(problems) if problems else "all shipped files match MANIFEST.json")
        return 1 if problems else 0
    import os
    if args.channels_last:
        os.environ["BNLAB_CHANNELS_LAST"] = "1"      # the environment reaches --jobs worker processes too
    if args.compile:
        os.environ["BNLAB_COMPILE"] = "1"
    if args.landscape:
        os.environ["BNLAB_LANDSCAPE"] = args.landscape
    names = list(EXPERIMENTS) if args.all else args.experiment
    if not names:
        parser.error("name an experiment or pass --all")
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        parser.error(f"unknown experiment(s) {unknown}; choose from {list(EXPERIMENTS)}")
    from .estimate import plan
    for name in names:
        print(plan(name, args.scale, device=args.device)[0], flush=True)
        res = results.reproduce(name, args.scale, args.out, args.device, args.jobs)
        bad = [f"{r.name} (seed {r.seed}) diverged at step {r.diverged_step}" for r in res.runs
               if r.status == "diverged"]
        print(res.banner() + ("\n  " + "\n  ".join(bad) if bad else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
