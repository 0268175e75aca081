"""Results with provenance: the result types, saved atomically, shipped caches checked by hash.

Layout: shipped results in ``bnlab/cached/<experiment>/<scale>.{json,npz}`` listed with sha256 in
``bnlab/cached/MANIFEST.json``; a reader's runs in ``$BNLAB_HOME/runs`` (``bnlab.store``; never the package folder
unless ``--out`` names it). Computing them is ``bnlab.runner``'s job.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .config import SCALES, config_hash, diff_configs
from .scales import get_scale
from .experiments import get as get_experiment
from .records import Run
from .atomic import atomic_json, atomic_npz
from .store import source_hash

CACHED_DIR = Path(__file__).parent / "cached"
MANIFEST = CACHED_DIR / "MANIFEST.json"
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "dln_synthetic": "synthetic regression"}


class CachedResultMismatch(RuntimeError):
    """A cached result was made with other settings than the registry asks for now."""


class CachedResultMissing(FileNotFoundError):
    """No cached result at the requested scale."""


@dataclass
class Result:
    """An experiment's runs (or, for checks, arrays) and the provenance of how they were made."""

    experiment: str
    scale: str
    provenance: dict
    runs: list = field(default_factory=list)
    arrays: dict = field(default_factory=dict)
    source: str = "live"                # "cached" or "live"
    reused: int = 0                     # live: how many of its runs (or, for an analysis, 1) the run store held
    store_dir: str = ""                 # live: the run store it was computed in

    def select(self, norm=None, lr=None, seed=None) -> list:
        return [r for r in self.runs if (norm is None or r.norm == norm) and (lr is None or r.lr == lr)
                and (seed is None or r.seed == seed)]

    def banner(self) -> str:
        """A short, machine-independent description of what the reader is looking at."""
        p = self.provenance
        seeds = sorted({r.seed for r in self.runs})
        seed_txt = "" if not seeds else (f", seed {seeds[0]}" if len(seeds) == 1 else
                                         f", seeds {', '.join(map(str, seeds))}")
        n = len(self.runs) or 1
        if self.source == "cached":
            what, tail = "Cached result", " Set BNLAB_MODE=live to recompute."
        elif self.reused >= n:
            what, tail = "Live result, reused from the run store", f" All {n} run(s) were computed earlier " \
                f"({self.store_dir}); delete them there to recompute."
        else:
            what = "Live result"
            tail = f" {self.reused} of {n} runs reused from the run store." if self.reused else ""
        took = f"; total run time {p['wall_s'] / 60:.1f} min" if p.get("wall_s") else ""
        return (f"{what}: {self.experiment}, {self.scale} scale, {p.get('dataset_name', '-')}{seed_txt}; "
                f"produced on {p['device_name']} with bnlab {p['bnlab']}, torch {p['torch']}, on {p['date']}"
                f"{took}.{tail}")


# ---- provenance -------------------------------------------------------------------------------
def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


PRECISION_NAMES = {"fp32": "strict fp32 (TF32 off)", "fp64": "fp64",
                   "tf32": "TF32 training steps and evaluation, strict fp32 probed steps and probes"}


def provenance(experiment: str, scale: str, dataset: str, device_info: dict, wall_s: float,
               precision: str = PRECISION_NAMES["fp32"]) -> dict:
    return {"experiment": experiment, "scale": scale, "dataset": dataset,
            "dataset_name": DATASET_NAMES.get(dataset, dataset), **device_info, "precision": precision,
            "bnlab": __version__, "git_commit": git_commit(),
            "source_hash": source_hash(), "date": _dt.date.today().isoformat(), "wall_s": round(wall_s, 1)}


