"""The code snapshot a sweep's jobs import (launchers/snapshot.py) and what a process says about its
code (vlm_sweeps/code_version.py): the working tree as it is (dirty edits and untracked files in,
ignored and deleted files out), its commit and diff in the snapshot's manifest, one snapshot per
distinct code, and quick on this repository."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from launchers import snapshot
from vlm_sweeps import code_version

REPO = Path(__file__).resolve().parents[2]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}).stdout


@pytest.fixture(autouse=True)
def fresh_process_cache():
    snapshot._TAKEN.clear()  # as a new submitting process has it
    yield
    snapshot._TAKEN.clear()


@pytest.fixture()
def repo(tmp_path) -> Path:
    """A committed package, then: a dirty edit, an untracked file, an ignored one, a deleted one."""
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("VALUE = 1\n")
    (root / "pkg" / "gone.py").write_text("GONE = True\n")
    (root / ".gitignore").write_text("ignored/\n__pycache__/\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    (root / "pkg" / "a.py").write_text("VALUE = 2  # dirty\n")
    (root / "pkg" / "new.py").write_text("NEW = True\n")
    (root / "ignored").mkdir()
    (root / "ignored" / "weights.bin").write_bytes(b"\0" * 1000)
    (root / "pkg" / "gone.py").unlink()
    return root


def test_the_snapshot_is_the_working_tree_as_it_is(repo, tmp_path):
    snap = snapshot.take(tmp_path / "sweep", source=repo)
    assert snap.path.parent == (tmp_path / "sweep" / ".code").resolve()
    assert (snap.path / "pkg" / "a.py").read_text() == "VALUE = 2  # dirty\n"  # the edit, not the commit
    assert (snap.path / "pkg" / "new.py").is_file()  # untracked, not ignored
    assert not (snap.path / "ignored").exists() and not (snap.path / "pkg" / "gone.py").exists()
    assert not os.access(snap.path / "pkg" / "a.py", os.W_OK) or os.geteuid() == 0
    assert (snap.path / "pkg" / "a.py").stat().st_mode & 0o222 == 0  # read-only


def test_the_snapshot_records_the_commit_and_the_diff(repo, tmp_path):
    snap = snapshot.take(tmp_path / "sweep", source=repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    code = code_version.describe(snap.path)
    assert code["commit"] == head and code["dirty"] is True and code["snapshot"] == str(snap.path)
    assert "-VALUE = 1\n+VALUE = 2  # dirty" in code["diff"]
    assert "deleted file mode" in code["diff"] and "pkg/gone.py" in code["diff"]
    assert "#   pkg/new.py\n" in code["diff"]  # untracked files named before the diff
    # the diff applies to the commit (git apply reads past the header)
    patch = tmp_path / "diff.patch"
    patch.write_text(code["diff"])
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "apply", str(patch))
    assert (clone / "pkg" / "a.py").read_text() == "VALUE = 2  # dirty\n"
    # editing the repository afterwards changes nothing the snapshot says
    (repo / "pkg" / "a.py").write_text("VALUE = 3\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "later")
    assert code_version.describe(snap.path) == code
    assert (snap.path / "pkg" / "a.py").read_text() == "VALUE = 2  # dirty\n"


def test_outside_a_snapshot_describe_asks_git(repo, tmp_path):
    code = code_version.describe(repo)
    assert code["snapshot"] is None and code["dirty"] is True and "+VALUE = 2" in code["diff"]
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "clean")
    assert code_version.describe(repo) == {"commit": git(repo, "rev-parse", "HEAD").strip(), "dirty": False,
                                           "diff": "", "snapshot": None}
    # not the top of a repository (a folder inside one, an installed copy): no commit claimed
    assert code_version.describe(repo / "pkg")["commit"] is None
    plain = tmp_path / "plain"
    plain.mkdir()
    assert code_version.describe(plain) == {"commit": None, "dirty": False, "diff": "", "snapshot": None}
    assert snapshot.take(tmp_path / "sweep", source=plain) is None


def test_describe_by_default_describes_the_code_this_process_imports():
    code = code_version.describe()
    assert code_version.code_root() == Path(code_version.__file__).resolve().parents[1]
    assert code == code_version.describe(code_version.code_root())


def test_the_same_code_shares_a_snapshot_and_an_edit_makes_a_new_one(repo, tmp_path):
    first = snapshot.take(tmp_path / "sweep", source=repo)
    assert snapshot.take(tmp_path / "sweep", source=repo) is first  # a sweep launched in batches: one snapshot
    snapshot._TAKEN.clear()
    again = snapshot.take(tmp_path / "sweep", source=repo)
    assert again.path == first.path and again.reused
    (repo / "pkg" / "new.py").write_text("NEW = False\n")
    snapshot._TAKEN.clear()
    edited = snapshot.take(tmp_path / "sweep", source=repo)
    assert edited.path != first.path and not edited.reused
    assert (first.path / "pkg" / "new.py").read_text() == "NEW = True\n"


def test_a_sweep_folder_inside_the_repository_is_not_copied(repo):
    """A sweep folder that .gitignore does not cover: neither its outputs nor earlier snapshots go in."""
    sweep = repo / "sweeps" / "one"
    first = snapshot.take(sweep, source=repo)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")  # as Hydra leaves a sweep folder
    (sweep / "0" / "out.txt").parent.mkdir(parents=True)
    (sweep / "0" / "out.txt").write_text("a job's output\n")
    snapshot._TAKEN.clear()
    second = snapshot.take(repo / "sweeps" / "two", source=repo)
    assert second.files == first.files
    assert not (first.path / "sweeps").exists() and not (second.path / "sweeps").exists()


def test_a_snapshot_of_this_repository_is_quick(tmp_path):
    snap = snapshot.take(tmp_path / "sweep", source=REPO)
    print(f"snapshot of {REPO}: {snap.describe()}")
    assert (snap.path / "vlm_sweeps" / "code_version.py").is_file()
    assert (snap.path / "launchers" / "snapshot.py").is_file()
    assert not list(snap.path.rglob("__pycache__"))
    assert snap.seconds < 5.0, snap.describe()


def test_jobs_are_pointed_at_the_snapshot(repo, tmp_path):
    snap = snapshot.take(tmp_path / "sweep", source=repo)
    env = snapshot.environment(snap, {"PYTHONPATH": "/elsewhere"})
    assert env == {"VLM_SWEEPS_CODE": str(snap.path), "PYTHONPATH": f"{snap.path}:/elsewhere",
                   "PYTHONSAFEPATH": "1"}
    script = "\n".join(snapshot.setup_lines(snap))
    out = subprocess.run(["bash", "-c", script + '\necho "$PYTHONPATH|$PYTHONSAFEPATH|$VLM_SWEEPS_CODE"'],
                         capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]})
    assert out.stdout.strip() == f"{snap.path}|1|{snap.path}"


def test_a_job_that_imports_other_code_than_its_snapshot_fails(monkeypatch, tmp_path):
    monkeypatch.delenv(snapshot.ENV, raising=False)
    snapshot.check_imports()  # no snapshot: nothing to check
    monkeypatch.setenv(snapshot.ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match="not from its sweep's code snapshot"):
        snapshot.check_imports()
    monkeypatch.setenv(snapshot.ENV, str(REPO))
    snapshot.check_imports()
