"""A sweep's code, copied at submit: the jobs of a sweep import vlm_sweeps and launchers from the
snapshot, so a job that waits in a queue for days (or is requeued) runs the code the sweep was
submitted with, however the repository is edited meanwhile.

The snapshot is `<sweep dir>/.code/<digest>`: every file git would put in a commit of the working
tree as it is (`git ls-files --cached --others --exclude-standard`: tracked files with their dirty
edits, untracked files that are not ignored), read-only, and `vlm_sweeps.code_version.MANIFEST` with
the commit and the diff (`vlm_sweeps.code_version.describe` reads it in the job). Identical code
gives the same digest, so a sweep launched in batches shares one snapshot.

Jobs find it through their environment (`environment`, the SLURM script's `setup_lines`):
PYTHONPATH starts with it and PYTHONSAFEPATH keeps the job's working folder (the repository, when the
sweep was started there) off sys.path; `check_imports` fails a job that imports other code anyway.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from vlm_sweeps import code_version

log = logging.getLogger(__name__)

ENV = "VLM_SWEEPS_CODE"  # in a job's environment: the snapshot the job must import its code from
SUBDIR = ".code"
LARGE_BYTES = 50 * 2**20  # a snapshot this large says which files made it so


@dataclass
class Snapshot:
    path: Path
    commit: str | None
    dirty: bool
    files: int
    size: int  # bytes
    seconds: float  # taking it (listing, hashing, copying)
    reused: bool  # the same code was already snapshotted there

    def describe(self) -> str:
        state = f"{self.commit[:12] if self.commit else 'no commit'}{', dirty' if self.dirty else ''}"
        return (f"{self.path} ({state}; {self.files} files, {self.size / 2**20:.1f} MB, "
                f"{'reused' if self.reused else f'{self.seconds:.2f} s'})")


_TAKEN: dict[Path, Snapshot] = {}  # per sweep folder in this process: a sweep launched in batches keeps one


def take(sweep_dir: Path, source: Path | None = None) -> Snapshot | None:
    """Snapshot the code under `source` (default: the repository this process imports vlm_sweeps
    from) into `sweep_dir`; None when `source` is not a git working tree (an installed package:
    nothing there is edited in place), with a warning. Code that already is a snapshot is kept."""
    sweep_dir = Path(sweep_dir).resolve()
    if sweep_dir in _TAKEN and _TAKEN[sweep_dir].path.is_dir():
        return _TAKEN[sweep_dir]
    t0 = time.perf_counter()
    source = Path(source).resolve() if source is not None else code_version.code_root()
    if (source / code_version.MANIFEST).is_file():  # submitted from a job of another sweep: its code
        info = code_version.describe(source)
        return Snapshot(source, info["commit"], info["dirty"], 0, 0, time.perf_counter() - t0, True)
    state = code_version.from_git(source)
    listed = _listed(source)
    if state["commit"] is None or listed is None:
        log.warning("%s is not a git working tree: the jobs run the code installed there, with no snapshot "
                    "(editing it while jobs wait changes what they run)", source)
        return None
    files = _selected(source, listed, sweep_dir)
    digest = hashlib.sha256(json.dumps([state["commit"], state["diff"]]).encode())
    contents = []
    for rel in files:
        path = source / rel
        data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
        digest.update(f"{rel}\0{'l' if path.is_symlink() else 'f'}{len(data)}\0".encode())
        digest.update(data)
        contents.append((rel, path.is_symlink(), data))
    dest = sweep_dir / SUBDIR / digest.hexdigest()[:16]
    size = sum(len(d) for _, _, d in contents)
    reused = (dest / code_version.MANIFEST).is_file()
    if not reused:
        _write(dest, contents, {"commit": state["commit"], "dirty": state["dirty"], "diff": state["diff"],
                                "untracked": state["untracked"], "source": str(source)})
    snap = Snapshot(dest, state["commit"], state["dirty"], len(contents), size, time.perf_counter() - t0, reused)
    if size > LARGE_BYTES:
        biggest = sorted(contents, key=lambda c: -len(c[2]))[:5]
        log.warning("the code snapshot is %.0f MB; the largest files (ignore what jobs need not import in "
                    ".gitignore): %s", size / 2**20, ", ".join(f"{r} ({len(d) / 2**20:.0f} MB)" for r, _, d in biggest))
    _TAKEN[sweep_dir] = snap
    return snap


def _listed(source: Path) -> list[str] | None:
    """What git would commit of the working tree: tracked and untracked-not-ignored paths."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=source,
                             capture_output=True, timeout=code_version.GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return sorted({p for p in out.stdout.decode("utf-8", "surrogateescape").split("\0") if p})


def _selected(source: Path, listed: list[str], sweep_dir: Path) -> list[str]:
    """The listed files that exist (a deleted tracked file is in the diff, not the snapshot), less
    anything under this sweep's folder, another sweep's (Hydra's multirun.yaml in it) or an earlier
    snapshot: sweep folders inside the repository that .gitignore does not cover."""
    inside = []
    try:
        inside.append(sweep_dir.relative_to(source).as_posix() + "/")
    except ValueError:
        pass
    for marker in (code_version.MANIFEST, "multirun.yaml"):
        inside += [p[:-len(marker)] for p in listed if p == marker or p.endswith("/" + marker)]
    return [p for p in listed if not any(p.startswith(prefix) for prefix in inside)
            and ((source / p).is_file() or (source / p).is_symlink())]


def _write(dest: Path, contents: list[tuple[str, bool, bytes]], manifest: dict) -> None:
    """Write the snapshot into a private folder, then move it into place (a concurrent submit of the
    same code may win; its copy is the same)."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, is_link, data in contents:
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if is_link:
            os.symlink(data.decode(), target)
        else:
            target.write_bytes(data)
            target.chmod(0o444)  # a snapshot is not edited; a job's code is what the manifest says
    (tmp / code_version.MANIFEST).write_text(json.dumps(manifest, indent=1))
    try:
        tmp.rename(dest)
    except OSError:
        if not (dest / code_version.MANIFEST).is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def environment(snap: Snapshot, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables that make a job's process (and the Python processes it starts) import the snapshot."""
    environ = os.environ if environ is None else environ
    rest = environ.get("PYTHONPATH", "")
    return {ENV: str(snap.path), "PYTHONPATH": str(snap.path) + (os.pathsep + rest if rest else ""),
            "PYTHONSAFEPATH": "1"}


def setup_lines(snap: Snapshot) -> list[str]:
    """`environment` as lines of the SLURM script (run again by a requeued job; sbatch --export=NONE
    does not lose them)."""
    path = shlex.quote(str(snap.path))
    return [f"export {ENV}={path}", f"export PYTHONPATH={path}${{PYTHONPATH:+:$PYTHONPATH}}",
            "export PYTHONSAFEPATH=1"]


def check_imports() -> None:
    """In a job: fail unless vlm_sweeps and launchers come from the snapshot named in the environment
    (a job running other code than its sweep's must not record results as if it did not)."""
    expected = os.environ.get(ENV)
    if not expected:
        return
    import launchers
    import vlm_sweeps

    root = Path(expected).resolve()
    for module in (vlm_sweeps, launchers):
        where = Path(module.__file__ or "").resolve()
        if not where.is_relative_to(root):
            hint = (" (Python < 3.11 puts the working folder first on sys.path: start the sweep from "
                    "another folder than the repository)" if sys.version_info < (3, 11) else "")
            raise RuntimeError(f"this job imports {module.__name__} from {where.parent}, not from its sweep's "
                               f"code snapshot {root}{hint}")
