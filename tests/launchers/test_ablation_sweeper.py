"""hydra/sweeper=ablation (and =grid): which jobs a command line becomes, the plan printed before
they launch, replicates over seeds, and what a launcher receives (override lists only, each
signature once). Hydra's own loader composes; a stub launcher records what it is given."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.utils import JobReturn, JobStatus

from tests.conftest import REPO

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class StubLauncher:
    """Records what a launcher receives: override lists and the first job's number."""

    def __init__(self):
        self.calls: list[tuple[list[list[str]], int]] = []

    def launch(self, job_overrides, initial_job_idx):
        self.calls.append(([list(o) for o in job_overrides], initial_job_idx))
        return [JobReturn(overrides=list(o), status=JobStatus.COMPLETED, _return_value={}) for o in job_overrides]

    @property
    def jobs(self) -> list[list[str]]:
        return [job for batch, _ in self.calls for job in batch]


@pytest.fixture()
def sweep(tmp_path, monkeypatch):
    """sweep(command line, **sweeper options) -> (sweeper, launcher, printed plan), as
    `python -m vlm_sweeps.run -m <command line>` would run it (a stub in place of the launcher)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import HydraContext, RunMode

    from hydra_plugins.vlm_sweeps_sweeper.ablation_sweeper import AblationSweeper
    from vlm_sweeps.config import register_configs

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    register_configs()
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def run(args: list[str], capsys=None, **options):
        with initialize_config_dir(str(REPO / "conf"), version_base="1.3", job_name="run"):
            loader = GlobalHydra.instance().config_loader()
            master = loader.load_configuration(
                "config", [*args, f"paths.root={tmp_path}", f"tracking.uri={store}"], run_mode=RunMode.MULTIRUN)
            # hydra/sweeper=ablation or grid, as Hydra instantiates it, with `options` on top
            sweeper = AblationSweeper(**{**{k: v for k, v in master.hydra.sweeper.items() if k != "_target_"},
                                         **options})
            launcher = StubLauncher()
            sweeper.hydra_context = HydraContext(config_loader=loader, callbacks=None)
            sweeper.config, sweeper.launcher = master, launcher
            sweeper.sweep(list(master.hydra.overrides.task))
            return sweeper, launcher, master

    run.store = store
    return run


def job_values(jobs: list[list[str]], key: str) -> list[str | None]:
    out = []
    for job in jobs:
        values = [o.split("=", 1)[1] for o in job if o.split("=", 1)[0] == key]
        out.append(values[-1] if values else None)
    return out


def test_ablation_runs_the_baseline_once_and_each_other_option_alone(sweep, capsys):
    _, launcher, _ = sweep(["hydra/sweeper=ablation", "encoder=clip,siglip,dinosiglip", "resize=letterbox,naive,crop"])
    jobs = launcher.jobs
    assert len(jobs) == 5
    pairs = list(zip(job_values(jobs, "encoder"), job_values(jobs, "resize")))
    # None: the composed default (clip, letterbox) - the baseline carries no axis override
    assert pairs == [(None, None), ("siglip", None), ("dinosiglip", None), (None, "naive"), (None, "crop")]
    assert job_values(jobs, "study.experiment") == ["'baseline'", "'encoder=siglip'", "'encoder=dinosiglip'",
                                                    "'resize=naive'", "'resize=crop'"]
    out = capsys.readouterr().out
    assert "plan: 5 jobs, ablation around the baseline encoder=clip resize=letterbox" in out
    for row in ("baseline            clip        letterbox", "encoder=siglip      siglip      letterbox",
                "resize=crop         clip        crop"):
        assert row in out
    assert out.count("to run") == 5


def test_the_baseline_comes_from_a_baseline_preset(sweep, capsys):
    _, launcher, _ = sweep(["hydra/sweeper=ablation", "+baseline=prismatic", "llm=llama2,vicuna_v15,mistral"])
    assert job_values(launcher.jobs, "llm") == [None, "llama2", "mistral"]  # vicuna_v15 is the preset's
    assert all("+baseline=prismatic" in job for job in launcher.jobs)
    assert "around the baseline llm=vicuna_v15" in capsys.readouterr().out


def test_numbers_equal_to_the_baseline_are_the_baseline(sweep):
    _, launcher, _ = sweep(["hydra/sweeper=ablation", "epochs=1,2,3"])  # the default is 1.0
    assert job_values(launcher.jobs, "epochs") == [None, "2", "3"]


def test_a_baseline_outside_the_options_still_runs_as_the_reference(sweep, capsys):
    _, launcher, _ = sweep(["hydra/sweeper=ablation", "encoder=siglip,dinosiglip"])
    assert job_values(launcher.jobs, "encoder") == [None, "siglip", "dinosiglip"]
    assert "the baseline's encoder=clip is not among the swept options" in capsys.readouterr().out


def test_grid_mode_is_hydras_basic_grid(sweep):
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = ["encoder=clip,siglip,dinosiglip", "resize=naive,letterbox", "seed=3"]
    _, launcher, _ = sweep(["hydra/sweeper=grid", *args])
    basic = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), None)[0]
    assert [job[:3] for job in launcher.jobs] == basic  # same jobs, same order (then paths.root, tracking.uri)
    assert len(launcher.jobs) == 6


def test_seeds_replicate_every_configuration(sweep, capsys):
    _, launcher, _ = sweep(["hydra/sweeper=ablation", "encoder=clip,siglip", "+seeds=3"])
    jobs = launcher.jobs
    assert list(zip(job_values(jobs, "encoder"), job_values(jobs, "seed"))) == [
        (None, "7"), (None, "8"), (None, "9"), ("siglip", "7"), ("siglip", "8"), ("siglip", "9")]
    assert not any(o.startswith("+seeds") for job in jobs for o in job)  # the shorthand is the sweeper's
    assert "3 seeds each" in capsys.readouterr().out
    _, launcher, _ = sweep(["hydra/sweeper=grid", "resize=naive,crop", "study.seeds=2", "seed=3"])
    assert list(zip(job_values(launcher.jobs, "resize"), job_values(launcher.jobs, "seed"))) == [
        ("naive", "3"), ("naive", "4"), ("crop", "3"), ("crop", "4")]


def test_seed_replicates_are_distinct_models_and_the_first_is_the_plain_job(sweep):
    from hydra_plugins.vlm_sweeps_sweeper import plan
    from tests.conftest import compose
    from vlm_sweeps import identity

    sweeper, _, master = sweep(["hydra/sweeper=ablation", "+seeds=2", "hydra.sweeper.dry=true"])
    jobs, _, _ = sweeper.jobs(list(master.hydra.overrides.task))
    planned = plan.compose(sweeper.hydra_context.config_loader, master, jobs)
    # the default seed is 7: its replicate is the job without seeds; `seeds` itself is in no job's signature
    assert [p.signature for p in planned] == [identity.signature(compose([])), identity.signature(compose(["seed=8"]))]


def test_seeds_given_twice_differently_fail(sweep):
    from hydra.errors import HydraException

    with pytest.raises(HydraException, match="give the number of seeds once"):
        sweep(["hydra/sweeper=ablation", "+seeds=3", "study.seeds=2"])
    with pytest.raises(HydraException, match="one whole number"):
        sweep(["hydra/sweeper=ablation", "+seeds=2,3"])


def test_dry_prints_the_plan_and_launches_nothing(sweep, tmp_path, capsys):
    _, launcher, master = sweep(["hydra/sweeper=ablation", "encoder=clip,siglip", "hydra.sweeper.dry=true"])
    assert launcher.calls == []
    out = capsys.readouterr().out
    assert "plan: 2 jobs" in out and "nothing launched" in out
    assert not Path(master.hydra.sweep.dir).exists()
    assert not (tmp_path / "mlflow.db").exists()  # the store is read, never created


def test_each_signature_launches_once(sweep, capsys):
    _, launcher, _ = sweep(["hydra/sweeper=grid", "epochs=1,1.0,2"])
    assert job_values(launcher.jobs, "epochs") == ["1", "2"]
    assert "same model as job 0: not launched" in capsys.readouterr().out


def test_batches_number_jobs_consecutively(sweep):
    _, launcher, _ = sweep(["hydra/sweeper=ablation", "encoder=clip,siglip,dinosiglip", "resize=naive,crop"],
                           max_batch_size=2)
    assert [(len(batch), start) for batch, start in launcher.calls] == [(2, 0), (2, 2), (1, 4)]


def test_the_plan_shows_which_jobs_already_finished(sweep, capsys):
    from mlflow.tracking import MlflowClient

    from hydra_plugins.vlm_sweeps_sweeper import plan
    from vlm_sweeps import naming, tracking

    sweeper, _, master = sweep(["hydra/sweeper=ablation", "resize=letterbox,naive", "hydra.sweeper.dry=true"])
    jobs, _, _ = sweeper.jobs(list(master.hydra.overrides.task))
    signature = plan.compose(sweeper.hydra_context.config_loader, master, jobs)[1].signature
    exp = tracking.ensure_experiment(sweep.store, naming.DEFAULT_EXPERIMENT)
    client = MlflowClient(sweep.store)
    run = client.create_run(exp, tags={naming.TAG_SIGNATURE: signature, naming.TAG_KIND: naming.KIND_JOB})
    client.set_terminated(run.info.run_id, "FINISHED")
    capsys.readouterr()
    _, launcher, _ = sweep(["hydra/sweeper=ablation", "resize=letterbox,naive"])
    out = capsys.readouterr().out
    assert "1 of them FINISHED" in out and f"FINISHED run {run.info.run_id}" in out
    assert len(launcher.jobs) == 2  # the job itself skips (or evaluates what its run lacks)


def test_the_plan_is_kept_beside_the_sweep(sweep):
    from hydra_plugins.vlm_sweeps_sweeper import plan

    _, _, master = sweep(["hydra/sweeper=ablation", "encoder=clip,siglip"])
    kept = plan.read(Path(master.hydra.sweep.dir))
    assert [j["label"] for j in kept["jobs"]] == ["baseline", "encoder=siglip"]
    assert [j["num"] for j in kept["jobs"]] == [0, 1] and kept["jobs"][1]["axes"]["encoder"] == "siglip"
    assert (Path(master.hydra.sweep.dir) / "multirun.yaml").is_file()


def test_an_interval_cannot_be_enumerated(sweep):
    from hydra.errors import HydraException

    with pytest.raises(HydraException, match="interval"):
        sweep(["hydra/sweeper=ablation", "epochs=interval(1,3)"])


def test_the_slurm_launcher_receives_the_ablation_and_reuses_its_compositions(tmp_path, monkeypatch):
    """With hydra/launcher=slurm the launcher gets the override lists (nothing else) and takes the
    compositions the plan made (launchers.freeze.Composer) instead of composing them again."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import HydraContext, RunMode

    import launchers.slurm
    from hydra_plugins.vlm_sweeps_sweeper.ablation_sweeper import AblationSweeper
    from launchers.freeze import Composer
    from vlm_sweeps.config import register_configs

    seen = {}

    def launch(params, config, hydra_context, job_overrides, initial_job_idx):
        composer = Composer.attach(hydra_context.config_loader)
        seen["validated"] = len(composer.validated)
        seen["jobs"] = [list(o) for o in job_overrides]
        return [JobReturn(overrides=list(o), status=JobStatus.COMPLETED, _return_value={}) for o in job_overrides]

    monkeypatch.setattr(launchers.slurm, "launch", launch)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    register_configs()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3", job_name="run"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", [
            "hydra/launcher=slurm", "hydra/sweeper=ablation", "encoder=clip,siglip", "resize=naive,letterbox",
            f"paths.root={tmp_path}", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"], run_mode=RunMode.MULTIRUN)
        sweeper = AblationSweeper()
        sweeper.setup(hydra_context=HydraContext(config_loader=loader, callbacks=None), task_function=lambda c: None,
                      config=master)
        sweeper.sweep(list(master.hydra.overrides.task))
    assert job_values(seen["jobs"], "encoder") == [None, "siglip", None]
    assert job_values(seen["jobs"], "resize") == [None, None, "naive"]
    assert seen["validated"] == 3  # composed once, by the plan


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_the_cli_prints_the_plan_of_the_must_show_ablation(tmp_path):
    command = [sys.executable, "-m", "vlm_sweeps.run", "-m", "hydra/sweeper=ablation", "encoder=clip,siglip,dinosiglip",
               "resize=letterbox,naive,crop", "hydra.sweeper.dry=true", f"paths.root={tmp_path}",
               f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "plan: 5 jobs, ablation around the baseline encoder=clip resize=letterbox" in out.stdout
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [r[1] for r in rows] == ["baseline", "encoder=siglip", "encoder=dinosiglip", "resize=naive", "resize=crop"]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "hydra").exists()


def test_unknown_mode_fails():
    from hydra.errors import HydraException

    from hydra_plugins.vlm_sweeps_sweeper.ablation_sweeper import AblationSweeper

    with pytest.raises(HydraException, match="known modes are ablation, grid"):
        AblationSweeper(mode="random")


def test_expansion_helpers():
    from hydra_plugins.vlm_sweeps_sweeper import expand

    assert expand.merge(["llm=a", "encoder=b"], ["llm=c"]) == ["encoder=b", "llm=c"]
    assert expand.substitute(["data=x", "llm=y"], {"data=x": ["data=z", "data.name=w"]}) == \
        ["data=z", "data.name=w", "llm=y"]
    assert expand.quoted("one-stage+7b") == "'one-stage+7b'" and expand.quoted("it's") == "'it\\'s'"
    assert all(expand.same_value(1.0, v, t) for v, t in [(1, "1"), (1.0, "1.0")])
    assert not expand.same_value("clip", "clip_224", "clip_224") and not expand.same_value(None, 1, "1")
    shuffled = expand.parse(["resize=shuffle(naive,crop,letterbox)"])[0]
    assert sorted(expand.options(shuffled)) == [("crop", "crop"), ("letterbox", "letterbox"), ("naive", "naive")]
    jobs = expand.replicate([expand.Job(["seed=10", "x=1"])], 2, 7)
    assert [j.overrides for j in jobs] == [["x=1", "seed=10"], ["x=1", "seed=11"]]
    assert list(itertools.chain(*(j.overrides for j in expand.replicate(jobs, 1, 0)))) == \
        ["x=1", "seed=10", "x=1", "seed=11"]


def test_a_sweeps_comparison_table_without_a_plan_lists_the_runs_of_the_sweep(tmp_path):
    """Another sweeper (no plan.json): the table is the runs tagged with the sweep id; the parent
    run's experiment is a model-training one (MLflow's UI then opens on its runs table)."""
    from mlflow.tracking import MlflowClient

    from vlm_sweeps import naming, tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.start_sweep_run(uri, "e", "multirun_x", ["encoder=clip,siglip"])
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("e")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    for encoder, accuracy in (("clip", 0.5), ("siglip", 0.75)):
        run = client.create_run(exp.experiment_id, tags={naming.TAG_KIND: naming.KIND_JOB,
                                                         naming.TAG_SWEEP_ID: "multirun_x"})
        client.log_param(run.info.run_id, "encoder", encoder)
        client.log_metric(run.info.run_id, "synth_vqa/accuracy", accuracy)
        client.log_metric(run.info.run_id, "synth_vqa/f1", 0.1)  # not a headline metric
        client.log_metric(run.info.run_id, "train/loss", 1.0)
        client.set_terminated(run.info.run_id, "FINISHED")
    rows = tracking.SweepCallback.comparison_rows(client, exp.experiment_id, tmp_path / "multirun_x")
    columns = tracking.SweepCallback.columns(rows)
    assert sorted(zip(columns["encoder"], columns["synth_vqa/accuracy"])) == [("clip", 0.5), ("siglip", 0.75)]
    assert "synth_vqa/f1" not in columns and "train/loss" not in columns and "experiment" not in columns
    assert columns["status"] == ["FINISHED", "FINISHED"]
