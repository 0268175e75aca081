"""The reader's run store, ``$BNLAB_HOME/runs`` (default ``~/.cache/bnlab/runs``): finished training runs keyed
by their config hash, analysis results keyed by experiment, scale and the hash of bnlab's sources, checkpoints of
runs in progress. A live chapter reuses what is here, so an interrupted or repeated run does not start over.
On Colab, point ``BNLAB_HOME`` at Google Drive to keep the store when the VM is recycled.

Files are written atomically (temp file + rename), so a store never holds half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .data import home


def runs_dir() -> Path:
    return home() / "runs"


def source_hash() -> str:
    """sha256 of bnlab's Python sources: which code produced a result."""
    h = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp)`` on a fresh temp file next to ``path``, then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_npz(path: Path, arrays: dict) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    atomic_write(path, write)


def atomic_json(path: Path, obj) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj)))


# ---- training runs, by config hash ---------------------------------------------------------------
def run_paths(config_hash: str) -> tuple[Path, Path]:
    """(meta .json, arrays .npz) of a finished run."""
    return runs_dir() / f"{config_hash}.json", runs_dir() / f"{config_hash}.npz"


def checkpoint_path(config_hash: str) -> Path:
    return runs_dir() / f"{config_hash}.ckpt"


def has_run(config_hash: str) -> bool:
    return all(p.exists() for p in run_paths(config_hash))


def load_run(config_hash: str) -> tuple[dict, dict]:
    """(meta, arrays) of a finished run."""
    js, npz = run_paths(config_hash)
    meta = json.loads(js.read_text())
    with np.load(npz) as z:
        return meta, {k: z[k] for k in z.files}


def save_run(config_hash: str, meta: dict, arrays: dict) -> None:
    js, npz = run_paths(config_hash)
    atomic_npz(npz, arrays)
    atomic_json(js, meta)          # written last: a run counts as stored once its meta is there


# ---- analysis results (no config hash of their own: keyed by the code that sizes and computes them) ------
def analysis_paths(experiment: str, scale: str) -> tuple[Path, Path]:
    stem = f"{experiment}-{scale}-{source_hash()}"
    return runs_dir() / "analyses" / f"{stem}.json", runs_dir() / "analyses" / f"{stem}.npz"


def has_analysis(experiment: str, scale: str) -> bool:
    return all(p.exists() for p in analysis_paths(experiment, scale))


def load_analysis(experiment: str, scale: str) -> tuple[dict, dict]:
    """(provenance, arrays) of an analysis computed earlier with these sources."""
    js, npz = analysis_paths(experiment, scale)
    with np.load(npz) as z:
        return json.loads(js.read_text()), {k: z[k] for k in z.files}


def save_analysis(experiment: str, scale: str, provenance: dict, arrays: dict) -> None:
    js, npz = analysis_paths(experiment, scale)
    atomic_npz(npz, arrays)
    atomic_json(js, provenance)

