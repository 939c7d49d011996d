"""Entry point: evaluate a finished job again, without retraining, and log into its MLflow run.

    python -m vlm_sweeps.evaluate eval.run_id=<MLflow run id> benchmarks.suite=[vqav2,pope] [options]
    python -m vlm_sweeps.evaluate eval.checkpoint=<path/to/checkpoint.pt> benchmarks=paper [options]

The model is rebuilt from the run's `config.yaml` artifact (the resolved config the job ran with)
and its trained weights are loaded from `<paths.runs_dir>/<signature>/checkpoint.pt` (or
`eval.checkpoint`; a checkpoint alone names its run), only if that checkpoint is the run's own at
its final step: where another run's (another tracking store's) took its place, the run's own one set
aside beside it as `checkpoint.<run id>.pt` is used, else nothing is evaluated (train/final_weights.py,
the loader the job uses too). This invocation decides only what does not
change the model: `benchmarks.*` (which suite, slim subset, batch size), `eval.*`, `paths.*`,
`run.*` (device, threads) and `tracking.*` (the store holding the run).

Metrics are logged into the run as `<benchmark>/<metric>` at the checkpoint's step (a value equal
to the one already logged is not logged twice), predictions as `predictions/<benchmark>.jsonl`.
The blind control (`eval.blind=true`) logs `blind/<benchmark>/<metric>` and `predictions/blind/...`,
so it never overwrites the real figures. Predictions are cached (eval/cache.py): re-scoring costs
no generation. Benchmarks skipped for missing files (`eval.continue_on_missing=true`) are listed in
the tag `vlm_sweeps.skipped_benchmarks`.

    python -m vlm_sweeps.evaluate eval.run_id=<run> eval.harness=lmms_eval "eval.tasks=[mme,pope]" [options]

evaluates with lmms-eval's tasks instead (the `lmms` extra; eval/lmms.py), with task YAMLs of one's
own under `eval.include_path=DIR`, logged as `lmms/<task>/<metric>` and
`predictions/lmms/<task>.jsonl`; `benchmarks.max_examples` is lmms-eval's `--limit`. The same model
loading (`load_model`) serves `python -m lmms_eval --model vlm_sweeps`.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from vlm_sweeps import naming, tracking
from vlm_sweeps.config import Config, register_configs
from vlm_sweeps.train import final_weights

register_configs()
log = logging.getLogger("vlm_sweeps")
BLIND_PREFIX = naming.BLIND_PREFIX
# What this invocation decides; everything else comes from the run's own config.
FROM_INVOCATION = ("benchmarks", "eval", "paths", "run", "tracking")
HARNESSES = ("suite", "lmms_eval")
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


class EvaluateError(RuntimeError):
    """A run or checkpoint that cannot be evaluated; the message says why and what to do."""


@dataclass
class Target:
    """The model to evaluate: its run, config, signature and trained weights."""

    run_id: str
    signature: str
    cfg: DictConfig  # the run's config with this invocation's FROM_INVOCATION keys
    checkpoint: Path
    weights: dict[str, torch.Tensor] = field(repr=False)
    step: int


def _get_run(client, run_id: str, uri: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise EvaluateError(f"unknown run id {run_id!r} in the tracking store {uri} "
                            "(set tracking.uri or $MLFLOW_TRACKING_URI to the store that holds it)") from None


def _read_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise EvaluateError(f"checkpoint {path} does not exist")
    try:
        return final_weights.read(path)
    except final_weights.NotItsWeights as err:
        raise EvaluateError(str(err)) from None


def _run_config(client, run, invocation: DictConfig) -> tuple[DictConfig, DictConfig]:
    """(the config the run trained with, the same with this invocation's FROM_INVOCATION keys)."""
    run_id = run.info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, "config.yaml", tmp)
        except Exception as err:  # noqa: BLE001 - MLflow raises OSError or MlflowException
            raise EvaluateError(f"run {run_id} has no config.yaml artifact, so its model cannot be rebuilt "
                                f"({err})") from err
        trained = OmegaConf.load(local)
    try:
        trained = OmegaConf.merge(OmegaConf.structured(Config), trained)
    except Exception as err:  # noqa: BLE001 - omegaconf's validation errors
        raise EvaluateError(f"the config of run {run_id} does not fit the current schema: {err}") from err
    mine = {key: OmegaConf.to_container(invocation[key], resolve=True) for key in FROM_INVOCATION}
    return trained, OmegaConf.merge(trained, mine)


