"""What a job trains on, by content: the digest of each records file of a real mix (LLaVA JSON), part
of the job's signature (identity.py). Paths are not part of a signature (`paths` is excluded), so the
same records moved elsewhere keep it, while other records under the same path (another
`paths.data_root`, a file edited or downloaded again in place) make another signature: the job
trains anew instead of being skipped as the FINISHED run of different data.

A file's digest (blake2b of its bytes, ~1 s per GB) is kept per process by (path, size, mtime): a
sweep's jobs, or its submit, read each file once. Synthetic data is made from the config itself
(data.synthetic.*, seed): its signature needs no digest. The images a record names are checked
before a run opens (data/checks.py), not digested here."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

MISSING = "missing"  # a records file not there (yet): the job itself then stops on it (check_data)
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """blake2b (128 bits, hex) of the file's bytes; MISSING when there is no such file."""
    try:
        stat = os.stat(path)
    except OSError:
        return MISSING
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def records_digests(tree: dict[str, Any], stages: list[str] | None = None) -> dict[str, str] | None:
    """{stage: digest of its records file} for the stages of a resolved config `tree` (plain
    containers) that read a real mix (data.source llava), only `stages` when given; None for synthetic data."""
    data = tree.get("data") or {}
    if data.get("source") != "llava":
        return None
    root = Path(str(tree["paths"]["data_root"])).resolve()
    files = {"align": data.get("align_file"), "finetune": data.get("finetune_file")}
    digests = {}
    for stage in tree["optimization"]["stages"]:
        name = stage["name"]
        if (stages is None or name in stages) and files.get(name):
            digests[name] = file_digest(root / str(files[name]))
    return digests
