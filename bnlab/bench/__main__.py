"""``python -m bnlab.bench``: the command line (see the package docstring)."""
from __future__ import annotations

import argparse
import sys

from ..device import pick
from . import __doc__ as _package_doc
from .report import format_report, run_all, write
from .timing import BenchConfig, defaults_for

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bnlab.bench", description=_package_doc.split("\n\n")[0])
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--arch", default="vgg16", choices=("vgg16", "vgg11"))
    ap.add_argument("--norm", default="batch", help="VGG normalisation for sections 1-2 (default batch)")
    ap.add_argument("--width", type=float, default=None, help="VGG width (default 0.0625 on CPU, 1.0 on CUDA)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default 45 CPU, 150 CUDA)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5 CPU, 10 CUDA)")
    ap.add_argument("--repeats", type=int, default=3, help="timed blocks per measurement; the median is kept")
    ap.add_argument("--data", default="auto", choices=("auto", "real", "synthetic"),
                    help="real Fashion-MNIST, synthetic uint8 images of its shape, or real if found (default)")
    ap.add_argument("--sections", default="1,2,3,4,5", help="which sections to run, e.g. 1,3,5 (4 needs 2)")
    ap.add_argument("--compile", action="store_true", help="also time the engine with torch.compile "
                                                            "(mode reduce-overhead; compiling takes minutes on a CPU)")
    ap.add_argument("--out", default=None, help="write FILE.json and FILE.txt; 'auto' = "
                                                "benchmarks/results/<device>-<date>.json")
    args = ap.parse_args(argv)
    dev = str(pick(args.device))
    d = defaults_for(dev)
    cfg = BenchConfig(device=dev, arch=args.arch, norm=args.norm,
                      width=args.width if args.width is not None else d["width"],
                      steps=args.steps if args.steps is not None else d["steps"],
                      warmup=args.warmup if args.warmup is not None else d["warmup"], repeats=args.repeats,
                      data=args.data, matmul_n=d["matmul_n"],
                      variants=("channels_last",) + (("tf32",) if dev.startswith("cuda") else ())
                      + (("compile",) if args.compile else ()))
    sections = tuple(int(s) for s in args.sections.split(","))
    results = run_all(cfg, sections, log=lambda s: print(s, file=sys.stderr, flush=True))
    print(format_report(results))
    if args.out:
        paths = write(results, args.out)
        print("written: " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
