"""Atomic file writes: a temp file in the target's folder, fsync, then rename, so a reader (or a
job restarted after a crash) sees the old file or the new one, never half of one.

A temp file is named `.<target>.<host>-<pid>.<random>.tmp`: a writer killed mid-write (SIGKILL,
OOM, a node lost) leaves it behind, and `remove_stale` (run by whoever takes over the folder)
removes the ones whose writer is gone, so a killed job does not leave GBs of half checkpoints.
A folder built aside and renamed into place (`temp_dir`) is named the same way and cleaned alike."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import IO, Callable

log = logging.getLogger(__name__)
# temp files of a writer on another host (its pid cannot be checked from here), or of a version
# that did not name its writer, count as stale after this long
STALE_AFTER_S = 24 * 3600
_TEMP = re.compile(r"^\.(?P<target>.+?)\.(?:(?P<host>[^.]*)-(?P<pid>\d+)\.)?[^.]+\.tmp$")


def _writer() -> str:
    return f"{socket.gethostname().replace('.', '_').replace('-', '_')}-{os.getpid()}"


def atomic_write(path: Path | str, write: Callable[[IO[bytes]], object], durable: bool = True) -> Path:
    """Create or replace `path` with what `write(binary_file)` writes. `durable=False` skips the
    fsync (caches whose readers check what they read: still never half a file after a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_writer()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def temp_dir(parent: Path | str, name: str) -> Path:
    """A new empty folder in `parent`, named as the temp files of atomic writes are
    (`.<name>.<host>-<pid>.<random>.tmp`), to build into and then rename into place: a builder
    killed mid-build leaves it behind, and `remove_stale` removes it once the builder is gone."""
    return Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}.{_writer()}.", suffix=".tmp"))


def remove_stale(folder: Path | str, now: float | None = None) -> list[Path]:
    """Remove the temp files (and `temp_dir` folders) of atomic writes in `folder` whose writer is
    gone: a process of this host that no longer runs, or (another host's, or unnamed) older than
    STALE_AFTER_S. Returns what was removed. Those of live writers are never touched."""
    from vlm_sweeps.locks import pid_alive

    folder = Path(folder)
    if not folder.is_dir():
        return []
    now = time.time() if now is None else now
    host = _writer().rsplit("-", 1)[0]
    removed = []
    for entry in os.scandir(folder):
        match = _TEMP.match(entry.name)
        is_dir = entry.is_dir(follow_symlinks=False)
        if match is None or not (is_dir or entry.is_file()):
            continue
        if match["pid"] is not None and match["host"] == host:
            stale = int(match["pid"]) != os.getpid() and not pid_alive(int(match["pid"]))
        else:
            try:
                stale = now - entry.stat().st_mtime > STALE_AFTER_S
            except FileNotFoundError:
                continue
        if stale:
            try:
                size = 0 if is_dir else entry.stat().st_size
                if is_dir:
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except FileNotFoundError:  # another cleaner got there first
                continue
            removed.append(Path(entry.path))
            log.info("removed %s%s, left by an interrupted write", entry.path,
                     "" if is_dir else f" ({size / 1e6:.1f} MB)")
    return removed
