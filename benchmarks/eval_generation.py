"""How much faster is batched greedy generation than batch size 1 (what the anchor evaluates with)?

    python benchmarks/eval_generation.py [--examples 64] [--batch 16] [--repeats 3] [overrides ...]

Builds the default tiny model (`python -m vlm_sweeps.run`'s config, Hydra overrides accepted, e.g.
`llm=mistral`; untrained: speed does not depend on the weights; a small synthetic world, whose size
changes only the tokenizer's training corpus, not the model), takes `--examples` free-form
examples, half synth_vqa and half synth_ref (short answers and long box coordinates), and times
`Answerer.generate` over all of them at batch size 1 and at `--batch` (one warm-up pass, then the
median of `--repeats`). Checks the texts are identical and prints examples/s for both; the last
line is the headline: the speed-up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from vlm_sweeps.config import register_configs

    register_configs()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def timed(fn, repeats: int) -> tuple[float, list[str]]:
    """(median seconds over `repeats` after one warm-up, the output)."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", default=None, help="paths.root (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the default job")
    args = parser.parse_args()

    import torch

    from vlm_sweeps import job
    from vlm_sweeps.eval.harness import Answerer
    from vlm_sweeps.eval.registry import LoadContext, get

    with tempfile.TemporaryDirectory(prefix="eval_generation_") as tmp:
        half = args.examples // 2
        cfg = compose([f"paths.root={args.root or tmp}", f"data.synthetic.n_eval={max(half, 1)}",
                       "data.synthetic.n_align=64", "data.synthetic.n_finetune=256", "run.progress=false",
                       "benchmarks.suite=[synth_vqa,synth_ref]", *args.overrides])
        s = job.setup(cfg)
        s.model.eval()
        # each benchmark with its own generation budget, as in an evaluation
        parts = [(get(name).load(LoadContext(s.world, n, cfg.seed)), get(name).max_new_tokens)
                 for name, n in (("synth_vqa", half), ("synth_ref", args.examples - half))]
        examples = [ex for part, _ in parts for ex in part]
        answerer = Answerer(s.model, s.tokenizer, s.fmt, s.transforms, s.device, autocast_dtype=s.autocast)

        def run(batch: int):
            return lambda: [t for part, budget in parts for b in range(0, len(part), batch)
                            for t in answerer.generate(part[b:b + batch], budget)]

        print(f"model: encoder={cfg.encoder.name} llm={cfg.llm.name} scale={cfg.scale.name} on {s.device} "
              f"({torch.get_num_threads()} threads); {len(examples)} examples "
              f"({', '.join(f'{len(p)} with up to {b} new tokens' for p, b in parts)})")
        single_s, single = timed(run(1), args.repeats)
        batched_s, batched = timed(run(args.batch), args.repeats)
    if batched != single:
        diff = sum(a != b for a, b in zip(batched, single))
        print(f"FAIL: batch {args.batch} changed {diff} of {len(single)} answers")
        return 1
    print(f"identical texts at batch 1 and batch {args.batch} ({sum(map(bool, single))} non-empty)")
    for batch, seconds in ((1, single_s), (args.batch, batched_s)):
        print(f"batch {batch:>3}: {len(examples) / seconds:8.1f} examples/s (median of {args.repeats}: {seconds:.3f} s)")
    print(f"speed-up batch {args.batch} vs batch 1: {single_s / batched_s:.2f}x "
          f"({len(examples) / batched_s:.1f} vs {len(examples) / single_s:.1f} examples/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
