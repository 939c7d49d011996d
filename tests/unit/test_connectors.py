"""The new axes' mechanics: connectors and their token budgets, feature layers, per-part learning
rates. Expected values are written from each method's definition, not from our output."""

from __future__ import annotations

import math

import pytest
import torch

from tests.conftest import SMALL, compose
from vlm_sweeps.models.projector import Projector, num_tokens

V, L = 12, 16


def _features(grid: int, batch: int = 2, channels: int = V) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch, grid * grid, channels)


@pytest.mark.parametrize("kind,grid,tokens,expected", [
    ("linear", 7, None, 49), ("mlp", 7, None, 49),
    ("pool", 8, None, 16), ("pool", 7, None, 16), ("pool", 8, 4, 4),
    ("pixel_shuffle", 8, None, 16), ("pixel_shuffle", 7, None, 16),
    ("cabstractor", 8, None, 16), ("cabstractor", 8, 9, 9),
    ("resampler", 8, None, 16), ("resampler", 8, 5, 5),
])
def test_each_connector_gives_its_token_budget(kind, grid, tokens, expected):
    proj = Projector(kind, V, L, grid=grid, tokens=tokens)
    out = proj(_features(grid))
    assert out.shape == (2, expected, L) and proj.num_tokens == expected == num_tokens(kind, grid, tokens)
    assert torch.isfinite(out).all()


def test_mlp_is_the_prismatic_mlp_of_the_encoder():
    assert Projector("mlp", V, L).kind == "gelu-mlp"
    assert Projector("mlp", V, L, fused=True).kind == "fused-gelu-mlp"
    fused = Projector("mlp", V, L, fused=True).net
    assert [type(m).__name__ for m in fused] == ["Linear", "GELU", "Linear", "GELU", "Linear"]
    assert fused[0].out_features == 4 * V


def test_pool_averages_each_block_of_the_grid():
    grid, x = 4, _features(4, batch=1)
    proj = Projector("pool", V, L, grid=grid)  # 2x2 output: each token the mean of a 2x2 block
    pooled = []
    for by in range(2):
        for bx in range(2):
            idx = [(2 * by + dy) * grid + (2 * bx + dx) for dy in range(2) for dx in range(2)]
            pooled.append(x[0, idx].mean(0))
    expected = proj.net(torch.stack(pooled)[None])
    assert torch.allclose(proj(x), expected, atol=1e-6)


def test_pixel_shuffle_stacks_each_block_of_patches_into_one_token():
    grid, f, x = 4, 2, _features(4, batch=1)
    proj = Projector("pixel_shuffle", V, L, grid=grid, factor=f)
    # space-to-depth (torch.pixel_unshuffle): token (by, bx) holds channel c of patch (dy, dx) at c*f*f + dy*f + dx
    rows = []
    for by in range(2):
        for bx in range(2):
            token = torch.empty(V * f * f)
            for c in range(V):
                for dy in range(f):
                    for dx in range(f):
                        token[c * f * f + dy * f + dx] = x[0, (f * by + dy) * grid + (f * bx + dx), c]
            rows.append(token)
    assert torch.allclose(proj(x), proj.net(torch.stack(rows)[None]), atol=1e-6)


def test_pixel_shuffle_pads_a_grid_that_is_not_a_multiple():
    proj = Projector("pixel_shuffle", V, L, grid=3, factor=2)
    x = _features(3, batch=1)
    padded = torch.zeros(1, 16, V)
    for y in range(3):
        padded[0, y * 4:y * 4 + 3] = x[0, y * 3:y * 3 + 3]
    ref = Projector("pixel_shuffle", V, L, grid=4, factor=2)
    ref.load_state_dict(proj.state_dict())
    assert torch.allclose(proj(x), ref(padded), atol=1e-6)


def test_the_resampler_reads_every_patch_and_outputs_its_queries():
    proj = Projector("resampler", V, L, grid=4, tokens=3).eval()
    x = _features(4, batch=1).requires_grad_(True)
    proj(x).sum().backward()
    assert (x.grad.abs().sum(-1) > 0).all()  # every patch reaches every query through cross-attention
    # permuting the patches does not change the output (attention over a set; no position in it)
    perm = torch.randperm(16)
    assert torch.allclose(proj(x[:, perm]), proj(x), atol=1e-5)


