"""Atomic file writes: a temp file in the target's folder, fsync, then rename, so a reader (or a
job restarted after a crash) sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable


def atomic_write(path: Path | str, write: Callable[[IO[bytes]], object], durable: bool = True) -> Path:
    """Create or replace `path` with what `write(binary_file)` writes. `durable=False` skips the
    fsync (caches whose readers check what they read: still never half a file after a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
