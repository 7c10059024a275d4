"""Temporary folders a run owns: removed when its process ends, swept when a killed run left them.

Each folder holds a lock file that its process keeps locked (`flock`) for as long as it lives.
The kernel drops the lock however the process ends (SIGKILL and OOM kills included), so a later
run removes exactly the folders whose owner is gone: never one of a live run (another job, a
notebook session), whatever its process id, and whoever reused a dead one's.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import tempfile
import threading

__all__ = ["LOCK", "owned_dir", "process_dir", "remove_owned", "sweep"]

LOCK = ".sparkscore-owner.lock"

_OWNED: dict[str, int] = {}  # folder -> the descriptor holding its lock
_LOCK = threading.Lock()


def owned_dir(prefix: str) -> str:
    """A new folder under the system temp folder, removed when this process exits.

    Folders of the same prefix that dead processes left are swept first.
    """
    sweep(prefix)
    folder = tempfile.mkdtemp(prefix=prefix)
    # Locked before it gets its name, so a sweep never sees it unlocked.
    staging = os.path.join(folder, f"{LOCK}.new")
    fd = os.open(staging, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(staging, os.path.join(folder, LOCK))
    with _LOCK:
        if not _OWNED:
            atexit.register(remove_owned)
        _OWNED[folder] = fd
    return folder


_SHARED: dict[str, str] = {}  # prefix -> this process's one folder of that prefix
_SHARED_LOCK = threading.Lock()


def process_dir(prefix: str) -> str:
    """This process's one folder named `prefix*`, made by `owned_dir` on first need."""
    with _SHARED_LOCK:
        if prefix not in _SHARED:
            _SHARED[prefix] = owned_dir(prefix)
        return _SHARED[prefix]


def remove_owned() -> None:
    """Remove every folder this process owns (at exit; callers may run it earlier)."""
    with _LOCK:
        owned = list(_OWNED.items())
        _OWNED.clear()
        _SHARED.clear()
    for folder, fd in owned:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


def sweep(prefix: str, root: str | None = None) -> list[str]:
    """Remove the folders named `prefix*` under `root` (the temp folder) whose owner is dead.

    Only folders of this user that carry an unlocked lock file are touched: a folder without
    one is being created, or was left by a version of sparkscore that did not lock, and may
    be in use.
    """
    root = root or tempfile.gettempdir()
    removed: list[str] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix) or entry.path in _OWNED:
            continue
        try:
            if (
                not entry.is_dir(follow_symlinks=False)
                or entry.stat(follow_symlinks=False).st_uid != os.getuid()
            ):
                continue
            fd = os.open(os.path.join(entry.path, LOCK), os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its process is alive
            os.close(fd)
            continue
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
        finally:
            os.close(fd)
    return removed
