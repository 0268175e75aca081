"""The reader's run store, ``<home>/runs`` (home: ``$BNLAB_HOME``, default ``~/.cache/bnlab``, resolved by
``bnlab.plan``): finished training runs keyed by their config hash, analysis results keyed by experiment, the hash
of their sized config and the hash of bnlab's sources, checkpoints of runs in progress. A live chapter reuses what
is here, so an interrupted or repeated run does not start over.
On Colab, point ``BNLAB_HOME`` at Google Drive to keep the store when the VM is recycled.

Files are written atomically (temp file + rename), so a store never holds half a file, and every record is checked
when it is read: one that fails (unreadable, wrong types, a config that does not hash to its name) is named in a
warning, moved aside as ``<name>.corrupt`` and computed again, never served.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import tempfile
import threading
import time
import uuid
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


# ---- training runs, by config hash ---------------------------------------------------------------
UNREADABLE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile)   # json.JSONDecodeError is a ValueError


class InvalidRecord(ValueError):
    """A stored record that reads but is not what its name says it is."""


def _read_pair(js: Path, npz: Path, check=None) -> tuple[dict, dict] | None:
    """(json, arrays) of a stored pair, or None when either cannot be read or ``check(json, arrays)`` finds a problem
    (it raises): then both are quarantined (named in a warning) so the work is done again rather than trusted or
    failing."""
    try:
        meta = json.loads(js.read_text())
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if check is not None:
            check(meta, arrays)
        return meta, arrays
    except UNREADABLE + (InvalidRecord, TypeError, AttributeError, IndexError) as err:
        moved = [str(quarantine(p)) for p in (js, npz) if p.exists()]
        warnings.warn(f"{js.with_suffix('')}.{{json,npz}} could not be read ({type(err).__name__}: {err}); moved to "
                      f"{', '.join(moved)}; it will be computed again", stacklevel=3)
        return None


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise InvalidRecord(what)


def check_run_record(config_hash: str, meta, arrays: dict) -> None:
    """Raise :class:`InvalidRecord` unless ``meta`` / ``arrays`` are a finished run of the config named ``config_hash``:
    the schema and types of :meth:`RunStore.save_run`'s record, a config that is valid and hashes to that name, and the
    per-step curves that config asks for."""
    from .config import config_hash as hash_of, from_dict      # lazily: this module stays importable on its own
    _require(isinstance(meta, dict), f"the record is a {type(meta).__name__}, not an object")
    missing = [k for k in ("config", "status", "diverged_step", "meta") if k not in meta]
    _require(not missing, f"keys {missing} are missing")
    config, status, diverged = meta["config"], meta["status"], meta["diverged_step"]
    _require(isinstance(config, dict) and isinstance(meta["meta"], dict), "config and meta must be objects")
    _require(status in ("ok", "diverged"), f"status {status!r} is neither 'ok' nor 'diverged'")
    cfg = from_dict(config)                                      # its own validation: ValueError, KeyError, TypeError
    _require(hash_of(config) == config_hash, f"its config hashes to {hash_of(config)}, not to its name {config_hash}")
    steps = cfg.train.steps
    ok_step = isinstance(diverged, int) and not isinstance(diverged, bool) and 0 <= diverged < steps
    _require(diverged is None if status == "ok" else ok_step,
             f"status {status!r} with diverged_step {diverged!r} (None when ok, a step in 0..{steps - 1} when diverged)")
    n = len(range(0, steps, cfg.train.log_every))
    for key in ("step", "train_loss"):
        a = arrays.get(key)
        _require(a is not None and a.shape == (n,) and a.dtype.kind in "iuf",
                 f"array {key!r} is {None if a is None else (a.dtype, a.shape)}, not {n} numbers")


def check_analysis_record(experiment: str, config_hash: str, provenance, arrays: dict) -> None:
    """Raise :class:`InvalidRecord` unless ``provenance`` is the provenance of ``experiment`` computed for the sized
    config named ``config_hash``."""
    from .config import config_hash as hash_of
    _require(isinstance(provenance, dict), f"the record is a {type(provenance).__name__}, not an object")
    _require(provenance.get("experiment") == experiment, f"it is the record of {provenance.get('experiment')!r}")
    config = provenance.get("config")
    _require(config is not None and hash_of(config) == config_hash == provenance.get("config_hash"),
             f"its config does not hash to its name {config_hash}")


def _write_pair(js: Path, npz: Path, meta: dict, arrays: dict) -> None:
    """Write the arrays, then the json: a pair counts as stored once its json is there."""
    from .atomic import atomic_json, atomic_npz      # lazily: this module stays importable on its own
    atomic_npz(npz, arrays)
    atomic_json(js, meta)


TMP_STALE_S = 3600.0       # a temp file older than this was left by a killed writer
# claims: one process trains a config at a time
CLAIM_STALE_S = 300.0      # a claim whose heartbeat is older than this is stale (its holder died on another host)
CLAIM_HEARTBEAT_S = 30.0
CLAIM_POLL_S = 2.0
CLAIM_WRITE_S = 10.0       # an empty claim younger than this is being written (by bnlab before 0.2.1)
CLAIM_BREAK_STALE_S = 60.0  # a break lock older than this was left by a taker that died holding it


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


def remove_stale_temps(*folders) -> list:
    """Delete the temp files (``.<name>.*.tmp``, as :func:`atomic_bytes` and the claims name theirs) older than
    :data:`TMP_STALE_S` in ``folders`` and every folder below them; returns them. A fresh one may be a live writer's."""
    gone = []
    for folder in folders:
        for tmp in Path(folder).rglob(".*.tmp") if Path(folder).is_dir() else ():
            try:
                if tmp.is_file() and time.time() - tmp.stat().st_mtime > TMP_STALE_S:
                    tmp.unlink()
                    gone.append(tmp)
            except FileNotFoundError:
                pass
    return gone


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
        if not self.has_run(config_hash):
            return None
        return _read_pair(*self.run_paths(config_hash), lambda m, a: check_run_record(config_hash, m, a))

    def save_run(self, config_hash: str, meta: dict, arrays: dict) -> None:
        """Store a finished run: its arrays, then its record (checked when read, :func:`check_run_record`)."""
        _write_pair(*self.run_paths(config_hash), meta, arrays)

    def analysis_paths(self, experiment: str, config_hash: str) -> tuple[Path, Path]:
        stem = f"{experiment}-{config_hash}-{source_hash()}"
        return self.runs / "analyses" / f"{stem}.json", self.runs / "analyses" / f"{stem}.npz"

    def has_analysis(self, experiment: str, config_hash: str) -> bool:
        return all(p.exists() for p in self.analysis_paths(experiment, config_hash))

    def load_analysis(self, experiment: str, config_hash: str) -> tuple[dict, dict] | None:
        """(provenance, arrays) of an analysis computed earlier with these sources; None if absent or unreadable."""
        if not self.has_analysis(experiment, config_hash):
            return None
        return _read_pair(*self.analysis_paths(experiment, config_hash),
                          lambda m, a: check_analysis_record(experiment, config_hash, m, a))

    def remove_stale_temps(self, *folders) -> list:
        """Delete the temp files (``.<name>.*.tmp``) older than an hour that killed writers left in the run store
        (every folder under it) and in ``folders`` (e.g. the data folder, see :func:`remove_stale_temps`); returns
        them."""
        return remove_stale_temps(self.runs, *folders)

    def save_analysis(self, experiment: str, config_hash: str, provenance: dict, arrays: dict) -> None:
        _write_pair(*self.analysis_paths(experiment, config_hash), provenance, arrays)

    def claim_path(self, config_hash: str) -> Path:
        return self.runs / f"{config_hash}.claim"

    def claim_holder(self, config_hash: str) -> dict | None:
        """Who holds the claim on a config ({"pid", "host", "since"}), or None when nobody live does (no claim file,
        or a stale one: its process is gone from this host, its heartbeat stopped, or it holds unexpected content)."""
        return self._judge(self.claim_path(config_hash))[1]

    def _judge(self, path: Path) -> tuple[str, dict | None]:
        """("absent" | "held" | "stale", the holder when held) of a claim file."""
        try:
            text = path.read_text()
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return "absent", None
        try:
            holder = json.loads(text)
            valid = isinstance(holder, dict) and isinstance(holder.get("pid"), int) and isinstance(holder.get("host"), str)
        except ValueError:
            holder, valid = None, False
        if not valid:
            if not text and age < CLAIM_WRITE_S:
                # an older bnlab creates the file first and fills it after: a young empty claim is being written
                return "held", {"pid": None, "host": None, "since": time.time() - age}
            warnings.warn(f"the claim {path} holds unexpected content ({text[:80]!r}); it is treated as stale and "
                          f"taken over", stacklevel=4)
            return "stale", None
        if holder["host"] == socket.gethostname() and not pid_alive(holder["pid"]):
            return "stale", None
        return ("stale", None) if age > CLAIM_STALE_S else ("held", holder)

    def _create(self, path: Path, content: dict) -> bool:
        """Create ``path`` holding ``content`` unless it exists: the content is written to a temp file first and then
        linked to the name, so nobody ever sees the name without its content. False when it exists."""
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(content, f)
            os.chmod(tmp, 0o644)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            except OSError as err:                  # a filesystem without hard links: exclusive create, then fill
                if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                    raise
                try:
                    new = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    return False
                with os.fdopen(new, "w") as f:
                    json.dump(content, f)
            return True
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _break_stale(self, path: Path, me: dict) -> None:
        """Remove a stale claim, under a second lock (``<claim>.break``) so that two takers never judge and remove
        in turn: the second would remove the first one's fresh claim."""
        lock = path.with_name(path.name + ".break")
        if not self._create(lock, me):
            try:
                if time.time() - lock.stat().st_mtime > CLAIM_BREAK_STALE_S:
                    lock.unlink()                   # its taker died while it held it
            except FileNotFoundError:
                pass
            time.sleep(0.01)
            return
        try:
            if self._judge(path)[0] == "stale":
                path.unlink(missing_ok=True)
        finally:
            lock.unlink(missing_ok=True)

    @contextmanager
    def claim(self, config_hash: str, poll_s: float = CLAIM_POLL_S):
        """Hold the claim on a config while training it: created exclusively and whole (:meth:`_create`) with this
        process's pid, host and a token of its own, kept fresh by a heartbeat thread, removed on exit. Waits while
        another live process holds it; takes over a stale claim."""
        path = self.claim_path(config_hash)
        path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "token": uuid.uuid4().hex}
        while not self._create(path, me):
            state, _ = self._judge(path)
            if state == "stale":
                self._break_stale(path, me)
            elif state == "held":
                time.sleep(poll_s)
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
                if json.loads(path.read_text()).get("token") == me["token"]:
                    path.unlink()
            except (FileNotFoundError, ValueError, AttributeError):
                pass
