"""Config -> model: one builder that assembles the VLM and its image transforms."""

from __future__ import annotations

from typing import Any

import torch

from vlm_sweeps.data.transforms import ImageTransform
from vlm_sweeps.models.llm import build_llm, enable_grad_checkpointing
from vlm_sweeps.models.projector import Projector
from vlm_sweeps.models.vision import FAMILIES, build_backbone, fused_dim
from vlm_sweeps.models.vlm import VisionLanguageModel


def build_vlm(cfg: Any, tokenizer, dtype=None) -> VisionLanguageModel:
    """Tiny scale: every part randomly initialised at its shrunk shape. Full scale: every part
    from its local checkpoint (models/weights.py), the projector randomly initialised."""
    from vlm_sweeps.models.weights import models_dir_of

    scale = cfg.scale
    models_dir = models_dir_of(cfg.paths.models_dir) if scale.pretrained else None
    backbones = [build_backbone(b.kind, b.id, cfg.encoder.image_size, scale.vision_shrink, scale.pretrained,
                                models_dir=models_dir)
                 for b in cfg.encoder.backbones]
    llm = build_llm(cfg.llm.arch, cfg.llm.id, tokenizer, scale.llm_shrink, scale.max_seq_len, scale.pretrained,
                    dtype=dtype, models_dir=models_dir)
    if scale.grad_checkpointing:
        enable_grad_checkpointing(llm)
    projector = Projector(cfg.encoder.projector, fused_dim(backbones), llm.config.hidden_size)
    # frozen features in half precision (the feature cache's, features.py): bf16 for bf16 runs
    feature_dtype = torch.bfloat16 if scale.precision == "bf16" else torch.float16
    return VisionLanguageModel(backbones, projector, llm, pad_token_id=tokenizer.pad_token_id,
                               feature_dtype=feature_dtype)


def image_transforms(cfg: Any, model: VisionLanguageModel) -> list[ImageTransform]:
    """One transform per backbone: the resize strategy at its size, then its own normalisation."""
    return [ImageTransform(cfg.resize.name, bb.shape.image_size, FAMILIES[bb.kind].mean, FAMILIES[bb.kind].std,
                           FAMILIES[bb.kind].interpolation) for bb in model.encoder]
