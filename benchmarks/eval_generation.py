"""Greedy generation throughput: transformers' `generate` (what `Answerer.generate` calls) against
the hand-written KV-cache loop it replaced, each at batch size 1 and batched.

    python benchmarks/eval_generation.py [--examples 64] [--batch 16] [--repeats 5] [--impl both] [overrides ...]

Builds the default tiny model (`python -m vlm_sweeps.run`'s config, Hydra overrides accepted, e.g.
`llm=mistral`; untrained: speed does not depend on the weights; a small synthetic world, whose size
changes only the tokenizer's training corpus, not the model), takes `--examples` free-form
examples, half synth_vqa and half synth_ref (short answers and long box coordinates), each with
its benchmark's generation budget, and times every (implementation, batch size) pair over all of
them: one warm-up pass each, then `--repeats` rounds that run every pair once in turn (so that a
change of machine load hits all pairs alike), reporting the median. Checks that every pair gives
the same texts. `--impl loop` or `--impl generate` times one implementation only. The last line is
the headline: generate's throughput against the loop's at `--batch`.
"""

from __future__ import annotations

import argparse
import inspect
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


def hand_written_loop(answerer, examples, max_new_tokens: int) -> list[str]:
    """`Answerer.generate` before it called transformers' `generate` (harness version 1): prefill
    from inputs_embeds with left padding and explicit position ids, then one token at a time with
    the KV cache, a finished row fed EOS; stops when every row has emitted EOS."""
    import torch

    with torch.no_grad(), answerer._autocast():
        model, llm = answerer.model, answerer.model.llm
        image_embeds = answerer._image_embeds(examples)
        ids = [torch.tensor(answerer._prompt_ids(ex), device=answerer.device) for ex in examples]
        embeds, mask, pos, _ = model.build_inputs(image_embeds, ids, padding_side="left")
        out = llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
        cache_arg = "cache" if "cache" in inspect.signature(llm.forward).parameters else "past_key_values"
        eos = answerer.tokenizer.eos_token_id
        done = torch.zeros(len(examples), dtype=torch.bool, device=answerer.device)
        generated = []
        for _ in range(max_new_tokens):
            next_ids = out.logits[:, -1].argmax(-1)
            next_ids = torch.where(done, torch.full_like(next_ids, eos), next_ids)
            generated.append(next_ids)
            done |= next_ids == eos
            if bool(done.all()):
                break
            mask = torch.cat([mask, mask.new_ones(len(examples), 1)], dim=1)
            pos = pos[:, -1:] + 1
            out = llm(input_ids=next_ids[:, None], attention_mask=mask, position_ids=pos, use_cache=True,
                      **{cache_arg: getattr(out, cache_arg)})
    tokens = torch.stack(generated, dim=1).tolist() if generated else [[] for _ in examples]
    texts = []
    for row in tokens:
        row = row[: row.index(eos)] if eos in row else row
        texts.append(answerer.tokenizer.decode(row, skip_special_tokens=True).strip())
    return texts


def timed_rounds(runs: dict, repeats: int) -> tuple[dict, dict]:
    """({name: median seconds over `repeats` rounds}, {name: output}); one warm-up pass each first,
    then each round runs every entry once."""
    outputs = {name: fn() for name, fn in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}, outputs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--impl", choices=("both", "generate", "loop"), default="both",
                        help="generate: Answerer.generate (transformers' generate); loop: the hand-written loop")
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
        impls = {"generate": answerer.generate, "loop": lambda batch, n: hand_written_loop(answerer, batch, n)}
        chosen = list(impls) if args.impl == "both" else [args.impl]

        def run(impl, batch: int):
            return lambda: [t for part, budget in parts for b in range(0, len(part), batch)
                            for t in impls[impl](part[b:b + batch], budget)]

        runs = {(impl, batch): run(impl, batch) for impl in chosen for batch in (1, args.batch)}
        print(f"model: encoder={cfg.encoder.name} llm={cfg.llm.name} scale={cfg.scale.name} on {s.device} "
              f"({torch.get_num_threads()} threads); {len(examples)} examples "
              f"({', '.join(f'{len(p)} with up to {b} new tokens' for p, b in parts)})")
        seconds, outputs = timed_rounds(runs, args.repeats)
    first = next(iter(outputs))
    for key, texts in outputs.items():
        if texts != outputs[first]:
            diff = sum(a != b for a, b in zip(texts, outputs[first]))
            print(f"FAIL: {key[0]} at batch {key[1]} changed {diff} of {len(texts)} answers against "
                  f"{first[0]} at batch {first[1]}")
            return 1
    print(f"identical texts for {', '.join(f'{i} at batch {b}' for i, b in outputs)} "
          f"({sum(map(bool, outputs[first]))} of {len(examples)} non-empty)")
    for (impl, batch), sec in seconds.items():
        print(f"{impl:>8} batch {batch:>3}: {len(examples) / sec:8.1f} examples/s "
              f"(median of {args.repeats}: {sec:.3f} s)")
    for impl in chosen:
        print(f"{impl}: speed-up batch {args.batch} vs batch 1: "
              f"{seconds[(impl, 1)] / seconds[(impl, args.batch)]:.2f}x")
    if len(chosen) == 2:
        for batch in (1, args.batch):
            ratio = seconds[("loop", batch)] / seconds[("generate", batch)]
            print(f"generate vs hand-written loop at batch {batch}: {ratio:.2f}x throughput "
                  f"({len(examples) / seconds[('generate', batch)]:.1f} vs "
                  f"{len(examples) / seconds[('loop', batch)]:.1f} examples/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
