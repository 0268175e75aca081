"""How well the live plan's ETA predicts a live run on this device: for each experiment, the ETA that
``bnlab.run`` prints (``estimate.preview``) against the wall time of computing it, in one process, from an empty run
store. Prints the ratio wall / ETA per experiment (1 is exact).

    python benchmarks/eta_check.py [--scale smoke] [EXPERIMENT ...]
"""
import argparse
import os
import tempfile
import time

from bnlab import estimate, runner
from bnlab.plan import RunPlan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="smoke")
    parser.add_argument("experiments", nargs="*", default=["bn_vs_standard", "noisy_bn", "ics_vgg", "dln_summed_loss",
                                                            "lp_dln", "bjorck_lr_sweep_resnet20", "theory"])
    args = parser.parse_args()
    print(f"{'experiment':28s} {'ETA s':>7s} {'wall s':>7s} {'wall/ETA':>8s}")
    for name in args.experiments:
        with tempfile.TemporaryDirectory() as home:
            plan = RunPlan.from_env(scale=args.scale, progress=False, home=home,
                                    data_dir=os.environ.get("BNLAB_DATA"))
            _, minutes = estimate.preview(name, plan)
            t0 = time.perf_counter()
            runner.compute(name, plan)
            wall = time.perf_counter() - t0
        print(f"{name:28s} {minutes * 60:7.1f} {wall:7.1f} {wall / (minutes * 60):8.2f}")


if __name__ == "__main__":
    main()