# ---- saving and loading -----------------------------------------------------------------------
def save(result: Result, folder: Path) -> tuple[Path, Path]:
    """Write ``<folder>/<experiment>/<scale>.json`` and ``.npz`` atomically."""
    base = Path(folder) / result.experiment
    meta = {"experiment": result.experiment, "scale": result.scale, "provenance": result.provenance,
            "runs": [{"config": r.config, "config_hash": config_hash(r.config), "status": r.status,
                      "diverged_step": r.diverged_step, "meta": r.meta} for r in result.runs],
            "array_keys": sorted(result.arrays)}
    arrays = {f"run{i}/{k}": v for i, r in enumerate(result.runs) for k, v in r.arrays.items()}
    arrays.update({f"exp/{k}": v for k, v in result.arrays.items()})
    npz, js = base / f"{result.scale}.npz", base / f"{result.scale}.json"

    atomic_npz(npz, arrays)
    meta["npz_sha256"] = sha256(npz)          # the pair is one unit: a json read with another npz is refused
    atomic_json(js, meta, indent=1, sort_keys=True)
    return js, npz


def load_file(js: Path, source: str = "cached") -> Result:
    meta = json.loads(Path(js).read_text())
    npz = Path(js).with_suffix(".npz")
    if "npz_sha256" in meta and sha256(npz) != meta["npz_sha256"]:
        raise CachedResultCorrupt(
            f"{npz} is not the arrays file that {Path(js).name} was saved with (a save was interrupted between the "
            f"two): compute it again with `python -m bnlab reproduce {meta.get('experiment', '...')} --scale "
            f"{meta.get('scale', '...')}`.")
    with np.load(Path(js).with_suffix(".npz")) as z:
        data = {k: z[k] for k in z.files}
    runs = []
    for i, r in enumerate(meta["runs"]):
        prefix = f"run{i}/"
        arrays = {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}
        runs.append(Run(r["config"], r["status"], r["diverged_step"], arrays, r.get("meta", {})))
    exp_arrays = {k[4:]: v for k, v in data.items() if k.startswith("exp/")}
    return Result(meta["experiment"], meta["scale"], meta["provenance"], runs, exp_arrays, source)


def shipped_scales(experiment: str) -> list:
    return [s for s in SCALES if (CACHED_DIR / experiment / f"{s}.json").exists()]


def check_config(result: Result) -> None:
    """Raise :class:`CachedResultMismatch` when the stored runs differ from what the registry asks for."""
    exp = get_experiment(result.experiment)
    if exp.analysis is not None:
        wanted = exp.analysis.config(get_scale(result.scale))
        have = result.provenance.get("config")
        if have is not None and config_hash(have) == config_hash(wanted):
            return
        detail = ("it records no sized config (made before analyses were hashed)" if have is None else
                  "differing fields: " + ", ".join(sorted(diff_configs(wanted, have))))
        raise CachedResultMismatch(
            f"the cached result for {result.experiment!r} at scale {result.scale!r} was made with other settings "
            f"({detail}). Recompute it with `python -m bnlab reproduce {result.experiment} --scale {result.scale}` "
            f"or set BNLAB_MODE=live.")
    wanted = [c.to_dict() for c in exp.runs(result.scale)]
    have = [r.config for r in result.runs]
    if [config_hash(c) for c in wanted] == [config_hash(c) for c in have]:
        return
    if len(wanted) != len(have):
        detail = f"{len(have)} runs stored, {len(wanted)} expected"
    else:
        fields = sorted({f for w, h in zip(wanted, have) for f in diff_configs(w, h)})
        detail = "differing fields: " + ", ".join(fields)
    raise CachedResultMismatch(
        f"the cached result for {result.experiment!r} at scale {result.scale!r} was made with other settings "
        f"({detail}). Recompute it with `python -m bnlab reproduce {result.experiment} --scale {result.scale}` "
        f"or set BNLAB_MODE=live.")


