"""For the tests that edit the code while a sweep's jobs wait (tests/launchers/test_code_snapshot_jobs.py,
tests/cluster/test_slurm_launcher.py): a copy of this repository as a git repository of its own, with
a dirty edit and an untracked module that make every process importing its vlm_sweeps write down
which code it runs and what `vlm_sweeps.code_version.describe()` says there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENV = "VLM_SWEEPS_TEST_PROBE"  # the folder the probes write into; unset: no probe runs
SUBMITTED, EDITED = "as submitted", "edited after submit"

PROBE = '''"""Test probe (tests/launchers/code_probe.py): which code this process imports, what describe() says."""
import json
import os
import sys
from pathlib import Path

from vlm_sweeps import code_version

VERSION = {version!r}
_folder = Path(os.environ[{env!r}])
_folder.mkdir(parents=True, exist_ok=True)
_tmp = _folder / f".{{os.getpid()}}.tmp"
_tmp.write_text(json.dumps({{"version": VERSION, "file": __file__, "argv": sys.argv,
                            "describe": code_version.describe()}}))
_tmp.rename(_folder / f"{{os.getpid()}}.json")  # whole, for the test that polls the folder
'''

HOOK = f'''
import os as _os

if _os.environ.get({ENV!r}):  # a dirty edit of the test's copy (tests/launchers/code_probe.py)
    from vlm_sweeps import _code_probe  # noqa: F401
'''


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def work_repo(dest: Path) -> tuple[Path, str]:
    """This repository's files (as git would commit its working tree) committed into `dest`, then
    the probe as a dirty edit of vlm_sweeps/__init__.py and an untracked vlm_sweeps/_code_probe.py.
    Returns (dest, its commit)."""
    listed = git(REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for rel in filter(None, listed):
        source = REPO / rel
        if source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest / rel)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "the code of the test")
    with open(dest / "vlm_sweeps" / "__init__.py", "a") as f:
        f.write(HOOK)
    (dest / "vlm_sweeps" / "_code_probe.py").write_text(PROBE.format(version=SUBMITTED, env=ENV))
    return dest, git(dest, "rev-parse", "HEAD").strip()


def edit_and_commit(repo: Path) -> str:
    """What a user does while the jobs wait: edit the code, commit it. Returns the new commit."""
    (repo / "vlm_sweeps" / "_code_probe.py").write_text(PROBE.format(version=EDITED, env=ENV))
    with open(repo / "vlm_sweeps" / "code_version.py", "a") as f:
        f.write("\nraise RuntimeError('edited after submit: a job must not import this')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "edited while the sweep waits")
    return git(repo, "rev-parse", "HEAD").strip()


def records(folder: Path) -> list[dict]:
    """What every probed process wrote, with its pid."""
    return [{**json.loads(p.read_text()), "pid": int(p.stem)} for p in sorted(folder.glob("*.json"))]


def job_records(folder: Path) -> list[dict]:
    """Those of the jobs' own processes (submitit's `python -m submitit.core._submit`)."""
    return [r for r in records(folder) if r["argv"] and r["argv"][0].endswith("_submit.py")]


def assert_describes_the_launch(jobs: list[dict], snapshot_dir: Path, commit: str) -> None:
    """What `describe()` said in each job's process: the commit of the launch (not the one made
    while the jobs waited), dirty, the diff of the launch, the snapshot imported."""
    for job in jobs:
        code = job["describe"]
        assert code["commit"] == commit
        assert code["dirty"] is True
        assert code["snapshot"] == str(snapshot_dir)
        assert "#   vlm_sweeps/_code_probe.py\n" in code["diff"]  # untracked at launch
        assert "diff --git a/vlm_sweeps/__init__.py" in code["diff"] and "+    from vlm_sweeps import _code_probe" \
            in code["diff"]  # the dirty edit at launch
        assert "raise RuntimeError" not in code["diff"]  # the edit made afterwards


def assert_runs_record_the_launch(uri: str, n: int, commit: str) -> None:
    """The FINISHED job runs' tags (vlm_sweeps.git_commit, vlm_sweeps.git_dirty) and diff artifact
    (code/diff.patch): the commit and the dirty diff of the launch."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("vlm_sweeps")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`vlm_sweeps.kind` = 'job' "
                              "and attributes.status = 'FINISHED'")
    assert len(runs) == n
    for run in runs:
        assert run.data.tags.get("vlm_sweeps.git_commit") == commit
        assert run.data.tags.get("vlm_sweeps.git_dirty", "").lower() == "true"
        diff = Path(client.download_artifacts(run.info.run_id, "code/diff.patch")).read_text()
        assert "+    from vlm_sweeps import _code_probe" in diff and "raise RuntimeError" not in diff
