"""Our training step vs transformers' LlavaForConditionalGeneration on an identical tiny config and
batch (same weights via vlm_sweeps.export.to_llava, vision tower frozen in both, AdamW on projector +
LLM): forward, backward, clip, step. Prints samples/s of both and the ratio (ours / reference).

Usage: python benchmarks/train_step.py [--batch 16] [--repeats 15]   (CPU; about a minute)
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()

    from hydra import compose, initialize_config_dir

    from vlm_sweeps.config import register_configs
    from vlm_sweeps.data.instruct import InstructDataset, collate
    from vlm_sweeps.data.llava import load_llava
    from vlm_sweeps.export import to_llava
    from vlm_sweeps.job import setup
    from vlm_sweeps.models.vlm import IGNORE_INDEX
    from vlm_sweeps.train.stages import make_optimizer, set_trainable

    register_configs()
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = compose("config", overrides=["run.progress=false"])  # default: clip + gelu-mlp + llama2
    s = setup(cfg)
    records = [r for r in load_llava(s.files["finetune"]) if r.is_multimodal][: args.batch]
    ds = InstructDataset(records, s.tokenizer, s.fmt, s.transforms, cfg.scale.max_seq_len, s.model.num_patches)
    batch = collate([ds[i] for i in range(len(ds))])

    llava, tok = to_llava(s.model, s.tokenizer)
    n, image_id, pad = s.model.num_patches, llava.config.image_token_id, s.tokenizer.pad_token_id
    ids = [torch.cat([i[:1], torch.full((n,), image_id), i[1:]]) for i in batch["input_ids"]]
    labels = [torch.cat([l[:1], torch.full((n,), IGNORE_INDEX), l[1:]]) for l in batch["labels"]]
    length = max(len(i) for i in ids)
    ref_inputs = {
        "input_ids": torch.stack([torch.cat([i, i.new_full((length - len(i),), pad)]) for i in ids]),
        "attention_mask": torch.stack([torch.cat([torch.ones(len(i), dtype=torch.long),
                                                  torch.zeros(length - len(i), dtype=torch.long)]) for i in ids]),
        "labels": torch.stack([torch.cat([l, l.new_full((length - len(l),), IGNORE_INDEX)]) for l in labels]),
        "pixel_values": batch["pixel_values"][0],
    }

    set_trainable(s.model, ["projector", "llm"])
    ours_opt = make_optimizer(s.model, 1e-4, 0.1)
    llava.train()
    llava.model.vision_tower.requires_grad_(False).eval()
    ref_params = [p for p in llava.parameters() if p.requires_grad]
    ref_opt = torch.optim.AdamW(ref_params, lr=1e-4, weight_decay=0.1)

    def ours() -> float:
        loss = s.model(batch["pixel_values"], batch["input_ids"], batch["labels"]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in s.model.parameters() if p.requires_grad], 1.0)
        ours_opt.step()
        ours_opt.zero_grad(set_to_none=True)
        return loss.item()

    def reference() -> float:
        loss = llava(**ref_inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref_params, 1.0)
        ref_opt.step()
        ref_opt.zero_grad(set_to_none=True)
        return loss.item()

    with torch.no_grad():  # same weights, same batch: the two losses must agree before timing means anything
        a = s.model(batch["pixel_values"], batch["input_ids"], batch["labels"]).loss.item()
        b = llava(**ref_inputs).loss.item()
    assert abs(a - b) < 1e-4, (a, b)

    times = {"ours": [], "reference": []}
    for _ in range(3):  # warm-up
        ours(), reference()
    for _ in range(args.repeats):  # interleaved, so both see the same machine noise
        for name, fn in (("ours", ours), ("reference", reference)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    rate = {k: args.batch / statistics.median(v) for k, v in times.items()}
    print(f"batch {args.batch}, {n} patches, initial loss ours {a:.4f} / reference {b:.4f}")
    print(f"ours {rate['ours']:.1f} samples/s, LlavaForConditionalGeneration {rate['reference']:.1f} samples/s "
          f"(median of {args.repeats})")
    print(f"train step ratio ours/reference: {rate['ours'] / rate['reference']:.2f}")


if __name__ == "__main__":
    main()