def resolve_target(invocation: DictConfig) -> Target:
    """Find the run, its config and its checkpoint; fail with a clear message when one is missing."""
    uri = tracking.resolve_uri(invocation.tracking.uri)
    client = tracking.mlflow_client(uri)
    run_id, given = invocation.eval.run_id, invocation.eval.checkpoint
    state = None
    if given is not None:
        given = Path(given).expanduser().resolve()
        state = _read_checkpoint(given)
    if run_id is None:
        if state is None:
            raise EvaluateError("say which model to evaluate: eval.run_id=<MLflow run id> or "
                                "eval.checkpoint=<path to checkpoint.pt>")
        run_id = state.get("run_id")
        if not run_id:
            raise EvaluateError(f"checkpoint {given} does not name its MLflow run; add eval.run_id=<run to log into>")
    run = _get_run(client, run_id, uri)
    tags = run.data.tags
    if tags.get(naming.TAG_KIND) != naming.KIND_JOB or naming.TAG_SIGNATURE not in tags:
        raise EvaluateError(f"run {run_id} is not a job run (a sweep's parent run holds no model)")
    if run.info.status != "FINISHED":
        raise EvaluateError(f"run {run_id} is {run.info.status}, not FINISHED: its checkpoint is not the trained "
                            "model yet; run the job to the end (python -m vlm_sweeps.run ...) first")
    signature = tags[naming.TAG_SIGNATURE]
    trained, cfg = _run_config(client, run, invocation)
    step = tracking.final_step(client, run)
    try:  # only the run's own final weights (train/final_weights.py), as a job re-evaluating it
        if given is None:
            folders = [Path(c.paths.runs_dir).expanduser().resolve() / signature for c in (cfg, trained)]
            found = final_weights.find(folders, run_id, step)
            if found is None:
                tried = dict.fromkeys(str(f / final_weights.CHECKPOINT) for f in folders)
                raise EvaluateError(f"run {run_id} (signature {signature}) has no checkpoint: looked for "
                                    f"{', '.join(tried)}; set paths.root (or paths.runs_dir) to the job's, "
                                    "or pass eval.checkpoint=<path>")
            given, state = found
        else:
            final_weights.check(given, state, run_id, step)
    except final_weights.NotItsWeights as err:
        raise EvaluateError(str(err)) from None
    return Target(run_id, signature, cfg, given, state["model"], step)


def load_weights(model: torch.nn.Module, target: Target) -> None:
    """Put the trained weights into the rebuilt model, strictly (the job's own loader,
    final_weights.load); refuse weights of another architecture."""
    from vlm_sweeps.train.checkpoint import trained_parts

    axes = ", ".join(f"{k}={target.cfg[k].name}" for k in ("encoder", "llm", "optimization", "scale"))
    try:
        final_weights.load(model, target.weights, trained_parts(target.cfg),
                           f"checkpoint {target.checkpoint} does not match the config of run {target.run_id} ({axes})")
    except final_weights.NotItsWeights as err:
        raise EvaluateError(str(err)) from None


def compose_invocation(overrides: list[str]) -> DictConfig:
    """The config `python -m vlm_sweeps.evaluate <overrides>` runs with (for callers outside Hydra's
    main, such as the lmms-eval adapter)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside a Hydra app already: compose from its config dir
        return compose("config", overrides=list(overrides))
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@dataclass
class Loaded:
    """A finished run's model, rebuilt with its trained weights and ready to answer."""

    target: Target
    setup: Any  # job.Setup: tokenizer, transforms, device, synthetic world, data root
    answerer: Any  # eval.harness.Answerer


def load_model(invocation: DictConfig, feature_cache: bool = True) -> Loaded:
    """Resolve the target of `invocation`, rebuild its model, load its weights, wrap it to answer.
    `feature_cache=False`: no frozen-feature cache (the same answers; nothing stored on disk)."""
    from vlm_sweeps import job
    from vlm_sweeps.eval.evaluation import answerer_for

    target = resolve_target(invocation)
    cfg = target.cfg
    s = job.setup(cfg)
    load_weights(s.model, target)
    target.weights = {}  # in the model now; a second copy of a 7B LLM's weights is not needed
    if not feature_cache:
        cfg.run.feature_cache = False
    answerer = answerer_for(cfg, s, blind=bool(cfg.eval.blind))  # the job's own evaluation harness
    return Loaded(target, s, answerer)


@dataclass
class Outcome:
    run_id: str
    metrics: dict[str, float]  # as logged (blind ones prefixed)
    skipped: dict[str, str]
    generated: int  # examples the model answered; the others came from the prediction cache
    total: int


def evaluate_run(invocation: DictConfig) -> Outcome:
    """Evaluate the target of `invocation` with the harness it names and log into its run."""
    harness = invocation.eval.harness
    if harness not in HARNESSES:
        raise EvaluateError(f"unknown eval.harness={harness!r}; known: {', '.join(HARNESSES)}")
    return _evaluate_lmms(invocation) if harness == "lmms_eval" else _evaluate_suite(invocation)


