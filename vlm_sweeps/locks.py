"""Exclusive file locks across processes (filelock, flock underneath): released when the holder exits or dies, so a
crashed owner never blocks anyone. The holder writes who it is (host, pid, since) into the lock
file, so a waiting process can say whom it waits for.

Used for: one owner per job signature (job.py), one align per align signature
(train/shared_align.py), one schema creation per sqlite store (tracking.py).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

# file systems without flock (e.g. Lustre mounted without -o flock): fall back to no lock
NO_LOCKS = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL}


class Busy(RuntimeError):
    """The lock is held by another process and the caller asked not to wait."""

    def __init__(self, what: str, holder: str):
        self.holder = holder
        super().__init__(f"{what} is held by {holder}")


def me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": round(time.time())}


def describe(path: Path) -> str:
    """Who holds the lock file `path`, as its holder wrote it ("pid 123 on host h since 12:00:00")."""
    try:
        owner = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        owner = {}
    if not owner:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("since", 0)))
    return f"pid {owner.get('pid')} on host {owner.get('host')} (since {since})"


@contextlib.contextmanager
def exclusive(path: Path | str, what: str, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if absent) while the block runs, through `filelock`
    (flock on Unix). Held by another process: wait for it (saying for whom), or with `wait=False`
    raise Busy at once."""
    from filelock import FileLock, Timeout

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    locked = True
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = describe(path)
        if not wait:
            raise Busy(what, holder) from None
        log.info("%s is held by %s; waiting for it", what, holder)
        waited = time.perf_counter()
        lock.acquire(poll_interval=0.2)
        log.info("%s: taken after %.1f s", what, time.perf_counter() - waited)
    except (OSError, NotImplementedError) as err:
        if isinstance(err, OSError) and err.errno not in NO_LOCKS:
            raise
        locked = False
        log.warning("%s: %s has no file locks (%s); going on without", what, path.parent, err)
    if locked:  # only the holder writes (filelock truncates the file for its winner): say who holds it
        with contextlib.suppress(OSError):
            path.write_text(json.dumps(me()))
    try:
        yield
    finally:
        if locked:
            with contextlib.suppress(OSError):
                path.write_text("")
            lock.release()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's, but alive
        return True
    return True
