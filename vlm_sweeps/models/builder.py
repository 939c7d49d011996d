"""Components -> model: one builder that assembles the VLM and its image transforms from the typed
specs of components.py (a composed config is accepted too, and goes through `components` first)."""

from __future__ import annotations

from typing import Any

import torch

from vlm_sweeps.data.transforms import ImageTransform
from vlm_sweeps.models.llm import build_llm, enable_grad_checkpointing
from vlm_sweeps.models.projector import Projector
from vlm_sweeps.models.vision import build_backbone, fused_dim
from vlm_sweeps.models.vlm import VisionLanguageModel


def _model_spec(spec: Any):
    from vlm_sweeps import components

    return spec if isinstance(spec, components.ModelSpec) else components.model_spec(spec)


def build_vlm(spec: Any, tokenizer, dtype=None) -> VisionLanguageModel:
    """The VLM of a `components.ModelSpec` (or of a composed config). Tiny scale: every part
    randomly initialised at its shrunk shape. Full scale: every part from its local checkpoint
    (models/weights.py), the projector randomly initialised."""
    spec = _model_spec(spec)
    backbones = [build_backbone(b.kind, b.id, spec.encoder.image_size, spec.vision_shrink, spec.pretrained,
                                models_dir=spec.models_dir, layers=spec.encoder.layers)
                 for b in spec.encoder.backbones]
    llm = build_llm(spec.llm, tokenizer, spec.llm_shrink, spec.max_seq_len, spec.pretrained, dtype=dtype,
                    models_dir=spec.models_dir)
    if spec.grad_checkpointing:
        enable_grad_checkpointing(llm)
    p = spec.projector
    projector = Projector(p.kind, fused_dim(backbones), llm.config.hidden_size, grid=backbones[0].shape.grid,
                          tokens=p.tokens, factor=p.factor, depth=p.depth, fused=len(backbones) > 1)
    # frozen features in half precision (the feature cache's, features.py): bf16 for bf16 runs
    feature_dtype = torch.bfloat16 if spec.precision == "bf16" else torch.float16
    return VisionLanguageModel(backbones, projector, llm, pad_token_id=tokenizer.pad_token_id,
                               feature_dtype=feature_dtype)


def image_transforms(resize: Any, model: VisionLanguageModel) -> list[ImageTransform]:
    """One transform per backbone: the resize strategy (`components.resize`, or a config's
    `resize.name`) at its size, then the backbone's own normalisation."""
    name = resize if isinstance(resize, str) else resize.resize.name
    return [ImageTransform(name, bb.shape.image_size, bb.preprocessing.mean, bb.preprocessing.std,
                           bb.preprocessing.interpolation) for bb in model.encoder]
