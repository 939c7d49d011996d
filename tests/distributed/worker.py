"""One rank of the 2-process test jobs, started by `torch.distributed.run` (torchrun's variables
are how the processes find each other). Runs the jobs of a JSON plan one after the other through
`run_job`, as the CLI does, and writes what this rank saw to `<out>/rank<R>.json`: each job's
result (or error), how often this rank wrote a checkpoint or opened the tracking store, and the
gradient norm of every optimizer step.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/distributed/worker.py PLAN OUT
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import torch


def main(plan_file: str, out: str) -> None:
    from tests.conftest import compose
    from vlm_sweeps import tracking_process
    from vlm_sweeps.job import run_job
    from vlm_sweeps.train import checkpoint
    from vlm_sweeps.train.distributed import Distributed

    logging.basicConfig(level=os.environ.get("VLM_TEST_LOG", "WARNING"),
                        format=f"[rank{os.environ['RANK']}] %(name)s %(message)s")
    torch.set_num_threads(1)
    counts, norms = {"checkpoint_writes": 0, "tracker_opens": 0}, []
    save, open_tracker, clip = checkpoint.atomic_save, tracking_process.open_tracker, Distributed.clip_grad_norm_

    def counted_save(*args, **kwargs):
        counts["checkpoint_writes"] += 1
        return save(*args, **kwargs)

    def counted_open(*args, **kwargs):
        counts["tracker_opens"] += 1
        return open_tracker(*args, **kwargs)

    def recorded_clip(self, params, max_norm):
        norm = clip(self, params, max_norm)
        norms.append(float(norm))
        return norm

    checkpoint.atomic_save, tracking_process.open_tracker = counted_save, counted_open
    Distributed.clip_grad_norm_ = recorded_clip
    plan = json.loads(Path(plan_file).read_text())
    seen, grad_norms = [], {}
    for job in plan["jobs"]:
        counts.update(checkpoint_writes=0, tracker_opens=0)
        norms.clear()
        entry = {"name": job["name"]}
        try:
            result = run_job(compose(job["overrides"], root=Path(plan["root"])))
            entry.update(signature=result.signature, run_id=result.run_id, metrics=result.metrics,
                         skipped=result.skipped)
        except Exception as err:  # an expected failure (fault injection) is part of the plan
            entry["error"] = f"{type(err).__name__}: {err}"
        entry.update(counts)
        seen.append(entry)
        grad_norms[job["name"]] = list(norms)
    Path(out, f"rank{os.environ['RANK']}.json").write_text(json.dumps({"jobs": seen, "grad_norms": grad_norms}))


if __name__ == "__main__":
    main(*sys.argv[1:])
