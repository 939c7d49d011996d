"""Patch features come from the second-to-last block, patch tokens only, for every family."""

import pytest
import torch

from vlm_sweeps.config import ShrinkConf
from vlm_sweeps.models.vision import FAMILIES, backbone_shape, build_backbone

TINY = ShrinkConf(width=16, depth=8, heads=4, resolution=7, patch=2)


@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_features_equal_second_to_last_block_of_the_untruncated_model(kind):
    torch.manual_seed(0)
    shape = backbone_shape(FAMILIES[kind], 224, TINY)
    x = torch.randn(2, 3, shape.image_size, shape.image_size)
    torch.manual_seed(1)
    bb = build_backbone(kind, "unused", 224, TINY, pretrained=False).eval()
    feats = bb(x)
    assert feats.shape == (2, shape.grid ** 2, shape.width)
    # Rebuild the same weights without truncation and read block L-2 the libraries' own way.
    torch.manual_seed(1)
    if FAMILIES[kind].library == "timm":
        import timm

        full = timm.create_model(FAMILIES[kind].timm_arch, pretrained=False, img_size=shape.image_size,
                                 patch_size=shape.patch, embed_dim=shape.width, depth=shape.depth,
                                 num_heads=shape.heads, mlp_ratio=shape.mlp / shape.width, num_classes=0).eval()
        (ref,) = full.forward_intermediates(x, indices=[shape.depth - 2], intermediates_only=True,
                                            output_fmt="NLC")
    else:
        from transformers import CLIPVisionConfig, CLIPVisionModel, SiglipVisionConfig, SiglipVisionModel

        cls, conf = (CLIPVisionModel, CLIPVisionConfig) if kind == "clip" else (SiglipVisionModel, SiglipVisionConfig)
        extra = {"hidden_act": "quick_gelu"} if kind == "clip" else {"vision_use_head": False}
        full = cls(conf(hidden_size=shape.width, intermediate_size=shape.mlp, num_hidden_layers=shape.depth,
                        num_attention_heads=shape.heads, image_size=shape.image_size, patch_size=shape.patch,
                        **extra)).eval()
        hidden = full(pixel_values=x, output_hidden_states=True).hidden_states
        ref = hidden[-2][:, 1:] if kind == "clip" else hidden[-2]
    assert torch.allclose(feats, ref, atol=1e-5)


def test_tiny_shapes_keep_each_option_distinct():
    """clip@336, siglip@384, clip@224 and in1k@224 differ in grid or width at tiny scale."""
    grids = {(k, s): backbone_shape(FAMILIES[k], s, TINY) for k, s in
             [("clip", 336), ("clip", 224), ("siglip", 384), ("siglip", 224), ("in1k", 224), ("dinov2", 384)]}
    assert len({(g.grid, g.width, g.patch) for g in grids.values()}) == len(grids)
    assert grids[("dinov2", 384)].grid == grids[("siglip", 384)].grid  # fused backbones share the patch grid
    assert grids[("siglip", 384)].width == 72 and grids[("clip", 336)].width == 64
