"""Resources derive from each job's config; one array per resource class, cut at the array limit."""

from __future__ import annotations

import pytest

from launchers.freeze import Composer, freeze
from launchers.resources import chunks, class_key, executor_parameters, resources_for, world_size


@pytest.fixture()
def options(hydra_loader):
    from omegaconf import OmegaConf

    _, master = hydra_loader
    return OmegaConf.to_container(master.hydra.launcher, resolve=False)


def test_defaults_of_hydra_launcher_slurm(options):
    assert options["_target_"] == "hydra_plugins.vlm_sweeps_launcher.slurm_launcher.SlurmLauncher"
    assert options["wait"] is False and options["skip_finished"] is True
    assert options["resources"]["gpus_per_node"] == 0  # tiny jobs run on CPU nodes
    assert options["max_array_size"] is None  # read from the cluster


def test_a_13b_llm_gets_more_gpus_than_a_7b_one(hydra_loader, options, tmp_path):
    loader, master = hydra_loader
    composer = Composer(loader)
    found = {}
    for overrides in (["scale=tiny"], ["scale=full", "llm=vicuna_v15"], ["scale=full", "llm=llama2_13b"],
                      ["scale=full", "llm=vicuna_v15_13b"], ["scale=full", "llm=mistral"]):
        job = freeze(composer, master, overrides, 0, tmp_path)
        found[" ".join(overrides)] = resources_for(job.config, options["resources"], options["resource_classes"])
    assert found["scale=tiny"] == ("default", options["resources"])
    name_7b, res_7b = found["scale=full llm=vicuna_v15"]
    name_13b, res_13b = found["scale=full llm=llama2_13b"]
    assert (name_7b, res_7b["gpus_per_node"]) == ("gpu", 1)
    assert (name_13b, res_13b["gpus_per_node"]) == ("gpu+llm_13b", 2)
    # one task (process) per GPU: the job's processes train data-parallel (run.parallel)
    assert (res_7b["tasks_per_node"], res_13b["tasks_per_node"], world_size(res_13b)) == (1, 2, 2)
    assert found["scale=full llm=vicuna_v15_13b"] == found["scale=full llm=llama2_13b"]
    assert found["scale=full llm=mistral"] == found["scale=full llm=vicuna_v15"]
    # three classes -> three arrays
    assert len({class_key(r) for _, r in found.values()}) == 3


def test_when_accepts_lists_and_unknown_resources_fail():
    base = {"gpus_per_node": 0, "cpus_per_task": 2}
    classes = {"big": {"when": {"llm.name": ["a", "b"], "seed": 1}, "resources": {"gpus_per_node": 4}}}
    assert resources_for({"llm": {"name": "b"}, "seed": 1}, base, classes)[0] == "big"
    assert resources_for({"llm": {"name": "c"}, "seed": 1}, base, classes)[0] == "default"
    assert resources_for({"seed": 1}, base, classes)[0] == "default"  # a missing key never matches
    assert resources_for({"seed": 1}, base, {"off": None})[0] == "default"
    with pytest.raises(ValueError, match="gpus_per_nod"):
        resources_for({}, base, {"typo": {"when": {}, "resources": {"gpus_per_nod": 1}}})


def test_chunks_respect_the_array_limit():
    assert [len(c) for c in chunks(list(range(2500)), 1001)] == [1001, 1001, 498]
    assert [len(c) for c in chunks(list(range(3)), 1001)] == [3]
    with pytest.raises(ValueError):
        list(chunks([1], 0))


def test_executor_parameters_use_submitits_names():
    options = {"partition": "gpu", "account": "lab", "qos": None, "job_name": "vlm", "array_parallelism": 8,
               "signal_delay_s": 120, "setup": ["module load cuda"], "sbatch_flags": {"constraint": "a100"},
               "srun_args": [], "wait": True}
    params = executor_parameters(options, {"timeout_min": 60, "gpus_per_node": 1, "mem_gb": None})
    assert params == {"timeout_min": 60, "gpus_per_node": 1, "slurm_partition": "gpu", "slurm_account": "lab",
                      "name": "vlm", "slurm_array_parallelism": 8, "slurm_signal_delay_s": 120,
                      "slurm_setup": ["module load cuda"], "slurm_additional_parameters": {"constraint": "a100"}}
    assert "gpus_per_node" not in executor_parameters({}, {"gpus_per_node": 0, "cpus_per_task": 2})


def test_a_malformed_class_says_what_is_expected():
    with pytest.raises(ValueError, match="expected"):
        resources_for({}, {"gpus_per_node": 0}, {"bad": {"if": {"seed": 1}}})


def test_a_gpu_job_runs_one_task_per_gpu_on_every_node():
    base = {"nodes": 1, "tasks_per_node": 1, "gpus_per_node": 0, "cpus_per_task": 2}
    classes = {"multi": {"when": {"seed": 1}, "resources": {"gpus_per_node": 4, "nodes": 2}}}
    name, res = resources_for({"seed": 1}, base, classes)
    assert (name, res["tasks_per_node"], world_size(res)) == ("multi", 4, 8)
    assert executor_parameters({}, res)["tasks_per_node"] == 4
    # CPU jobs keep the tasks they ask for (several CPU tasks train data-parallel over gloo)
    assert resources_for({"seed": 2}, {**base, "tasks_per_node": 2}, classes)[1]["tasks_per_node"] == 2
