"""`run.dry_run=true`: what a job would cost, from its config alone (no weights, data or GPU needed).

Parameters: the VLM is built on PyTorch's meta device (shapes, no storage) through the same
builders as a job, at the scale's shapes: at `scale=full` the paper's real architectures (family
facts in models/vision.py and models/llm.py; vocabulary = the public tokenizer + our pad token,
padded to a multiple of 64; the unused last vision block already removed).

Memory, per stage, on one device without sharding (a rough guide, not a measurement):
- weights 4 B x every param (fp32 master weights; autocast computes in bf16), gradients 4 B and
  AdamW states 8 B (exp_avg, exp_avg_sq) x trainable params. The "pure bf16" line stores all
  three in bf16 (2 / 2 / 4 B). Sharding over G GPUs (FSDP full-shard, the anchor's finetune
  setting) divides these states by G.
- activations of one micro-batch of b samples at the full sequence budget T = max_seq_len
  (T includes the image patches): LLM with gradient checkpointing keeps each layer's input
  (4 B x b x T x H) plus one layer being recomputed (~34 B x b x T x H, Korthikanti et al. 2022,
  without the attention-score term thanks to SDPA); without checkpointing every layer keeps its
  34 B x b x T x H. Logits: b x T x V x 10 B (bf16 logits, fp32 copy for the loss, its gradient).
  A trained vision encoder keeps 34 B x b x N x D per block.
Step time: training FLOPs of one global batch / (GPUs x A100 bf16 dense peak 312 TFLOP/s x an
assumed model-FLOPs utilisation of 0.40).
- forward FLOPs per token of a part = 2 x its matmul params (the LLM's input embedding is a lookup
  and does not count) + attention (LLM: 2 x layers x T x H, causal; ViT: 4 x blocks x N x D);
- backward = 1x forward for activation gradients in every part the gradient crosses (the LLM
  always: the projector trains in every stage) + 1x forward for the weight gradients of trained
  parts; gradient checkpointing adds one more LLM forward (the recompute);
- tokens per sample = image patches + an assumed text length (ASSUMED_TEXT_TOKENS).
Checked against the paper: single-stage CLIP-336 + Llama-2 7B on the 665K mix comes out at about
8.8 h on 8 A100s; the paper reports under 9 h for a controlled 7B run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

A100_BF16_PEAK = 312e12  # FLOP/s, dense
ASSUMED_MFU = 0.40
GPUS = 8  # the paper's node
# Average text tokens per sample (prompt + answers), assumed: captions are short; LLaVA v1.5
# instruction records are multi-turn.
ASSUMED_TEXT_TOKENS = {"align": 80, "finetune": 300}
# Records of the public files (used when the file is not on this machine).
PUBLISHED_RECORDS = {"chat.json": 558_128, "blip_laion_cc_sbu_558k.json": 558_128,
                     "llava_v1_5_mix665k.json": 665_298, "llava_v1_5_lrv_mix1008k.json": 1_008_000,
                     "llava_v1_5_lvis4v_mix888k.json": 888_000, "llava_v1_5_lvis4v_lrv_mix1231k.json": 1_231_000,
                     "llava_v1_5_stripped625k.json": 625_000}


class _VocabSize:
    """Stands in for a tokenizer where only its size and pad id matter."""

    def __init__(self, size: int):
        self.size, self.pad_token_id = size, size - 1

    def __len__(self) -> int:
        return self.size


def meta_model(cfg: Any):
    """The job's VLM on the meta device: real shapes, no memory, no weights needed."""
    from dataclasses import replace

    from vlm_sweeps import components
    from vlm_sweeps.models.builder import build_vlm

    spec = components.model_spec(cfg)
    if spec.pretrained:  # the real vocabulary: the public tokenizer's size + our pad token
        vocab = (spec.llm.tokenizer_size or int(spec.llm.config.get("vocab_size", 32000))) + 1
    else:
        vocab = cfg.scale.vocab_size
    # shapes of the public checkpoints: random weights of the declared architecture, nothing loaded
    spec = replace(spec, pretrained=False, grad_checkpointing=False, models_dir=None)
    with torch.device("meta"):
        return build_vlm(spec, _VocabSize(vocab))


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _records(cfg: Any, stage: str) -> tuple[int, str]:
    if cfg.data.source == "synthetic":
        n = cfg.data.synthetic.n_align if stage == "align" else cfg.data.synthetic.n_finetune
        return n, "synthetic settings"
    rel = cfg.data.align_file if stage == "align" else cfg.data.finetune_file
    path = Path(cfg.paths.data_root) / str(rel)
    if path.is_file():
        import json

        return len(json.loads(path.read_text())), str(path)
    return PUBLISHED_RECORDS.get(Path(str(rel)).name, 0), "published size"


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:8.1f} GiB"


def _m(n: int) -> str:
    return f"{n / 1e6:10,.1f}M"