def load(experiment: str, scale: str | None = None) -> Result:
    """The shipped result of ``experiment`` (largest shipped scale unless ``scale`` is given), checked."""
    get_experiment(experiment)
    available = shipped_scales(experiment)
    if scale is None:
        if not available:
            raise CachedResultMissing(f"no cached result ships for {experiment!r}; compute it with "
                                      f"`python -m bnlab reproduce {experiment} --scale cpu` or BNLAB_MODE=live")
        scale = available[0]
    get_scale(scale)
    if scale not in available:
        raise CachedResultMissing(
            f"no cached result for {experiment!r} at scale {scale!r} (shipped: {available or 'none'}). "
            f"Run `python -m bnlab reproduce {experiment} --scale {scale}` or set BNLAB_MODE=live.")
    js = CACHED_DIR / experiment / f"{scale}.json"
    for path in (js, js.with_suffix(".npz")):
        check_shipped(path)
    result = load_file(js, "cached")
    check_config(result)
    return result


# ---- manifest ---------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_manifest(folder: Path = CACHED_DIR) -> dict:
    """List every shipped file with its sha256, size and provenance (run after reproduce --out)."""
    entries = {}
    for path in sorted(Path(folder).glob("*/*.*")):
        if path.suffix not in (".json", ".npz"):
            continue
        rel = path.relative_to(folder).as_posix()
        entry = {"sha256": sha256(path), "bytes": path.stat().st_size}
        if path.suffix == ".json":
            entry["provenance"] = json.loads(path.read_text())["provenance"]
        entries[rel] = entry
    atomic_json(Path(folder) / "MANIFEST.json", entries, indent=1, sort_keys=True)
    return entries


class CachedResultCorrupt(RuntimeError):
    """A shipped file differs from what MANIFEST.json says was shipped, or the manifest itself is unreadable."""


def read_manifest(folder: Path | None = None) -> dict:
    path = Path(CACHED_DIR if folder is None else folder) / "MANIFEST.json"
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict) or not all("sha256" in e for e in manifest.values()):
            raise ValueError("not a manifest")
        return manifest
    except (OSError, ValueError) as err:
        raise CachedResultCorrupt(
            f"{path} is missing or unreadable ({type(err).__name__}: {err}), so the shipped results cannot be "
            f"checked. Reinstall bnlab, or in a checkout restore it with `git checkout -- {path.name}` (or rewrite "
            f"it with `python -m bnlab reproduce ... --out bnlab/cached`).") from None


_CHECKED = {}    # path -> (size, mtime) at the check: each shipped file is hashed once per process


def check_shipped(path: Path) -> None:
    """Raise :class:`CachedResultCorrupt`, naming the file and the fix, unless ``path`` (under bnlab/cached) has the
    sha256 that MANIFEST.json records for it."""
    path = Path(path)
    st = path.stat()
    if _CHECKED.get(path) == (st.st_size, st.st_mtime_ns):
        return
    rel = path.relative_to(CACHED_DIR).as_posix()
    entry = read_manifest().get(rel)
    if entry is None or sha256(path) != entry["sha256"]:
        experiment, scale = rel.split("/")[0], path.stem
        raise CachedResultCorrupt(
            f"the shipped file {path} {'is not listed in' if entry is None else 'differs from'} MANIFEST.json: it was "
            f"edited or damaged after it was made, so it is not shown. Reinstall bnlab (pip install --force-reinstall "
            f"bnlab), restore it with git, or recompute it: `python -m bnlab reproduce {experiment} --scale {scale} "
            f"--out bnlab/cached`.")
    _CHECKED[path] = (st.st_size, st.st_mtime_ns)


def verify_manifest(folder: Path | None = None) -> list:
    """Files that are missing, whose sha256 differs from the manifest, or that it does not list (empty = all good)."""
    folder = CACHED_DIR if folder is None else folder
    manifest = read_manifest(folder)
    problems = [f"{rel}: missing" if not (Path(folder) / rel).exists() else f"{rel}: sha256 differs"
                for rel, e in manifest.items()
                if not (Path(folder) / rel).exists() or sha256(Path(folder) / rel) != e["sha256"]]
    listed = set(manifest)
    problems += [f"{p.relative_to(folder).as_posix()}: not in MANIFEST.json" for p in Path(folder).glob("*/*.*")
                 if p.suffix in (".json", ".npz") and p.relative_to(folder).as_posix() not in listed]
    return problems
