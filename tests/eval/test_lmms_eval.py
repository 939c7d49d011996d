"""The lmms-eval adapter (vlm_sweeps/eval/lmms.py): lmms-eval's requests answered by our harness,
and a finished run evaluated on a local lmms-eval task through both commands of the README:
`python -m lmms_eval --model vlm_sweeps ...` and `python -m vlm_sweeps.evaluate eval.harness=lmms_eval`.

Offline: the tasks are YAML files under a folder given as `--include_path` / `eval.include_path`,
reading JSON lines written here (HF datasets' `json` builder) about the synthetic world's images.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from lmms_eval.api.instance import Instance, unwrap_generation_output  # the lmms extra: never skipped

from tests.conftest import REPO, SMALL, compose
from vlm_sweeps.eval import lmms, registry
from vlm_sweeps.eval.examples import EvalExample
from vlm_sweeps.eval.harness import Answerer

TASKS = ("vsw_synth_vqa", "vsw_synth_pope")  # our synth_vqa and synth_pope, as lmms-eval tasks
SUITE = "benchmarks.suite=[synth_vqa,synth_pope]"


@pytest.fixture(scope="module")
def answerer(small_world, session_root) -> Answerer:
    """The default tiny model with its seeded random weights (they give varied text and scores)."""
    from vlm_sweeps import job

    s = job.setup(compose(SMALL, root=session_root))
    s.model.eval()
    return Answerer(s.model, s.tokenizer, s.fmt, s.transforms, s.device)


def _requests(kind: str, rows: list[tuple], task: str = "t") -> list[Instance]:
    """lmms-eval Instances as a simple task builds them: (context, gen_kwargs | target, doc_to_visual,
    doc_id, task, split)."""
    def visual(doc):
        from PIL import Image

        return [Image.open(doc["image"]).convert("RGB")] if doc.get("image") else []

    return [Instance(request_type=kind, arguments=(ctx, second, visual, doc_id, task, "test"), idx=0,
                     metadata={"task": task, "doc_id": doc_id, "repeats": 1})
            for ctx, second, doc_id in rows]


def _scores(model: lmms.VlmSweepsModel, requests: list[Instance]) -> list[tuple[float, bool]]:
    """The model's loglikelihood answers as lmms-eval's evaluator reads them."""
    return [unwrap_generation_output(r)[0] for r in model.loglikelihood(requests)]


def _model(answerer: Answerer, docs: list[dict], batch_size: int) -> lmms.VlmSweepsModel:
    model = lmms.VlmSweepsModel(answerer=answerer, batch_size=batch_size)
    model.task_dict = {"t": {"test": docs}}
    return model


def test_the_adapter_is_registered_with_lmms_eval():
    from lmms_eval.models import get_model

    names = [ep.name for ep in entry_points(group="lmms_eval.models")]
    assert "vlm_sweeps" in names, ("no lmms_eval.models entry point: re-run pip install -e '.[test]' (an older "
                                   "install's vlm_sweeps.egg-info in the checkout hides it)")
    assert get_model("vlm_sweeps") is lmms.VlmSweepsModel


def test_generate_until_gives_the_harness_answers_in_any_batch_and_stops_where_asked(answerer, small_world):
    world, _ = small_world
    examples = registry.get("synth_vqa").load(registry.LoadContext(world))[:5]
    docs = [{"image": ex.image} for ex in examples] + [{"image": None}]  # a text-only question too
    questions = [ex.question for ex in examples] + ["Say something."]
    expected = [answerer.generate([ex], 6)[0] for ex in examples]
    expected.append(answerer.generate([EvalExample(qid="x", question=questions[-1], image=None)], 6)[0])
    assert any(expected)  # random weights: real text to compare

    rows = [(q, {"max_new_tokens": 6, "until": ["\n\n"]}, i) for i, q in enumerate(questions)]
    for batch_size in (1, 4):  # mixed image / text-only requests, unequal prompt lengths
        assert _model(answerer, docs, batch_size).generate_until(_requests("generate_until", rows)) == expected

    # `until` cuts the text at its first stop string; max_new_tokens bounds the generation
    word = next(t for t in expected if " " in t)
    i = expected.index(word)
    cut = _model(answerer, docs, 2).generate_until(
        _requests("generate_until", [(questions[i], {"max_new_tokens": 6, "until": [" "]}, i)]))
    assert cut == [word.split(" ")[0]]
    short = _model(answerer, docs, 2).generate_until(
        _requests("generate_until", [(questions[i], {"max_new_tokens": 1}, i)]))
    assert short == [answerer.generate([examples[i]], 1)[0]] and len(short[0]) < len(word)


def test_loglikelihood_scores_continuations_as_the_harness_chooses_among_them(answerer, small_world, monkeypatch):
    world, _ = small_world
    examples = registry.get("synth_pope").load(registry.LoadContext(world))[:4]
    chosen = answerer.choose(examples)  # Choice: the candidate, with every candidate's probability
    docs = [{"image": ex.image} for ex in examples]
    # as a multiple_choice task asks: the target delimiter " " before each candidate
    rows = [(ex.question, " " + choice, i) for i, ex in enumerate(examples) for choice in ex.choices]
    for batch_size in (1, 3):
        scores = _scores(_model(answerer, docs, batch_size), _requests("loglikelihood", rows))
        # lmms-eval's convention: a loss (-sum of log-probabilities), the argmin is the answer
        assert all(isinstance(loss, float) and loss > 0 and isinstance(greedy, bool) for loss, greedy in scores)
        at = 0
        for ex, choice in zip(examples, chosen):
            lls = [-loss for loss, _ in scores[at:at + len(ex.choices)]]
            at += len(ex.choices)
            assert ex.choices[max(range(len(lls)), key=lls.__getitem__)] == choice
            probabilities = [math.exp(v - max(lls)) for v in lls]
            total = sum(probabilities)
            assert [p / total for p in probabilities] == pytest.approx(list(choice.probabilities), abs=1e-4)

    # is_greedy: true exactly for the continuation greedy decoding produces. Its first generated token
    # is read where generate decodes it; a token whose text tokenizes back to that same token makes a
    # one-token continuation (not, e.g., "▁s", which decodes and strips to "s", another token)
    more = registry.get("synth_pope").load(registry.LoadContext(world))[:16]
    more_docs = [{"image": ex.image} for ex in more]
    generated, decode = [], answerer.tokenizer.decode
    monkeypatch.setattr(answerer.tokenizer, "decode",
                        lambda row, *a, **k: generated.append(list(row)) or decode(row, *a, **k))
    answerer.generate(more, 1)
    monkeypatch.undo()
    firsts = [(i, row[0], decode([row[0]])) for i, row in enumerate(generated) if row]
    i, first = next((i, t) for i, tok, t in firsts
                    if t and answerer.tokenizer(t, add_special_tokens=False)["input_ids"] == [tok])
    other = next(t for t in ("yes", "no", "blue") if t != first)
    (loss_first, greedy_first), (loss_other, greedy_other) = _scores(_model(answerer, more_docs, 2), _requests(
        "loglikelihood", [(more[i].question, first, i), (more[i].question, other, i)]))
    assert greedy_first and not greedy_other and loss_first < loss_other
    assert _scores(_model(answerer, docs, 2), _requests("loglikelihood", [(examples[0].question, "", 0)])) \
        == [(0.0, True)]


def test_lmms_eval_results_become_metric_names_mlflow_accepts():
    raw = {"results": {"mme": {"alias": "mme", "acc,none": 0.5, "acc_stderr,none": 0.1, "exact_match,strict-match": 1,
                               "bleu_stderr,none": "N/A", "n,none": True}},
           "groups": {"mmbench": {"acc,none": 0.25}}}
    assert lmms.metric_names(raw) == {"lmms/mme/acc": 0.5, "lmms/mme/acc_stderr": 0.1,
                                      "lmms/mme/exact_match_strict-match": 1.0, "lmms/mmbench/acc": 0.25}


# --- a finished run through both commands ------------------------------------------------------------


TASK_UTILS = '''
from PIL import Image

from vlm_sweeps.eval import scoring


def doc_to_visual(doc):
    return [Image.open(doc["image"]).convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["question"]


def target_index(doc):
    return doc["choices"].index(doc["answer"])


def vqa_results(doc, results):
    return {"accuracy": scoring.vqa_soft_accuracy(results[0], doc["answers"])}
'''

VQA_YAML = '''task: vsw_synth_vqa
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_visual: !function vsw_task_utils.doc_to_visual
doc_to_text: !function vsw_task_utils.doc_to_text
doc_to_target: answer
generation_kwargs:
  max_new_tokens: 6
  until: ["\\n\\n"]
process_results: !function vsw_task_utils.vqa_results
metric_list:
  - metric: accuracy
    aggregation: mean
    higher_is_better: true
'''

POPE_YAML = '''task: vsw_synth_pope
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_visual: !function vsw_task_utils.doc_to_visual
doc_to_text: !function vsw_task_utils.doc_to_text
doc_to_choice: choices
doc_to_target: !function vsw_task_utils.target_index
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
'''


def _run(args: list[str], cwd: Path, env_extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HF_"))}
    env.update(env_extra, PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"{args[:2]}:\n{out.stdout[-3000:]}\n{out.stderr[-4000:]}"
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny run (SMALL settings) trained to the end by `python -m vlm_sweeps.run` in a fresh folder,
    and a folder of lmms-eval task YAMLs over its synthetic world's synth_vqa and synth_pope."""
    from mlflow.tracking import MlflowClient

    cwd = tmp_path_factory.mktemp("lmms_run")
    uri = f"sqlite:///{cwd / 'mlflow.db'}"
    env = {"HF_HOME": str(cwd / "hf"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    _run(["-m", "vlm_sweeps.run", *SMALL, SUITE, f"tracking.uri={uri}"], cwd, env)
    client = MlflowClient(uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    world = next((cwd / ".vlm_sweeps" / "cache").rglob("eval/synth_vqa.json")).parent.parent
    tasks = cwd / "lmms_tasks"
    tasks.mkdir()
    (tasks / "vsw_task_utils.py").write_text(TASK_UTILS)
    for name, template in (("synth_vqa", VQA_YAML), ("synth_pope", POPE_YAML)):
        items = json.loads((world / "eval" / f"{name}.json").read_text())
        with open(tasks / f"{name}.jsonl", "w") as f:
            for it in items:  # the world's records, with absolute image paths
                f.write(json.dumps({**it, "image": str(world / it["image"])}) + "\n")
        (tasks / f"vsw_{name}.yaml").write_text(template.format(data=tasks / f"{name}.jsonl"))
    predictions = {name: [json.loads(line) for line in Path(client.download_artifacts(
        run.info.run_id, f"predictions/{name}.jsonl", str(cwd))).read_text().splitlines()]
        for name in ("synth_vqa", "synth_pope")}
    return cwd, uri, run, tasks, env, predictions


@pytest.mark.integration
def test_a_finished_run_evaluates_on_a_local_lmms_eval_task_through_both_commands(finished_run):
    from mlflow.tracking import MlflowClient

    cwd, uri, run, tasks, env, job_predictions = finished_run
    run_id = run.info.run_id

    # 1. lmms-eval's own command line, the model named by its run
    _run(["-m", "lmms_eval", "--model", "vlm_sweeps", "--model_args", f"run_id={run_id},tracking_uri={uri}",
          "--tasks", ",".join(TASKS), "--include_path", str(tasks), "--batch_size", "4",
          "--output_path", str(cwd / "lmms_out"), "--log_samples"], cwd, env)
    (results_file,) = (cwd / "lmms_out").rglob("*_results.json")
    cli = json.loads(results_file.read_text())["results"]

    # 2. python -m vlm_sweeps.evaluate with the lmms_eval harness: logged into the run
    out = _run(["-m", "vlm_sweeps.evaluate", f"eval.run_id={run_id}", f"tracking.uri={uri}", "eval.harness=lmms_eval",
                f"eval.tasks=[{','.join(TASKS)}]", f"eval.include_path={tasks}", "run.progress=false"], cwd, env)
    assert f"run {run_id}: 24 of 24 examples generated" in out.stdout
    client = MlflowClient(uri)
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED" and len(client.search_runs([logged.info.experiment_id])) == 1
    metrics = logged.data.metrics

    # both commands give the same figures, and they are the run's own on the same questions
    assert metrics["lmms/vsw_synth_vqa/accuracy"] == cli["vsw_synth_vqa"]["accuracy,none"]
    assert metrics["lmms/vsw_synth_pope/acc"] == cli["vsw_synth_pope"]["acc,none"]
    assert "lmms/vsw_synth_pope/acc_stderr" in metrics
    assert metrics["lmms/vsw_synth_vqa/accuracy"] == pytest.approx(metrics["synth_vqa/accuracy"])
    assert metrics["lmms/vsw_synth_pope/acc"] == pytest.approx(metrics["synth_pope/accuracy"])
    step = client.get_metric_history(run_id, "synth_vqa/accuracy")[0].step
    assert client.get_metric_history(run_id, "lmms/vsw_synth_vqa/accuracy")[0].step == step

    # the predictions, one row per document, are the run's own answers
    rows = {}
    for task in TASKS:
        path = client.download_artifacts(run_id, f"predictions/lmms/{task}.jsonl", str(cwd / "artifacts"))
        rows[task] = sorted((json.loads(line) for line in Path(path).read_text().splitlines()),
                            key=lambda r: r["doc_id"])
    assert [r["prediction"] for r in rows["vsw_synth_vqa"]] == [p["prediction"] for p in job_predictions["synth_vqa"]]
    assert [r["input"] for r in rows["vsw_synth_vqa"]] == [p["question"] for p in job_predictions["synth_vqa"]]
    # a candidate's score is its loss: the least is the answer, the run's own closed-set choice
    docs = [json.loads(line) for line in (tasks / "synth_pope.jsonl").read_text().splitlines()]
    chosen = [doc["choices"][min(range(len(r["prediction"])), key=lambda c: r["prediction"][c][0])]
              for doc, r in zip(docs, rows["vsw_synth_pope"])]
    assert chosen == [p["prediction"] for p in job_predictions["synth_pope"]]
    assert [r["acc"] for r in rows["vsw_synth_pope"]] == [float(c == d["answer"]) for c, d in zip(chosen, docs)]


@pytest.mark.integration
def test_evaluate_says_what_is_wrong_with_an_lmms_eval_request(finished_run):
    from vlm_sweeps.evaluate import EvaluateError, evaluate_run

    _, uri, run, tasks, _, _ = finished_run
    base = [f"eval.run_id={run.info.run_id}", f"tracking.uri={uri}", "eval.harness=lmms_eval"]
    with pytest.raises(EvaluateError, match="needs tasks"):
        evaluate_run(compose(base))
    with pytest.raises(EvaluateError, match="unknown lmms-eval task.*vsw_nope.*under"):
        evaluate_run(compose(base + ["eval.tasks=[vsw_nope]", f"eval.include_path={tasks}"]))
    with pytest.raises(EvaluateError, match="unknown eval.harness='nope'"):
        evaluate_run(compose(base + ["eval.harness=nope"]))
    with pytest.raises(ValueError, match="unknown model_args color"):
        lmms.VlmSweepsModel(run_id=run.info.run_id, tracking_uri=uri, color="red")

