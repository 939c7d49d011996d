"""Studies as presets (conf/study/): `+study=prismatic` is the Prismatic paper's registry of
experiments (TRI-ML/prismatic-vlms prismatic/conf/models.py), each entry one job that changes what
the entry changes from the controlled baseline, at any scale, tagged with its id and section."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# The paper's controlled baseline (one-stage+7b) in our axes, at scale=full.
BASELINE = {"encoder": "clip", "resize": "letterbox", "optimization": "single_stage", "llm": "vicuna_v15",
            "epochs": "1.0", "data": "llava_v15", "projector": "mlp", "features": "penultimate"}
P7, P13 = {"llm": "llama2", "resize": "naive"}, {"llm": "llama2_13b", "resize": "naive"}
FULL = {"data": "llava_lvis4v_lrv", "epochs": "2.0"}
# The registry (ModelRegistry, in its order) -> (section, what the entry changes). Left out: llama2-chat+13b
# (no Llama-2 13B chat option). prism-siglip+13b: SigLIP (the registry's code names CLIP, a slip).
REGISTRY = {
    "reproduction-llava-v15+7b": ("reproduction", {"optimization": "two_stage"}),
    "reproduction-llava-v15+13b": ("reproduction", {"optimization": "two_stage", "llm": "vicuna_v15_13b"}),
    "one-stage+7b": ("4.1", {}),
    "one-stage+13b": ("4.1", {"llm": "vicuna_v15_13b"}),
    "full-ft-multi-stage+7b": ("4.1", {"optimization": "two_stage_full_finetune"}),
    "full-ft-one-stage+7b": ("4.1", {"optimization": "full_finetune"}),
    "in1k-224px+7b": ("4.2", {"encoder": "in1k"}),
    "dinov2-224px+7b": ("4.2", {"encoder": "dinov2"}),
    "clip-224px+7b": ("4.2", {"encoder": "clip_224"}),
    "siglip-224px+7b": ("4.2", {"encoder": "siglip_224"}),
    "clip-336px-resize-crop+7b": ("4.2", {"resize": "crop"}),
    "clip-336px-resize-naive+7b": ("4.2", {"resize": "naive"}),
    "siglip-384px-letterbox+7b": ("4.2", {"encoder": "siglip"}),
    "siglip-384px-resize-crop+7b": ("4.2", {"encoder": "siglip", "resize": "crop"}),
    "siglip-384px-resize-naive+7b": ("4.2", {"encoder": "siglip", "resize": "naive"}),
    "dinoclip-336px-letterbox+7b": ("4.2", {"encoder": "dinoclip"}),
    "dinoclip-336px-resize-naive+7b": ("4.2", {"encoder": "dinoclip", "resize": "naive"}),
    "dinosiglip-384px-letterbox+7b": ("4.2", {"encoder": "dinosiglip"}),
    "dinosiglip-384px-resize-naive+7b": ("4.2", {"encoder": "dinosiglip", "resize": "naive"}),
    "llama2+7b": ("4.3", {"llm": "llama2"}),
    "llama2+13b": ("4.3", {"llm": "llama2_13b"}),
    "llama2-chat+7b": ("4.3", {"llm": "llama2_chat"}),
    "mistral-v0.1+7b": ("4.3", {"llm": "mistral"}),
    "mistral-instruct-v0.1+7b": ("4.3", {"llm": "mistral_instruct"}),
    "phi-2+3b": ("4.3", {"llm": "phi2"}),
    "vicuna-no-cotraining+7b": ("4.3", {"data": "llava_v15_no_language"}),
    "llama2-no-cotraining+7b": ("4.3", {"llm": "llama2", "data": "llava_v15_no_language"}),
    "train-1.25-epochs+7b": ("4.4", {"epochs": "1.25"}),
    "train-1.5-epochs+7b": ("4.4", {"epochs": "1.5"}),
    "train-2-epochs+7b": ("4.4", {"epochs": "2.0"}),
    "train-3-epochs+7b": ("4.4", {"epochs": "3.0"}),
    "llava-lvis4v+7b": ("4.4", {"data": "llava_lvis4v"}),
    "llava-lrv+7b": ("4.4", {"data": "llava_lrv"}),
    "llava-lvis4v-lrv+7b": ("4.4", {"data": "llava_lvis4v_lrv"}),
    "prism-clip-controlled+7b": ("prism", P7),
    "prism-clip-controlled+13b": ("prism", P13),
    "prism-clip+7b": ("prism", {**P7, **FULL}),
    "prism-clip+13b": ("prism", {**P13, **FULL}),
    "prism-siglip-controlled+7b": ("prism", {**P7, "encoder": "siglip"}),
    "prism-siglip-controlled+13b": ("prism", {**P13, "encoder": "siglip"}),
    "prism-siglip+7b": ("prism", {**P7, **FULL, "encoder": "siglip"}),
    "prism-siglip+13b": ("prism", {**P13, **FULL, "encoder": "siglip"}),
    "prism-dinosiglip-controlled+7b": ("prism", {**P7, "encoder": "dinosiglip"}),
    "prism-dinosiglip-controlled+13b": ("prism", {**P13, "encoder": "dinosiglip"}),
    "prism-dinosiglip+7b": ("prism", {**P7, **FULL, "encoder": "dinosiglip"}),
    "prism-dinosiglip+13b": ("prism", {**P13, **FULL, "encoder": "dinosiglip"}),
    "prism-dinosiglip-224px-controlled+7b": ("prism", {**P7, "encoder": "dinosiglip_224"}),
    "prism-dinosiglip-224px+7b": ("prism", {**P7, **FULL, "encoder": "dinosiglip_224"}),
}


@pytest.fixture()
def study_plan(tmp_path, monkeypatch):
    """study_plan(command line) -> (the planned jobs with their composed configs, the sweeper), as
    `python -m vlm_sweeps.run -m <command line>` plans them (nothing launched)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import HydraContext, RunMode

    from hydra_plugins.vlm_sweeps_sweeper import plan
    from hydra_plugins.vlm_sweeps_sweeper.ablation_sweeper import AblationSweeper
    from vlm_sweeps.config import register_configs

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    register_configs()

    def run(args: list[str]):
        with initialize_config_dir(str(REPO / "conf"), version_base="1.3", job_name="run"):
            loader = GlobalHydra.instance().config_loader()
            master = loader.load_configuration("config", [*args, f"paths.root={tmp_path}"], run_mode=RunMode.MULTIRUN)
            sweeper = AblationSweeper(**{k: v for k, v in master.hydra.sweeper.items() if k != "_target_"})
            sweeper.hydra_context, sweeper.config = HydraContext(config_loader=loader, callbacks=None), master
            jobs, what, _ = sweeper.jobs(list(master.hydra.overrides.task))
            planned = plan.compose(loader, master, jobs, keep_configs=True)
            return planned, [p.config for p in planned], sweeper, what

    return run


