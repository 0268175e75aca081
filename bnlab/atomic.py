"""Writes that never leave half a file: a fresh temp file next to the target, flushed to disk, then renamed onto it;
and, where the disk is full, an error that names the path, the bytes it needs and the fix (``BNLAB_HOME`` /
``BNLAB_DATA`` on a disk with room)."""
from __future__ import annotations

import errno
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np


class DiskFull(OSError):
    """A store file could not be written for want of space (or a file-size or quota limit); the message names the
    path, the bytes it needs and the fix."""


DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _disk_full(path: Path, needed: int, err: OSError | None = None) -> DiskFull:
    try:
        free = f"{shutil.disk_usage(path.parent).free:,} bytes are free there"
    except OSError:
        free = "the free space there is unknown"
    why = f" ({err.strerror or err})" if err is not None else ""
    return DiskFull(f"cannot write {path}: it needs {needed:,} bytes and {free}{why}. Free some space on that disk, "
                    f"or point BNLAB_HOME (the run store) / BNLAB_DATA (the data cache) at a folder on a disk with room, "
                    f"e.g. export BNLAB_HOME=/path/with/space/bnlab; nothing stored so far is lost.")


def atomic_bytes(path: Path, data) -> None:
    """Write ``data`` (bytes) to ``path`` atomically and durably: a fresh temp file next to it, flushed to disk, then
    renamed onto ``path``; :class:`DiskFull` (path, bytes needed, the fix) when there is no room for it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    view = memoryview(data)
    try:
        if shutil.disk_usage(path.parent).free < view.nbytes:
            raise _disk_full(path, view.nbytes)
    except DiskFull:
        raise
    except OSError:
        pass                                     # no free-space figure here: the write itself will tell
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            done = 0
            while done < view.nbytes:
                done += os.write(fd, view[done:])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
            raise _disk_full(path, view.nbytes, err) from None
        raise


def atomic_write(path: Path, write) -> None:
    """Call ``write(f)`` on an in-memory binary file (``torch.save(obj, f)``, ``np.savez(f, ...)``), then write what
    it holds to ``path`` with :func:`atomic_bytes`."""
    buf = io.BytesIO()
    write(buf)
    atomic_bytes(path, buf.getbuffer())


def atomic_npz(path: Path, arrays: dict) -> None:
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def atomic_json(path: Path, obj, **dump) -> None:
    atomic_bytes(path, json.dumps(obj, **dump).encode())
