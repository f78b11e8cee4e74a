"""One writer per run directory: an OS lock on ``RUN/run.lock``.

The process that opens a run directory for writing (``tunelab run``, ``train``, ``ladder``,
``lr-find``) holds an exclusive ``flock`` on ``run.lock`` until it is done, and writes its
PID, host and command into the file, so another process that finds the lock taken can say
who holds it. The operating system releases the lock when the holder exits, killed or not:
a lock is never stale. A process may take the same lock again (it is counted), so a flow
that opens its run directory twice does not lock itself out.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; filelock's lock, holder unknown
    fcntl = None  # type: ignore[assignment]


@dataclass
class _Held:
    handle: int | object  # a file descriptor (flock), or filelock's lock object
    count: int


_held: dict[Path, _Held] = {}


def acquire(path: Path, *, study: bool = False) -> Holder | None:
    """Take the lock at ``path`` without waiting.

    Args:
        study: this process runs a study there (a ``tunelab run`` may join its search).

    Returns:
        None when this process holds it now (also when it held it already); otherwise who
        holds it.
    """
    key = path.resolve()
    if key in _held:
        _held[key].count += 1
        return None
    if fcntl is None:  # pragma: no cover
        return _acquire_filelock(key)
    fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return holder(key)
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps(_me(study)) + "\n").encode())
    _held[key] = _Held(fd, 1)
    return None


def release(path: Path) -> None:
    """Give back one hold of the lock at ``path``; the last one unlocks it."""
    key = path.resolve()
    held = _held.get(key)
    if held is None:
        return
    held.count -= 1
    if held.count > 0:
        return
    del _held[key]
    if isinstance(held.handle, int):
        os.close(held.handle)  # closing the descriptor releases the flock
    else:  # pragma: no cover
        held.handle.release()  # type: ignore[attr-defined]


def holds(path: Path) -> bool:
    """Whether this process holds the lock at ``path``."""
    return path.resolve() in _held


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as the holder wrote it into the lock file."""

    pid: int | None
    text: str
    study: bool

    def __str__(self) -> str:
        return self.text


def holder(path: Path, *, wait_s: float = 1.0) -> Holder:
    """Who holds the lock at ``path`` (waiting ``wait_s`` for a holder that took it a
    moment ago to write its name)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            who = json.loads(path.read_text())
            pid = int(who["pid"])
            text = f"PID {pid} on {who['host']} ({who['command']}, since {who['since']})"
            return Holder(pid, text, bool(who.get("study")))
        except (OSError, ValueError, KeyError, TypeError):
            if time.monotonic() > deadline:
                return Holder(None, "another process", study=False)
            time.sleep(0.02)


def _me(study: bool) -> dict[str, object]:
    cli = Path(sys.argv[0]).name in ("tunelab", "cli.py") and len(sys.argv) > 1
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": f"tunelab {sys.argv[1]}" if cli else "a Python process",
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        "study": study,
    }


def _acquire_filelock(key: Path) -> Holder | None:  # pragma: no cover - no fcntl (Windows)
    from filelock import FileLock, Timeout

    lock = FileLock(str(key), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return Holder(None, "another process", study=False)
    _held[key] = _Held(lock, 1)
    return None
