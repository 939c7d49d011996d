"""Our training step vs transformers' LlavaForConditionalGeneration on an identical config and batch
(same weights via vlm_sweeps.export.to_llava, vision tower frozen in both, AdamW on projector + LLM):
forward, backward, clip, step, timed interleaved so both see the same machine noise.

- Always: the default tiny config (CLIP + gelu-mlp + Llama-2 proportions), samples/s of both.
- On a GPU (`--device cuda`, the default when one is present) also a 1B-scale config in bf16
  autocast: the real CLIP ViT-L/14 @ 336 tower (576 patches, frozen) and a Llama-2-shaped LLM of
  width 2048 and 16 layers (0.8B), trained; tokens/s and MFU (model FLOPs per second over the
  GPU's dense bf16 peak) of both.

Usage: python benchmarks/train_step.py [--batch 16] [--repeats 15] [--device auto|cpu|cuda] [--big-batch 8]
(CPU: about a minute). The last line is the headline: the tiny samples/s ratio ours / reference.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path

import torch

# dense bf16 tensor-core peaks (no sparsity), by device-name fragment
PEAK_BF16 = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}
BIG = ["llm=llama2", "encoder=clip", "scale.vision_shrink.width=1", "scale.vision_shrink.depth=1",
       "scale.vision_shrink.heads=1", "scale.vision_shrink.resolution=1", "scale.vision_shrink.patch=1",
       "scale.llm_shrink.width=2", "scale.llm_shrink.depth=2", "scale.llm_shrink.heads=2",
       "scale.max_seq_len=1024", "scale.precision=bf16"]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from vlm_sweeps.config import register_configs

    register_configs()
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(str(conf), version_base="1.3"):
        return hydra_compose("config", overrides=["run.progress=false", *overrides])


def compare(overrides: list[str], device: str, batch_size: int, repeats: int) -> dict:
    """Both steps on one config and batch; returns rates, the step's tokens and the models' FLOPs."""
    from vlm_sweeps.data.instruct import InstructDataset, collate
    from vlm_sweeps.data.llava import load_llava
    from vlm_sweeps.export import to_llava
    from vlm_sweeps.job import setup
    from vlm_sweeps.models.vlm import IGNORE_INDEX
    from vlm_sweeps.train.loop import _to_device
    from vlm_sweeps.train.stages import make_optimizer, set_trainable

    cfg = compose([*overrides, f"run.device={device}"])
    s = setup(cfg)
    records = [r for r in load_llava(s.files["finetune"]) if r.is_multimodal][:batch_size]
    ds = InstructDataset(records, s.tokenizer, s.fmt, s.transforms, cfg.scale.max_seq_len, s.model.num_patches)
    batch = _to_device(collate([ds[i] for i in range(len(ds))]), s.device)

    llava, _ = to_llava(s.model, s.tokenizer)
    llava = llava.to(s.device)
    n, image_id, pad = s.model.num_patches, llava.config.image_token_id, s.tokenizer.pad_token_id
    ids = [torch.cat([i[:1], torch.full((n,), image_id, device=s.device), i[1:]]) for i in batch["input_ids"]]
    labels = [torch.cat([l[:1], torch.full((n,), IGNORE_INDEX, device=s.device), l[1:]]) for l in batch["labels"]]
    length = max(len(i) for i in ids)
    ref_inputs = {
        "input_ids": torch.stack([torch.cat([i, i.new_full((length - len(i),), pad)]) for i in ids]),
        "attention_mask": torch.stack([(torch.arange(length, device=s.device) < len(i)).long() for i in ids]),
        "labels": torch.stack([torch.cat([l, l.new_full((length - len(l),), IGNORE_INDEX)]) for l in labels]),
        "pixel_values": batch["pixel_values"][0],
    }
    tokens = sum(len(i) for i in ids)

    set_trainable(s.model, ["projector", "llm"])
    ours_params = [p for p in s.model.parameters() if p.requires_grad]
    ours_opt = make_optimizer(s.model, 1e-4, 0.1)
    llava.train()
    llava.model.vision_tower.requires_grad_(False).eval()
    ref_params = [p for p in llava.parameters() if p.requires_grad]
    ref_opt = torch.optim.AdamW(ref_params, lr=1e-4, weight_decay=0.1)
    amp = (lambda: torch.autocast(s.device.type, dtype=s.autocast)) if s.autocast else contextlib.nullcontext

    def ours() -> float:
        with amp():
            loss = s.model(batch["pixel_values"], batch["input_ids"], batch["labels"]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ours_params, 1.0)
        ours_opt.step()
        ours_opt.zero_grad(set_to_none=True)
        return loss.item()  # .item() synchronises a GPU: the step is complete when timed

    def reference() -> float:
        with amp():
            loss = llava(**ref_inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref_params, 1.0)
        ref_opt.step()
        ref_opt.zero_grad(set_to_none=True)
        return loss.item()

    with torch.no_grad(), amp():  # same weights, same batch: the losses must agree before timing means anything
        a = s.model(batch["pixel_values"], batch["input_ids"], batch["labels"]).loss.item()
        b = llava(**ref_inputs).loss.item()
    assert abs(a - b) < (1e-4 if s.autocast is None else 2e-2), (a, b)

    times = {"ours": [], "reference": []}
    for _ in range(3):  # warm-up
        ours(), reference()
    for _ in range(repeats):
        for name, fn in (("ours", ours), ("reference", reference)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    seconds = {k: statistics.median(v) for k, v in times.items()}

    # model FLOPs of one step: 6 per trained LLM/projector parameter and token (forward + backward),
    # 2 per frozen vision parameter and patch (forward only), attention scores and values
    llm_cfg = s.model.llm.config
    trained = sum(p.numel() for p in ours_params) - s.model.llm.get_input_embeddings().weight.numel()
    vision = sum(p.numel() for p in s.model.encoder.parameters())
    attention = 12 * llm_cfg.num_hidden_layers * llm_cfg.hidden_size * sum(len(i) ** 2 for i in ids)
    flops = 6 * trained * tokens + 2 * vision * n * len(ids) + attention
    del llava, ref_opt, ours_opt
    return {"losses": (a, b), "seconds": seconds, "samples": len(ids), "tokens": tokens, "flops": flops,
            "patches": n, "trained_params": trained, "device": s.device}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--big-batch", type=int, default=8, help="batch of the 1B-scale GPU comparison")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--extra", nargs="*", default=[], metavar="OVERRIDE",
                    help="overrides of the tiny comparison's config (e.g. a smaller synthetic world for a smoke run)")
    args = ap.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device

    if device == "cuda":
        big = compare(BIG, device, args.big_batch, args.repeats)
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
        print(f"1B-scale, bf16 autocast on {name}: {big['trained_params'] / 1e9:.2f}B trained parameters, "
              f"{big['patches']} patches, batch {big['samples']}, {big['tokens']} tokens per step, "
              f"initial loss ours {big['losses'][0]:.4f} / reference {big['losses'][1]:.4f}")
        for who in ("ours", "reference"):
            rate = big["tokens"] / big["seconds"][who]
            mfu = f"MFU {big['flops'] / big['seconds'][who] / peak:.3f}" if peak else "MFU n/a (unknown peak)"
            print(f"  {who:>9}: {rate:,.0f} tokens/s, {big['flops'] / big['seconds'][who] / 1e12:.1f} TFLOP/s, {mfu}")
        print(f"  1B-scale ratio ours/reference: {big['seconds']['reference'] / big['seconds']['ours']:.2f}")
        torch.cuda.empty_cache()

    tiny = compare(list(args.extra), device, args.batch, args.repeats)
    rate = {k: tiny["samples"] / v for k, v in tiny["seconds"].items()}
    print(f"tiny on {device}: batch {tiny['samples']}, {tiny['patches']} patches, initial loss ours "
          f"{tiny['losses'][0]:.4f} / reference {tiny['losses'][1]:.4f}")
    print(f"ours {rate['ours']:.1f} samples/s, LlavaForConditionalGeneration {rate['reference']:.1f} samples/s "
          f"(median of {args.repeats})")
    print(f"train step ratio ours/reference: {rate['ours'] / rate['reference']:.2f}")


if __name__ == "__main__":
    main()