def test_the_study_is_the_papers_registry_at_full_scale(study_plan):
    planned, configs, sweeper, what = study_plan(["+study=prismatic", "scale=full"])
    assert sweeper.mode == "grid"  # the default sweeper: a study lists its own jobs in any mode
    assert [p.label for p in planned] == list(REGISTRY)
    assert "llama2-chat+13b" not in [p.label for p in planned]
    for p, cfg in zip(planned, configs):
        section, changes = REGISTRY[p.label]
        expected = {**BASELINE, **changes}
        assert {a: p.axes[a] for a in expected} == expected, p.label
        assert (p.section, cfg.study.name, cfg.study.experiment, cfg.study.section) == \
            (section, "prismatic", p.label, section)
        assert cfg.benchmarks.name == "paper" and cfg.scale.name == "full"
    assert len({p.signature for p in planned}) == len(REGISTRY)  # every entry a model of its own
    assert what == "study prismatic at scale=full"


def test_the_same_study_runs_in_miniature_at_tiny_scale(study_plan):
    planned, configs, sweeper, _ = study_plan(["+study=prismatic"])
    assert [p.label for p in planned] == list(REGISTRY)
    assert len({p.signature for p in planned}) == len(REGISTRY)
    for p, cfg in zip(planned, configs):
        _, changes = REGISTRY[p.label]
        # what does not need the LLaVA files is the paper's; the mixes are their synthetic analogues
        expected = {**BASELINE, **changes}
        assert {a: p.axes[a] for a in expected if a != "data"} == {a: v for a, v in expected.items() if a != "data"}
        assert cfg.data.source == "synthetic" and cfg.benchmarks.name == "synthetic" and cfg.scale.name == "tiny"
    data = {p.label: (p.axes["data"], dict(c.data.synthetic.tasks)) for p, c in zip(planned, configs)}
    assert data["one-stage+7b"][0] == "synthetic" and data["vicuna-no-cotraining+7b"][0] == "synthetic_no_language"
    mixes = [data[k] for k in ("one-stage+7b", "llava-lvis4v+7b", "llava-lrv+7b", "llava-lvis4v-lrv+7b")]
    assert len({name for name, _ in mixes}) == 4 and len({str(tasks) for _, tasks in mixes}) == 4
    assert data["prism-clip+7b"] == data["llava-lvis4v-lrv+7b"]
    assert any("data=llava_lrv -> data=synthetic" in note for note in sweeper.notes)


