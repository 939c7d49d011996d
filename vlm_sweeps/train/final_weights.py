"""The trained model of a FINISHED run, and only its own: the checkpoint that names that run and
holds its final step, loaded strictly. One loader for a job evaluating what its FINISHED run lacks
(job.evaluate_finished) and for `python -m vlm_sweeps.evaluate`, so neither scores, and logs into
the run, the weights of another run.

Why it is needed: `<runs_dir>/<signature>/checkpoint.pt` is shared by every tracking store used
with one `paths.root`. When another store's run of the same signature trains there, the job sets
the FINISHED run's checkpoint aside as `checkpoint.<run id>.pt` (job._open_run) and writes its own,
perhaps half-trained, `checkpoint.pt`. A checkpoint names its run (`run_id`) and its step
(`stage_steps`, summed); one that names no run (an older format) has an unknown owner and is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vlm_sweeps.train import NotItsWeights  # noqa: F401  (defined torch-free, for run.py)
from vlm_sweeps.train.checkpoint import CHECKPOINT


def aside_name(run_id: str | None) -> str:
    """The name a run's checkpoint is kept under, beside `checkpoint.pt`, once another run took its place."""
    return f"checkpoint.{run_id or 'unknown'}.pt"


def owner(state: dict[str, Any]) -> str | None:
    """The MLflow run a checkpoint belongs to; None for one that does not say."""
    return state.get("run_id") or None


def step_of(state: dict[str, Any]) -> int | None:
    """The global optimizer step a checkpoint holds (the steps of its finished stages and of its
    current one); None for one that does not say."""
    steps = state.get("stage_steps")
    return int(sum(steps)) if isinstance(steps, (list, tuple)) and steps else None


def read(path: Path) -> dict[str, Any]:
    """A checkpoint with trained weights, read safely (`weights_only`); never moved or changed."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise NotItsWeights(f"cannot read checkpoint {path}: {(str(err).splitlines() or [''])[0][:200]}") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise NotItsWeights(f"{path} is not a vlm_sweeps checkpoint with trained weights (no 'model' in it)")
    return state


def problem(state: dict[str, Any], run_id: str, final_step: int) -> str | None:
    """Why `state` is not the final state of FINISHED run `run_id` (of `final_step` steps); None if it is."""
    found, step = owner(state), step_of(state)
    if found is None:
        return "holds the weights of an unknown run (it does not name its run: an older checkpoint)"
    if found != run_id:
        return f"holds the weights of run {found} (step {step}), not those of run {run_id}"
    if not final_step:
        return f"holds step {step} of run {run_id}, whose final step the run does not record"
    if step != final_step:
        return f"holds step {step} of run {run_id}, not its final step {final_step}"
    return None


def advice(run_id: str) -> str:
    return (f"evaluate run {run_id} on a copy of its own final checkpoint (`python -m vlm_sweeps.evaluate "
            f"eval.run_id={run_id} eval.checkpoint=PATH`), or delete the run (`mlflow runs delete --run-id {run_id}`) "
            "and re-run to train it again; tracking stores used from one paths.root share their checkpoints, so "
            "give each store its own paths.root")


def check(path: Path, state: dict[str, Any], run_id: str, final_step: int) -> None:
    """Raise NotItsWeights unless `state` (read from `path`) is FINISHED run `run_id`'s final state."""
    why = problem(state, run_id, final_step)
    if why is not None:
        raise NotItsWeights(f"run {run_id} is FINISHED but checkpoint {path} {why}; nothing was evaluated or "
                            f"logged: {advice(run_id)}")


def find(folders: list[Path], run_id: str, final_step: int) -> tuple[Path, dict[str, Any]] | None:
    """The own final checkpoint of FINISHED run `run_id` in the first of `folders` (the signature's
    checkpoint folders) that holds one: `checkpoint.pt`, else the `checkpoint.<run id>.pt` set aside
    beside it. None when no folder holds a checkpoint at all; NotItsWeights when the ones found
    belong to another run (or an unknown one) or hold another step."""
    folders = list(dict.fromkeys(Path(f) for f in folders))
    wrong: list[str] = []
    for folder in folders:
        for path in (folder / CHECKPOINT, folder / aside_name(run_id)):
            if not path.is_file():
                continue
            try:
                state = read(path)
            except NotItsWeights as err:  # unreadable: the other file may still be the run's own
                wrong.append(str(err))
                continue
            why = problem(state, run_id, final_step)
            if why is None:
                return path, state
            wrong.append(f"{path} {why}")
    if not wrong:
        return None
    aside = [folder / aside_name(run_id) for folder in folders]
    if not any(p.is_file() for p in aside):
        wrong.append(f"no {' or '.join(map(str, aside))} of its own is kept")
    raise NotItsWeights(f"run {run_id} is FINISHED but its own final checkpoint is not there: {'; '.join(wrong)}; "
                        f"nothing was evaluated or logged: {advice(run_id)}")


def load(model: torch.nn.Module, weights: dict[str, torch.Tensor], parts: set[str], source: str) -> None:
    """Put a checkpoint's trained weights (those of the `parts` its plan trains; frozen parts rebuild
    identically) into `model`, strictly: a key the model lacks, a trained key the checkpoint lacks
    or a shape that differs is refused (NotItsWeights, after `source`: what and whose the weights are),
    never loaded in part."""
    current = model.state_dict()
    unexpected = sorted(set(weights) - set(current))
    missing = sorted(k for k in current if k.split(".", 1)[0] in parts and k not in weights)
    shapes = [f"{k}: checkpoint {list(v.shape)} vs model {list(current[k].shape)}"
              for k, v in weights.items() if k in current and v.shape != current[k].shape]
    problems = [f"{len(v)} {what} (e.g. {', '.join(v[:3])})" for what, v in
                (("unexpected keys", unexpected), ("missing trained keys", missing), ("shape mismatches", shapes)) if v]
    if problems:
        raise NotItsWeights(f"{source}: {'; '.join(problems)}")
    model.load_state_dict({**current, **weights}, strict=True)
    model.eval()
