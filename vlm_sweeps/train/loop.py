"""The training loop of one stage, top to bottom: batch -> forward -> backward -> clip -> step ->
schedule -> log. Batches come from the split-modality sampler, seeded, so a run is reproducible;
a batch larger than `micro_batch_size` is accumulated over micro-batches."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils.data import DataLoader

from vlm_sweeps import cpu_share, naming
from vlm_sweeps.data.instruct import InstructDataset, collate
from vlm_sweeps.data.samplers import batch_stream, steps_for
from vlm_sweeps.features import FrozenFeatures
from vlm_sweeps.models.vlm import IGNORE_INDEX
from vlm_sweeps.train import Diverged
from vlm_sweeps.train.checkpoint import set_rng_state
from vlm_sweeps.train.distributed import Distributed
from vlm_sweeps.train.stages import make_optimizer, make_scheduler, set_trainable

log = logging.getLogger(__name__)
LogFn = Callable[[dict[str, float], int], None]
CheckpointFn = Callable[[int, int, torch.optim.Optimizer, object], None]


@dataclass
class ProgressEvery:
    """How often a stage without a progress bar logs a progress line: every `seconds` or `steps`
    (optimizer steps), whichever comes first; 0 turns that measure off (both 0: no lines).
    `run.progress_every_s` and `run.progress_every_steps`, set for each job by the entry point."""

    seconds: float = 30.0
    steps: int = 0


PROGRESS_EVERY = ProgressEvery()


def configure_progress(seconds: float, steps: int) -> None:
    """Set how often progress lines are logged (vlm_sweeps/run.py, from `run.progress_every_*`)."""
    PROGRESS_EVERY.seconds, PROGRESS_EVERY.steps = float(seconds), int(steps)


class ProgressLines:
    """The progress of a stage as log lines, where no bar shows it (a log file: SLURM, the local
    launcher): one after the first step (training has started; how long that step took), then one
    every `every.seconds` or `every.steps`. Loss and samples/s are over the steps since the last
    line; the ETA is at this attempt's pace after its first step (which also pays for warm-up:
    loading, caches, allocations; a resumed stage counts only its own steps)."""

    def __init__(self, stage: str, total: int, start: int, every: ProgressEvery,
                 clock: Callable[[], float] = time.monotonic):
        self.stage, self.total, self.start = stage, total, start
        self.seconds, self.steps = every.seconds, every.steps
        self.clock = clock
        self.last = clock()
        self.began: float | None = None  # the end of this attempt's first step
        self.last_step = start
        self.loss, self.samples = 0.0, 0

    def update(self, step: int, loss: float, samples: int) -> str | None:
        """After optimizer step `step` (of this stage) of `samples` samples at `loss`: the line to
        log now, or None."""
        self.loss += loss * samples
        self.samples += samples
        if not (self.seconds > 0 or self.steps > 0):
            return None
        now = self.clock()
        head = (f"stage {self.stage}: step {step}/{self.total} ({100 * step / self.total:.0f}%), "
                f"loss {self.loss / max(self.samples, 1):.3f}, ")
        if self.began is None:  # the first step of this attempt: no pace to tell an ETA from yet
            line = head + f"first step in {now - self.last:.1f} s"
            self.began = now
        elif ((self.seconds > 0 and now - self.last >= self.seconds)
              or (self.steps > 0 and step - self.last_step >= self.steps)):
            eta = (self.total - step) * (now - self.began) / (step - self.start - 1)
            line = head + f"{self.samples / max(now - self.last, 1e-9):.1f} samples/s, ETA {duration(eta)}"
        else:
            return None
        self.last, self.last_step, self.loss, self.samples = now, step, 0.0, 0
        return line


def duration(seconds: float) -> str:
    """`42s`, `3m10s`, `2h05m`."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


@dataclass
class StageResult:
    name: str
    steps: int
    final_loss: float
    seconds: float
    samples: int


def _to_device(batch: dict, device: torch.device) -> dict:
    moved = dict(batch)
    for key in ("pixel_values", "features"):
        if batch.get(key) is not None:
            moved[key] = [t.to(device, non_blocking=True) for t in batch[key]]
    moved["input_ids"] = [t.to(device) for t in batch["input_ids"]]
    moved["labels"] = [t.to(device) for t in batch["labels"]]
    return moved


