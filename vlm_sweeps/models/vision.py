"""Vision backbones: each family's facts, and builders that return patch features of the
second-to-last transformer block (patch tokens only, no CLS or register tokens).

CLIP and SigLIP are built through transformers (the classes LLaVA uses, so exports load in
`LlavaForConditionalGeneration`); DINOv2 (with registers) and the ImageNet ViT through timm (the
anchor's ids). At `scale=tiny` the same classes are built with the family's real proportions
divided by `scale.vision_shrink` and random weights; at `scale=full` the public weights load.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class BackboneFamily:
    """Facts of one vision family at its real size (the ViT-L/14 or SO400M/14 of the paper)."""

    library: str  # transformers | timm
    width: int
    depth: int
    heads: int
    mlp: int
    patch: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    timm_arch: str | None = None  # timm architecture name (weights-free) for tiny builds

    def fill_rgb(self) -> tuple[int, int, int]:
        """Letterbox fill: the normalisation mean in 0-255, e.g. (122, 116, 104) for CLIP."""
        return tuple(int(m * 255) for m in self.mean)  # type: ignore[return-value]


FAMILIES: dict[str, BackboneFamily] = {
    "clip": BackboneFamily("transformers", 1024, 24, 16, 4096, 14, OPENAI_MEAN, OPENAI_STD),
    "siglip": BackboneFamily("transformers", 1152, 27, 16, 4304, 14, HALF, HALF),
    "dinov2": BackboneFamily("timm", 1024, 24, 16, 4096, 14, IMAGENET_MEAN, IMAGENET_STD,
                             timm_arch="vit_large_patch14_reg4_dinov2"),
    "in1k": BackboneFamily("timm", 1024, 24, 16, 4096, 16, HALF, HALF,
                           timm_arch="vit_large_patch16_224"),
}


@dataclass(frozen=True)
class BackboneShape:
    """The concrete shape one backbone is built with (after the scale's shrink)."""

    width: int
    depth: int
    heads: int
    mlp: int
    patch: int
    image_size: int

    @property
    def grid(self) -> int:
        return self.image_size // self.patch


def backbone_shape(family: BackboneFamily, image_size: int, shrink) -> BackboneShape:
    """Shrink a family by the scale's divisors keeping head_dim * heads == width and a whole
    patch grid. With divisors of 1 this is the real model at `image_size`."""
    heads = max(1, family.heads // shrink.heads)
    head_dim = max(1, (family.width // family.heads) * shrink.heads // shrink.width)
    patch = max(1, family.patch // shrink.patch)
    grid = max(1, round(image_size / shrink.resolution / patch))
    return BackboneShape(
        width=heads * head_dim,
        depth=max(2, round(family.depth / shrink.depth)),
        heads=heads,
        mlp=max(1, family.mlp // shrink.width),
        patch=patch,
        image_size=grid * patch,
    )


class VisionBackbone(nn.Module):
    """One tower: pixels [B, 3, S, S] -> patch features of the second-to-last block [B, N, D].

    The last block is removed at build time: its output is never used, so it is never computed.
    """

    def __init__(self, kind: str, model: nn.Module, shape: BackboneShape, num_prefix_tokens: int):
        super().__init__()
        self.kind = kind
        self.family = FAMILIES[kind]
        self.model = model
        self.shape = shape
        self.num_prefix_tokens = num_prefix_tokens

    @property
    def embed_dim(self) -> int:
        return self.shape.width

    @property
    def num_patches(self) -> int:
        return self.shape.grid ** 2

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.family.library == "timm":
            # forward_intermediates strips prefix (CLS + register) tokens for NLC output.
            (features,) = self.model.forward_intermediates(
                pixel_values, indices=[len(self.model.blocks) - 1], intermediates_only=True,
                output_fmt="NLC", norm=False)
        else:
            out = self.model(pixel_values=pixel_values, output_hidden_states=True)
            # hidden_states[-1] of the truncated tower = block L-1 output, before any post-norm.
            features = out.hidden_states[-1][:, self.num_prefix_tokens:]
        assert features.shape[1] == self.num_patches, (features.shape, self.num_patches)
        return features  # [B, N, D]


def _hf_tower(kind: str, shape: BackboneShape, pretrained_id: str | None) -> nn.Module:
    from transformers import CLIPVisionConfig, CLIPVisionModel, SiglipVisionConfig, SiglipVisionModel

    model_cls, config_cls = {"clip": (CLIPVisionModel, CLIPVisionConfig),
                             "siglip": (SiglipVisionModel, SiglipVisionConfig)}[kind]
    if pretrained_id is not None:
        model = model_cls.from_pretrained(pretrained_id, attn_implementation="sdpa")
    else:
        extra = {"hidden_act": "quick_gelu"} if kind == "clip" else {"vision_use_head": False}
        config = config_cls(hidden_size=shape.width, intermediate_size=shape.mlp,
                            num_hidden_layers=shape.depth, num_attention_heads=shape.heads,
                            image_size=shape.image_size, patch_size=shape.patch, **extra)
        config._attn_implementation = "sdpa"
        model = model_cls(config)
    # Drop the last block: features come from the second-to-last one.
    tower = getattr(model, "vision_model", model)  # transformers 4 nests the tower, 5 does not
    tower.encoder.layers = tower.encoder.layers[:-1]
    if getattr(tower, "head", None) is not None:
        tower.head = None  # SigLIP's MAP pooling head is unused
        tower.use_head = False
    return model


def _timm_tower(family: BackboneFamily, shape: BackboneShape, pretrained_id: str | None) -> nn.Module:
    import timm

    if pretrained_id is not None:
        model = timm.create_model(pretrained_id, pretrained=True, img_size=shape.image_size, num_classes=0)
    else:
        model = timm.create_model(family.timm_arch, pretrained=False, img_size=shape.image_size,
                                  patch_size=shape.patch, embed_dim=shape.width, depth=shape.depth,
                                  num_heads=shape.heads, mlp_ratio=shape.mlp / shape.width, num_classes=0)
    # Keep blocks 0..L-2 only; drop the final norm and head (patch features are un-normed).
    model.prune_intermediate_layers(indices=[len(model.blocks) - 2], prune_norm=True, prune_head=True)
    return model


def build_backbone(kind: str, model_id: str, image_size: int, shrink, pretrained: bool) -> VisionBackbone:
    """Build one backbone of family `kind` (see FAMILIES) at `image_size`."""
    if kind not in FAMILIES:
        raise ValueError(f"unknown vision family {kind!r}; known: {', '.join(FAMILIES)}")
    family = FAMILIES[kind]
    shape = backbone_shape(family, image_size, shrink)
    source = model_id if pretrained else None
    if family.library == "transformers":
        model = _hf_tower(kind, shape, source)
        prefix = 1 if kind == "clip" else 0
    else:
        model = _timm_tower(family, shape, source)
        prefix = model.num_prefix_tokens
    return VisionBackbone(kind, model, shape, prefix)


def check_same_grid(backbones: list[VisionBackbone]) -> None:
    grids = {b.kind: b.shape.grid for b in backbones}
    if len(set(grids.values())) > 1:
        raise ValueError(f"fused backbones need the same patch grid to concatenate features, got {grids}")


def fused_dim(backbones: list[VisionBackbone]) -> int:
    return sum(b.embed_dim for b in backbones)