def test_the_command_line_changes_every_jobs_baseline_and_experiments_win(study_plan):
    planned, configs, _, _ = study_plan(["+study=prismatic", "llm=mistral", "benchmarks.max_examples=8"])
    by_id = {p.label: (p, c) for p, c in zip(planned, configs)}
    assert by_id["one-stage+7b"][0].axes["llm"] == "mistral"
    assert by_id["llama2+7b"][0].axes["llm"] == "llama2"  # the experiment's own override
    assert all(c.benchmarks.max_examples == 8 for c in configs)


def test_replicates_of_a_study(study_plan):
    planned, _, _, what = study_plan(["+study=example", "+seeds=3"])
    assert [(p.label, p.seed) for p in planned] == [(e, s) for e in ("baseline", "siglip", "naive") for s in (7, 8, 9)]
    assert len({p.signature for p in planned}) == 9 and what.endswith("3 seeds each")


def test_a_users_study_is_one_yaml_file(study_plan, tmp_path):
    planned, configs, _, _ = study_plan(["+study=example"])
    assert [(p.label, p.section) for p in planned] == [("baseline", "base"), ("siglip", "encoder"), ("naive", "resize")]
    assert [(p.axes["encoder"], p.axes["resize"], p.axes["llm"]) for p in planned] == [
        ("clip", "letterbox", "vicuna_v15"), ("siglip", "letterbox", "vicuna_v15"), ("clip", "naive", "vicuna_v15")]
    mine = tmp_path / "studies" / "study"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text(
        "# @package _global_\n"
        "study:\n  name: mine\n  baseline: [epochs=2]\n"
        "  experiments:\n    - {id: a, section: x, overrides: []}\n    - {id: b, section: x, overrides: [llm=phi2]}\n")
    planned, configs, _, _ = study_plan([f"hydra.searchpath=[file://{tmp_path / 'studies'}]", "+study=mine"])
    assert [(p.label, p.axes["llm"], p.axes["epochs"]) for p in planned] == [("a", "llama2", "2.0"),
                                                                             ("b", "phi2", "2.0")]
    assert configs[1].study.name == "mine"


def test_a_study_is_not_crossed_with_a_sweep(study_plan):
    from hydra.errors import HydraException

    with pytest.raises(HydraException, match="lists its own jobs"):
        study_plan(["+study=example", "encoder=clip,siglip"])


def test_study_tags_are_not_part_of_the_signature(study_plan):
    from tests.conftest import compose
    from vlm_sweeps import identity

    planned, _, _, _ = study_plan(["+study=example"])
    assert planned[0].signature == identity.signature(compose(["llm=vicuna_v15"]))


def test_experiments_need_an_id_and_overrides():
    from hydra.errors import HydraException

    from hydra_plugins.vlm_sweeps_sweeper import expand

    with pytest.raises(HydraException, match="lacks overrides"):
        expand.study([], [{"id": "a"}], [])
    with pytest.raises(HydraException, match="given twice"):
        expand.study([], [{"id": "a", "overrides": []}, {"id": "a", "overrides": []}], [])
    # the scale's analogues replace the study's overrides, never the command line's
    jobs = expand.study(["data=llava_v15"], [{"id": "a", "overrides": []}], ["benchmarks=paper"], "tiny",
                        {"tiny": {"data=llava_v15": ["data=synthetic"], "benchmarks=paper": ["benchmarks=synthetic"]}})
    assert jobs[0].overrides[:2] == ["data=synthetic", "benchmarks=paper"]


def test_study_files_parse():
    import yaml

    for path in sorted((REPO / "conf" / "study").glob("*.yaml")):
        study = yaml.safe_load(path.read_text())["study"]
        assert study["name"] == Path(path).stem
        assert all({"id", "section", "overrides"} <= set(e) for e in study["experiments"])