def _image_inputs(model, batch: dict, features: FrozenFeatures | None) -> dict:
    """The model's image arguments for a batch: pixels, or (feature cache) per-backbone features,
    the cached rows as read and the missing ones encoded now and stored for the next epoch or run."""
    if batch["pixel_values"] is None and batch.get("features") is None:
        return {"pixel_values": None}
    if features is None or "image_keys" not in batch:
        return {"pixel_values": batch["pixel_values"]}
    rows, found = batch["missing"], batch["features"]
    if rows:
        with torch.no_grad():  # the frozen encoder, outside DDP's wrapper (it has no gradient to sync)
            fresh = getattr(model, "module", model).backbone_features(batch["pixel_values"])
        features.store([batch["image_keys"][i] for i in rows], fresh)
        if found is None:  # nothing was cached: the rows are the batch, in order
            found = fresh
        else:
            index = torch.tensor(rows, device=found[0].device)
            found = [f.index_copy(0, index, new.to(f.dtype)) for f, new in zip(found, fresh)]
    return {"pixel_values": None, "image_features": found}


def train_stage(model, stage, hparams, dataset: InstructDataset, epochs: float, *, seed: int,
                device: torch.device, log_fn: LogFn, step_offset: int = 0, log_every: int = 10,
                progress: bool = False, autocast_dtype: torch.dtype | None = None,
                num_workers: int = 0, resume: dict | None = None, on_checkpoint: CheckpointFn | None = None,
                fail_at_step: int | None = None, dist: Distributed | None = None) -> StageResult:
    """Train the parts `stage.train` for `epochs` passes over `dataset`.

    `resume` (from a checkpoint of this stage) restores optimizer, scheduler, step and RNG, and the
    batch stream restarts at that step, so the result equals an uninterrupted run.
    `on_checkpoint(step, total, optimizer, scheduler)` is called after every optimizer step.
    `fail_at_step` (global step) raises, to test that failures are reported truthfully.
    `dist`: the job's processes (train/distributed.py); each trains its slice of every batch.
    """
    dist = dist or Distributed()
    set_trainable(model, list(stage.train))
    optimizer = make_optimizer(model, hparams.lr, hparams.weight_decay, dict(getattr(stage, "lr_scale", None) or {}))
    modalities = dataset.modalities()
    total = steps_for(modalities, hparams.batch_size, epochs)
    scheduler = make_scheduler(optimizer, total, hparams.warmup_ratio)
    start = 0
    if resume is not None:
        dist.load_optimizer_state(model, optimizer, resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        set_rng_state(resume["rng"])
        start = resume["stage_step"]
        log.info("stage %s: resuming at step %d of %d", stage.name, start, total)
    trainable = [p for p in model.parameters() if p.requires_grad]
    wrapped = dist.wrap(model)  # DDP over this stage's trainable parameters (else `model`)
    # Gradient accumulation: each optimizer step's batch is cut into micro-batches of
    # `micro_batch_size` (grouped by length), loaded one by one; with several processes, each
    # takes its slice of the batch first.
    micro = getattr(hparams, "micro_batch_size", None)
    batches = batch_stream(modalities, hparams.batch_size, seed, start_step=start,
                           lengths=dataset.lengths() if micro else None)
    plan = [dist.shard(next(batches), micro) for _ in range(total - start)]
    loader = DataLoader(dataset, batch_sampler=[m for step in plan for m in step.parts], collate_fn=collate,
                        num_workers=num_workers, pin_memory=device.type == "cuda")
    micro_iter = iter(loader)
    bar = _progress(total, f"{stage.name}", progress)
    bar.update(start)
    # no bar (not a terminal, or run.progress=false): progress lines in the log instead (rank 0's)
    lines = ProgressLines(stage.name, total, start, PROGRESS_EVERY) if bar.disable and dist.is_main else None
    window_loss, window_samples, window_start = 0.0, 0, time.perf_counter()
    started, samples, loss_value = time.perf_counter(), 0, float("nan")
    log.info("stage %s: %d steps of %d samples (micro-batches of %s), training %s", stage.name, total,
             hparams.batch_size, micro or hparams.batch_size, ",".join(stage.train))
    for step, shard in enumerate(plan, start=start + 1):
        if fail_at_step is not None and step_offset + step == fail_at_step:
            raise RuntimeError(f"injected failure at step {fail_at_step} (run.fail_at_step)")
        amp = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
        parts = dist.blank([next(micro_iter) for _ in shard.parts], shard)
        loss_value, _ = _forward_backward(wrapped, parts, device, amp, dist, dataset.features)
        n = shard.samples
        # clip the global norm of the trainable params only (frozen ones have no grad)
        grad_norm = float(dist.clip_grad_norm_(trainable, hparams.max_grad_norm))
        lr = scheduler.get_last_lr()[0]
        # a diverged step fails the run before it reaches the weights: nothing non-finite is
        # stepped into them, checkpointed, or evaluated and logged as a result
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
            raise Diverged(f"stage {stage.name}: non-finite {'loss' if not math.isfinite(loss_value) else 'gradient norm'}"
                           f" at step {step_offset + step} (loss {loss_value}, gradient norm {grad_norm}, lr {lr:.3g});"
                           f" the run failed and its last checkpoint (finite) is kept; lower the learning rate"
                           f" (scale.{stage.name}.lr) or check the data of this stage")
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        samples += n
        window_loss += loss_value * n
        window_samples += n
        cpu_share.rebalance()  # another job on this host started or ended: share its CPUs anew (every ~5 s)
        if step % log_every == 0 or step == total:
            elapsed = time.perf_counter() - window_start
            log_fn({naming.TRAIN_LOSS: window_loss / window_samples, naming.TRAIN_LR: lr,
                    naming.TRAIN_SAMPLES_PER_S: window_samples / max(elapsed, 1e-9)}, step_offset + step)
            window_loss, window_samples, window_start = 0.0, 0, time.perf_counter()
        if on_checkpoint is not None:
            on_checkpoint(step, total, optimizer, scheduler)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}")
        line = lines.update(step, loss_value, n) if lines is not None else None
        if line is not None:
            log.info("%s", line)
    bar.close()
    set_trainable(model, [])
    model.eval()
    return StageResult(stage.name, total, loss_value, time.perf_counter() - started, samples)



