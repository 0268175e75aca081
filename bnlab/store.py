"""The reader's run store, ``<home>/runs`` (home: ``$BNLAB_HOME``, default ``~/.cache/bnlab``, resolved by
``bnlab.plan``): finished training runs keyed by their config hash, analysis results keyed by experiment, the hash
of their sized config and the hash of bnlab's sources, checkpoints of runs in progress. A live chapter reuses what
is here, so an interrupted or repeated run does not start over.
On Colab, point ``BNLAB_HOME`` at Google Drive to keep the store when the VM is recycled.

Files are written atomically (temp file + rename), so a store never holds half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import threading
import time
import warnings
import zipfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np


DEFAULT_HOME = Path.home() / ".cache" / "bnlab"     # a reader's store and data unless $BNLAB_HOME says otherwise


class StoreNotWritable(PermissionError):
    """The run store's folder cannot be written."""


@lru_cache(maxsize=1)
def source_hash() -> str:
    """sha256 of bnlab's Python sources: which code produced a result (read once per process)."""
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
UNREADABLE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile)   # json.JSONDecodeError is a ValueError


def _read_pair(js: Path, npz: Path) -> tuple[dict, dict] | None:
    """(json, arrays) of a stored pair, or None when either cannot be read: then both are quarantined (named in a
    warning) so the work is done again rather than trusted or failing."""
    try:
        meta = json.loads(js.read_text())
        with np.load(npz) as z:
            return meta, {k: z[k] for k in z.files}
    except UNREADABLE as err:
        moved = [str(quarantine(p)) for p in (js, npz) if p.exists()]
        warnings.warn(f"{js.with_suffix('')}.{{json,npz}} could not be read ({type(err).__name__}: {err}); moved to "
                      f"{', '.join(moved)}; it will be computed again", stacklevel=3)
        return None


def _write_pair(js: Path, npz: Path, meta: dict, arrays: dict) -> None:
    """Write the arrays, then the json: a pair counts as stored once its json is there."""
    atomic_npz(npz, arrays)
    atomic_json(js, meta)


TMP_STALE_S = 3600.0       # a temp file older than this was left by a killed writer
# claims: one process trains a config at a time
CLAIM_STALE_S = 300.0      # a claim whose heartbeat is older than this is stale (its holder died on another host)
CLAIM_HEARTBEAT_S = 30.0
CLAIM_POLL_S = 2.0


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def quarantine(path: Path) -> Path:
    """Move an unreadable file aside (``<name>.corrupt``, replacing an older one) so it is kept for inspection
    but never read again; returns where it went."""
    aside = Path(path).with_name(Path(path).name + ".corrupt")
    os.replace(path, aside)
    return aside


class RunStore:
    """One run store: ``<home>/runs``. Many processes may share it (see :meth:`claim`)."""

    def __init__(self, home):
        self.home = Path(home)
        self.runs = self.home / "runs"

    def __repr__(self):
        return f"RunStore({str(self.home)!r})"

    def ensure_writable(self) -> Path:
        """The run store's folder, created if need be; a clear error with the fix when it cannot be written."""
        folder = self.runs
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test.", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            raise StoreNotWritable(
                f"cannot write bnlab's run store at {folder} ({type(err).__name__}: {err.strerror or err}). Set BNLAB_HOME "
                f"to a folder you can write, e.g. export BNLAB_HOME=/tmp/bnlab (on Colab, a folder on Google Drive).") \
                from None
        return folder

    def run_paths(self, config_hash: str) -> tuple[Path, Path]:
        """(meta .json, arrays .npz) of a finished run."""
        return self.runs / f"{config_hash}.json", self.runs / f"{config_hash}.npz"

    def checkpoint_path(self, config_hash: str) -> Path:
        return self.runs / f"{config_hash}.ckpt"

    def has_run(self, config_hash: str) -> bool:
        return all(p.exists() for p in self.run_paths(config_hash))

    def load_run(self, config_hash: str) -> tuple[dict, dict] | None:
        """(meta, arrays) of a finished run; None if it is not stored or its files are unreadable (quarantined)."""
        return _read_pair(*self.run_paths(config_hash)) if self.has_run(config_hash) else None

    def save_run(self, config_hash: str, meta: dict, arrays: dict) -> None:
        _write_pair(*self.run_paths(config_hash), meta, arrays)

    def analysis_paths(self, experiment: str, config_hash: str) -> tuple[Path, Path]:
        stem = f"{experiment}-{config_hash}-{source_hash()}"
        return self.runs / "analyses" / f"{stem}.json", self.runs / "analyses" / f"{stem}.npz"

    def has_analysis(self, experiment: str, config_hash: str) -> bool:
        return all(p.exists() for p in self.analysis_paths(experiment, config_hash))

    def load_analysis(self, experiment: str, config_hash: str) -> tuple[dict, dict] | None:
        """(provenance, arrays) of an analysis computed earlier with these sources; None if absent or unreadable."""
        return _read_pair(*self.analysis_paths(experiment, config_hash)) if self.has_analysis(experiment, config_hash) else None

    def remove_stale_temps(self, folder: Path | None = None) -> list:
        """Delete temp files (``.<name>.*.tmp``) older than an hour that a killed writer left behind; returns them."""
        folder = self.runs if folder is None else Path(folder)
        gone = []
        for tmp in list(folder.glob(".*.tmp")) + list(folder.glob("*/.*.tmp")):
            try:
                if time.time() - tmp.stat().st_mtime > TMP_STALE_S:
                    tmp.unlink()
                    gone.append(tmp)
            except FileNotFoundError:
                pass
        return gone

    def save_analysis(self, experiment: str, config_hash: str, provenance: dict, arrays: dict) -> None:
        _write_pair(*self.analysis_paths(experiment, config_hash), provenance, arrays)

    def claim_path(self, config_hash: str) -> Path:
        return self.runs / f"{config_hash}.claim"

    def claim_holder(self, config_hash: str) -> dict | None:
        """Who holds the claim on a config ({"pid", "host", "since"}), or None when nobody live does (no claim file,
        or a stale one: its process is gone from this host, or its heartbeat stopped)."""
        path = self.claim_path(config_hash)
        try:
            holder = json.loads(path.read_text())
            age = time.time() - path.stat().st_mtime
        except (FileNotFoundError, json.JSONDecodeError):
            return None         # gone, or being written this instant (the next look sees it)
        if holder.get("host") == socket.gethostname() and not pid_alive(int(holder.get("pid", -1))):
            return None
        return None if age > CLAIM_STALE_S else holder

    @contextmanager
    def claim(self, config_hash: str, poll_s: float = CLAIM_POLL_S):
        """Hold the claim on a config while training it: created atomically (O_EXCL) with this process's pid and host,
        kept fresh by a heartbeat thread, removed on exit. Waits while another live process holds it; takes over a
        stale claim."""
        path = self.claim_path(config_hash)
        path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self.claim_holder(config_hash) is None and path.exists():
                    stale = path.with_name(f"{path.name}.stale-{os.getpid()}")
                    try:
                        os.replace(path, stale)         # one taker wins the rename; the others retry
                        stale.unlink(missing_ok=True)
                    except FileNotFoundError:
                        pass
                    continue
                time.sleep(poll_s)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            break
        stop = threading.Event()

        def heartbeat():
            while not stop.wait(CLAIM_HEARTBEAT_S):
                try:
                    os.utime(path)
                except FileNotFoundError:
                    return
        beat = threading.Thread(target=heartbeat, daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            try:
                if json.loads(path.read_text()).get("pid") == me["pid"]:
                    path.unlink()
            except (FileNotFoundError, json.JSONDecodeError):
                pass