def _evaluate_suite(invocation: DictConfig) -> Outcome:
    from vlm_sweeps.eval import evaluation, registry
    from vlm_sweeps.eval import settings as eval_settings

    for name in invocation.benchmarks.suite:  # fail before anything heavy loads
        try:
            registry.get(name)
        except KeyError as err:
            raise EvaluateError(str(err.args[0])) from None
    loaded = load_model(invocation)
    target, s, answerer = loaded.target, loaded.setup, loaded.answerer
    cfg = target.cfg
    try:  # the job's own evaluation, with the cache key the job itself evaluated with
        result = evaluation.run(cfg, s, answerer, target.signature)
    except FileNotFoundError as err:  # MissingBenchmarkFile names the benchmark and the file
        hint = "" if cfg.eval.continue_on_missing else " (eval.continue_on_missing=true evaluates the other benchmarks)"
        raise EvaluateError(f"{err}{hint}") from err
    prefix = BLIND_PREFIX if answerer.blind else ""
    metrics = {prefix + k: v for k, v in result.metrics.items()}
    _log(target, metrics, {prefix + k: v for k, v in result.predictions.items()},
         {prefix + k for k in result.skipped},
         eval_settings.tags(cfg, result.predictions, answerer.blind, result.metrics))
    return Outcome(target.run_id, metrics, result.skipped, sum(result.generated.values()),
                   sum(len(rows) for rows in result.predictions.values()))


def _evaluate_lmms(invocation: DictConfig) -> Outcome:
    """lmms-eval's tasks `eval.tasks` (plus those under `eval.include_path`) on the run's model."""
    try:
        from vlm_sweeps.eval import lmms
    except ImportError as err:
        raise EvaluateError(f"eval.harness=lmms_eval needs lmms-eval: pip install -e '.[lmms]' ({err})") from None
    tasks = list(invocation.eval.tasks)
    if not tasks:
        raise EvaluateError("eval.harness=lmms_eval needs tasks: \"eval.tasks=[mme,pope]\" "
                            "(python -m lmms_eval tasks list names them)")
    try:  # fail before anything heavy loads
        manager = lmms.task_manager(tasks, invocation.eval.include_path)
    except ValueError as err:
        raise EvaluateError(str(err)) from None
    loaded = load_model(invocation, feature_cache=False)  # lmms-eval's images: no cache to fill on disk
    cfg = loaded.target.cfg
    result = lmms.evaluate(loaded.answerer, tasks, manager, batch_size=cfg.benchmarks.batch_size,
                           limit=cfg.benchmarks.max_examples)
    prefix = BLIND_PREFIX if loaded.answerer.blind else ""
    metrics = {prefix + k: v for k, v in result.metrics.items()}
    _log(loaded.target, metrics, {prefix + k: v for k, v in result.predictions.items()}, set())
    answered = sum(len(rows) for rows in result.predictions.values())
    return Outcome(loaded.target.run_id, metrics, {}, answered, answered)


def _log(target: Target, metrics: dict[str, float], predictions: dict[str, list[dict]], skipped: set[str],
         setting_tags: dict[str, str] | None = None) -> None:
    """Into the (finished) run: new metric values, predictions, the updated list of skipped benchmarks,
    and each benchmark's evaluation setting (eval/settings.py: what analysis compares before ranking)."""
    import json
    import time

    from mlflow.entities import Metric

    from vlm_sweeps.eval.suite import TAG_SKIPPED

    client = tracking.mlflow_client(tracking.resolve_uri(target.cfg.tracking.uri))
    logged = client.get_run(target.run_id).data
    now = int(time.time() * 1000)
    # re-logging an unchanged value would only duplicate the metric's history
    fresh = [Metric(k, float(v), now, target.step) for k, v in metrics.items() if logged.metrics.get(k) != v]
    for i in range(0, len(fresh), 500):
        client.log_batch(target.run_id, metrics=fresh[i:i + 500])
    for name, rows in predictions.items():
        client.log_text(target.run_id, "".join(json.dumps(r) + "\n" for r in rows), f"predictions/{name}.jsonl")
    for key, value in (setting_tags or {}).items():
        client.set_tag(target.run_id, key, value)
    before = {n for n in logged.tags.get(TAG_SKIPPED, "").split(",") if n}
    still = sorted((before - set(predictions)) | skipped)
    if still:
        client.set_tag(target.run_id, TAG_SKIPPED, ",".join(still))
    elif before:
        client.delete_tag(target.run_id, TAG_SKIPPED)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict[str, float]:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one small file: no bar
    try:
        out = evaluate_run(cfg)
    except EvaluateError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"run {out.run_id}: {out.generated} of {out.total} examples generated, "
          f"{out.total - out.generated} from the prediction cache")
    for key, value in sorted(out.metrics.items()):
        print(f"  {key:<34} {value:.4f}")
    for name, why in out.skipped.items():
        print(f"  skipped {name}: {why}")
    return out.metrics


if __name__ == "__main__":
    main()