def _forward_backward(model, parts: list[dict], device: torch.device, amp, dist: Distributed | None = None,
                      features: FrozenFeatures | None = None) -> tuple[float, int]:
    """Gradients of one optimizer step's batch, given as CPU micro-batches; returns (batch loss, samples).

    One part: the LLM's mean loss over the batch's target tokens. Several: each part's summed
    token loss divided by the batch's target-token count, so the accumulated gradient and the
    returned loss equal those of the whole batch at once (not a mean of per-part means, which
    would over-weight short samples). Several processes: the count is the global batch's and the
    returned loss is summed over ranks (see train/distributed.py).
    """
    dist = dist or Distributed()
    if len(parts) == 1 and dist.world_size == 1:
        batch = _to_device(parts[0], device)
        with amp:
            loss = model(input_ids=batch["input_ids"], labels=batch["labels"],
                         **_image_inputs(model, batch, features)).loss
        loss.backward()
        return loss.item(), len(batch["input_ids"])
    targets = max(1, int(dist.all_sum(sum(int((lab != IGNORE_INDEX).sum()) for part in parts
                                             for lab in part["labels"]))))
    total, n = 0.0, 0
    for i, part in enumerate(parts):
        batch = _to_device(part, device)
        with dist.accumulating(model, last=i == len(parts) - 1):
            with amp:
                loss = model(input_ids=batch["input_ids"], labels=batch["labels"], num_items_in_batch=targets,
                             **_image_inputs(model, batch, features)).loss
            (loss * dist.grad_scale).backward()
        total += loss.item()
        n += len(batch["input_ids"])
    return dist.all_sum(total), n


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    # disable=None: bars only on a terminal, never spammed into log files (ProgressLines write those)
    return tqdm(total=total, desc=desc, disable=None if enabled else True, leave=False, dynamic_ncols=True)