def test_bad_budgets_say_what_to_use():
    with pytest.raises(ValueError, match="use a square number"):
        Projector("pool", V, L, grid=8, tokens=10)


def test_feature_layers_follow_the_features_option(small_world, session_root):
    """`last` = the last block's output, `multi` = middle and penultimate concatenated: compared
    with the library's own hidden states of the same weights, untruncated."""
    from vlm_sweeps.models.vision import FAMILIES, backbone_shape, build_backbone

    shrink = compose(SMALL, root=session_root).scale.vision_shrink
    torch.manual_seed(0)
    last = build_backbone("clip", "x", 336, shrink, False, layers=("-1",)).eval()
    depth = last.shape.depth
    assert last.layers == (depth - 1,) and last.kept_blocks == depth
    x = torch.randn(1, 3, last.shape.image_size, last.shape.image_size)
    with torch.no_grad():
        hidden = last.model(pixel_values=x, output_hidden_states=True).hidden_states  # all blocks kept
        assert torch.equal(last(x), hidden[depth][:, 1:])
        multi = build_backbone("clip", "x", 336, shrink, False, layers=("middle", "-2")).eval()
        multi.model.load_state_dict(last.model.state_dict(), strict=False)
        assert multi.layers == (depth // 2 - 1, depth - 2) and multi.embed_dim == 2 * last.shape.width
        assert torch.equal(multi(x), torch.cat([hidden[depth // 2][:, 1:], hidden[depth - 1][:, 1:]], dim=-1))
        # timm: the same blocks through forward_intermediates
        dino = build_backbone("dinov2", "x", 224, shrink, False, layers=("-1",)).eval()
        assert dino.kept_blocks == dino.shape.depth
    assert backbone_shape(FAMILIES["clip"], 336, shrink).depth == depth


def test_the_encoder_learning_rate_scale_reaches_the_optimizer(small_world, session_root):
    from vlm_sweeps import components
    from vlm_sweeps.models.builder import build_vlm
    from vlm_sweeps.train.stages import make_optimizer, make_scheduler, set_trainable

    cfg = compose(SMALL + ["optimization=finetune_encoder_lr_tenth"], root=session_root)
    (stage,) = components.of(cfg).plan
    assert dict(stage.lr_scale) == {"encoder": 0.1} and set(stage.train) == {"encoder", "projector", "llm"}
    _, tok = small_world
    model = build_vlm(cfg, tok)
    set_trainable(model, list(stage.train))
    opt = make_optimizer(model, stage.hparams.lr, stage.hparams.weight_decay, dict(stage.lr_scale))
    encoder = {id(p) for p in model.encoder.parameters()}
    for group in opt.param_groups:
        ids = {id(p) for p in group["params"]}
        if ids and ids <= encoder:
            assert math.isclose(group["lr"], 0.1 * stage.hparams.lr)
        elif ids:
            assert not ids & encoder and math.isclose(group["lr"], stage.hparams.lr)
    assert sum(len(g["params"]) for g in opt.param_groups) == sum(1 for p in model.parameters() if p.requires_grad)
    sched = make_scheduler(opt, 100, 0.1)
    for _ in range(30):
        opt.step()
        sched.step()
    lrs = sorted({g["lr"] for g in opt.param_groups})
    assert len(lrs) == 2 and math.isclose(lrs[0], 0.1 * lrs[1])  # the ratio holds along the schedule


def test_two_stage_jobs_differing_only_in_projector_align_apart(session_root):
    from vlm_sweeps.train.shared_align import SharedAlign

    paths = {p: SharedAlign.of(compose(SMALL + ["optimization=two_stage", f"projector={p}"], root=session_root)).path
             for p in ("mlp", "linear", "resampler", "pool", "pixel_shuffle", "cabstractor")}
    assert len(set(paths.values())) == len(paths)
