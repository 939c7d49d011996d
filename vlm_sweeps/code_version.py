"""Which code this process runs: the git commit, whether the working tree differed from it (and the
diff), and the code snapshot it imports, if any.

A sweep's jobs import their code from a snapshot the launcher copied at submit (launchers/snapshot.py),
so that editing the repository while jobs wait in a queue changes none of them. A snapshot is not a
git checkout: the launcher writes what git said at submit into MANIFEST at the snapshot's top, and
`describe` reads it there; outside a snapshot it asks git about the package's own repository.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

MANIFEST = ".vlm_sweeps_code.json"  # at the top of a snapshot, beside the vlm_sweeps package
GIT_TIMEOUT_S = 60.0


def code_root() -> Path:
    """The folder this process imports vlm_sweeps from (a repository's top, or a snapshot)."""
    return Path(__file__).resolve().parents[1]


def describe(root: Path | None = None) -> dict[str, Any]:
    """What code `root` (default: the code this process imports) is: {"commit": the git commit or
    None, "dirty": whether tracked files differed from it or untracked ones existed, "diff": `git diff
    HEAD` of the tracked files, the untracked (not ignored) files named in a header, "snapshot": the
    snapshot's folder, or None when the code is not a snapshot}."""
    root = Path(root).resolve() if root is not None else code_root()
    manifest = root / MANIFEST
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        return {"commit": data.get("commit"), "dirty": bool(data.get("dirty")), "diff": data.get("diff", ""),
                "snapshot": str(root)}
    state = from_git(root)
    return {"commit": state["commit"], "dirty": state["dirty"], "diff": state["diff"], "snapshot": None}


def from_git(root: Path) -> dict[str, Any]:
    """{"commit", "dirty", "diff", "untracked"} of the git working tree whose top is `root`; commit
    None (and nothing dirty) when `root` is not the top of one or git cannot tell (no git, no repo,
    a repository git refuses to read)."""
    root = Path(root).resolve()
    none = {"commit": None, "dirty": False, "diff": "", "untracked": []}
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top.strip()).resolve() != root:
        return none  # e.g. an installed copy that merely lies inside some other repository
    commit = _git(root, "rev-parse", "--verify", "--quiet", "HEAD")
    if commit is None:
        return none  # a repository without a commit yet
    tracked = _git(root, "diff", "HEAD", "--no-color", "--no-ext-diff", "--binary") or ""
    untracked = [p for p in (_git(root, "ls-files", "-z", "--others", "--exclude-standard") or "").split("\0") if p]
    header = "".join(f"#   {p}\n" for p in untracked)
    if header:  # before the first `diff --git`: `git apply` reads past it
        header = "# untracked files (not ignored), not in this diff:\n" + header
    return {"commit": commit.strip(), "dirty": bool(tracked or untracked), "diff": header + tracked,
            "untracked": untracked}


def _git(root: Path, *args: str) -> str | None:
    """git's stdout in `root`, or None when it fails."""
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=GIT_TIMEOUT_S,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None