def stage_estimate(cfg: Any, model, stage) -> dict[str, float]:
    """Trainable params, memory (bytes) and FLOPs of one global batch of `stage`."""
    hp = cfg.scale[stage.name]
    trained = set(stage.train)
    parts = model.parts()
    total = _count(model)
    trainable = sum(_count(parts[p]) for p in trained)
    llm = model.llm
    c = llm.config
    hidden, layers, vocab = c.hidden_size, c.num_hidden_layers, llm.get_input_embeddings().num_embeddings
    micro = hp.micro_batch_size or hp.batch_size
    seq = cfg.scale.max_seq_len
    ckpt = bool(cfg.scale.grad_checkpointing)  # also in a frozen LLM (models/llm.py checkpoint_while_frozen)
    act_llm = (layers * 4 + 34) * micro * seq * hidden if ckpt else layers * 34 * micro * seq * hidden
    act_logits = micro * seq * vocab * 10
    act_vision = 0
    if "encoder" in trained:
        act_vision = sum(34 * micro * (bb.num_patches + bb.num_prefix_tokens) * bb.shape.width * bb.kept_blocks
                         for bb in model.encoder)
    mem = {"weights": 4 * total, "grads": 4 * trainable, "adamw": 8 * trainable,
           "activations": act_llm + act_logits + act_vision}
    # FLOPs per sample
    tokens = model.num_patches + ASSUMED_TEXT_TOKENS[stage.name]
    llm_fwd = tokens * (2 * (_count(llm) - _count(llm.get_input_embeddings())) + 2 * layers * tokens * hidden)
    llm_mult = 1 + 1 + (1 if "llm" in trained else 0) + (1 if ckpt else 0)
    vis_fwd = sum((bb.num_patches + bb.num_prefix_tokens) * (2 * _count(bb) + 4 * bb.kept_blocks
                  * (bb.num_patches + bb.num_prefix_tokens) * bb.shape.width) for bb in model.encoder)
    vis_mult = 3 if "encoder" in trained else 1
    # the connector reads every patch (a compressing one outputs fewer tokens: `tokens` above)
    proj = model.encoder[0].num_patches * 2 * _count(model.projector) * 3
    flops = hp.batch_size * (llm_fwd * llm_mult + vis_fwd * vis_mult + proj)
    return {"trainable": trainable, "total": total, "micro": micro, "ckpt": ckpt, "tokens": tokens,
            "flops": flops, **mem}


def report(cfg: Any) -> str:
    model = meta_model(cfg)
    parts = model.parts()
    lines = [f"dry run: encoder={cfg.encoder.name} resize={cfg.resize.name} optimization={cfg.optimization.name} "
             f"llm={cfg.llm.name} data={cfg.data.name} epochs={cfg.epochs} scale={cfg.scale.name}",
             "  (built on the meta device from the configs: nothing loaded, nothing trained, nothing tracked)",
             "", "parameters"]
    for b, bb in zip(cfg.encoder.backbones, model.encoder):
        lines.append(f"  encoder    {b.kind:<8} {b.id:<45} {_m(_count(bb))}  ({bb.num_patches} patches of "
                     f"{bb.embed_dim}, {bb.kept_blocks} of {bb.shape.depth} blocks used)")
    lines.append(f"  projector  {model.projector.kind + ' -> ' + str(model.num_visual_tokens) + ' visual tokens':<54} {_m(_count(parts['projector']))}")
    vocab = model.llm.get_input_embeddings().num_embeddings
    lines.append(f"  llm        {cfg.llm.model_type:<8} {cfg.llm.id:<45} {_m(_count(parts['llm']))}  (vocabulary {vocab}, "
                 f"embeddings {_m(_count(model.llm.get_input_embeddings())).strip()})")
    lines.append(f"  total      {'':<54} {_m(_count(model))}")
    hours_total = 0.0
    for stage in cfg.optimization.stages:
        est = stage_estimate(cfg, model, stage)
        hp = cfg.scale[stage.name]
        records, source = _records(cfg, stage.name)
        epochs = cfg.epochs if stage.name == "finetune" else cfg.scale.align_epochs
        steps = max(1, math.ceil(records * epochs / hp.batch_size))
        states = est["weights"] + est["grads"] + est["adamw"]
        bf16_states = states / 2
        step_s = est["flops"] / (A100_BF16_PEAK * ASSUMED_MFU)
        hours_total += steps * step_s / GPUS / 3600
        lines += ["", f"stage {stage.name}: trains {', '.join(stage.train)}: {_m(est['trainable']).strip()} trainable of "
                  f"{_m(est['total']).strip()} ({100 * est['trainable'] / est['total']:.1f}%)",
                  f"  batch {hp.batch_size} = {math.ceil(hp.batch_size / est['micro'])} micro-batches of {est['micro']}, "
                  f"lr {hp.lr:g}, {records:,} records ({source}) x {epochs:g} epochs = {steps:,} steps",
                  "  memory, one device, no sharding:",
                  f"    weights fp32        {_gb(est['weights'])}",
                  f"    gradients fp32      {_gb(est['grads'])}",
                  f"    AdamW states fp32   {_gb(est['adamw'])}",
                  f"    activations         {_gb(est['activations'])}  (micro-batch {est['micro']} x "
                  f"{cfg.scale.max_seq_len} tokens, gradient checkpointing {'on' if est['ckpt'] else 'off'})",
                  f"    total               {_gb(states + est['activations'])}",
                  f"    pure bf16 states    {_gb(bf16_states)}  (+ activations {_gb(est['activations']).strip()})",
                  f"    sharded over {GPUS} GPUs  {_gb(states / GPUS + est['activations'])}  per GPU (FSDP full-shard of "
                  "the fp32 states + one micro-batch of activations)",
                  f"  step time: {est['flops'] / 1e15:.1f} PFLOP per step ({est['tokens']} tokens/sample assumed: "
                  f"{model.num_visual_tokens} visual tokens + {ASSUMED_TEXT_TOKENS[stage.name]} text)",
                  f"    1 x A100: {step_s:8.1f} s/step   {GPUS} x A100: {step_s / GPUS:6.1f} s/step -> "
                  f"{steps * step_s / GPUS / 3600:.1f} h for the stage",
                  ]
    lines += ["", f"estimated training time on {GPUS} x A100: {hours_total:.1f} h "
              f"(bf16 peak {A100_BF16_PEAK / 1e12:.0f} TFLOP/s x MFU {ASSUMED_MFU}; formulas in vlm_sweeps/dryrun.py)"]
    return "\n".join(lines)
