"""One process at a time on a run folder: an exclusive ``flock`` on ``<folder>/.lock``, held until the
process ends (the kernel drops it even after a kill -9, so a crash never leaves a stale lock), or until the
command that took it releases it.

A second process on the same folder stops at once with one line naming the holder (pid, host, command,
start time) instead of failing half-way on files the first one is writing. Within one process the
lock is taken once per folder (a pipeline runs several jobs on its folders).
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from compress.errors import UserInputError

LOCK_FILE = ".lock"
_HELD: dict[str, int] = {}  # resolved folder → open file descriptor holding its lock


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return (f"process {info['pid']} on {info['host']} ({info['command']}, since "
                f"{time.strftime('%H:%M:%S', time.localtime(info['since']))})")
    except (OSError, ValueError, KeyError):
        return "another process"


def lock_folder(folder: str | os.PathLike, what: str = "run folder") -> bool:
    """Take the exclusive lock of ``folder`` (created if missing) until :func:`release_folder` or the end of
    the process; False when this process held it already (the caller then leaves it to its owner)."""
    folder = Path(folder)
    key = str(folder.resolve())
    if key in _HELD:
        return False
    try:
        import fcntl
    except ImportError:  # no flock on this platform: no protection, as before
        return False
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserInputError(f"The {what} '{folder}' is in use by {_holder(path)}; wait for it to finish, or "
                             "use another --out.") from None
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
            "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:3])}
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(info).encode())
    _HELD[key] = fd
    return True


def release_folder(folder: str | os.PathLike) -> None:
    """Drop the lock this process holds on ``folder`` (no-op when it holds none)."""
    fd = _HELD.pop(str(Path(folder).resolve()), None)
    if fd is not None:
        os.close(fd)
