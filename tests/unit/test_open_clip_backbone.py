"""The open_clip backbone kind at tiny scale: every encoder option naming an open_clip zoo id builds
through open_clip's own classes, normalises as open_clip's pretrained config says, and returns the
patch tokens of the second-to-last block; an id no option names builds from a YAML file alone."""

import time
from dataclasses import asdict

import open_clip
import pytest
import torch
import yaml
from open_clip.timm_model import TimmModel
from open_clip.transformer import VisionTransformer

from tests.conftest import CONF, SMALL, compose
from vlm_sweeps.config import ShrinkConf
from vlm_sweeps.models import open_clip_backbone as ocb
from vlm_sweeps.models.vision import build_backbone, check_same_grid

TINY = ShrinkConf(width=16, depth=8, heads=4, resolution=7, patch=2)
REAL = ShrinkConf(width=1, depth=1, heads=1, resolution=1, patch=1)


def _open_clip_options() -> list[tuple[str, str, int]]:
    """(option, zoo id, image size) of every conf/encoder option with an open_clip backbone."""
    found = []
    for file in sorted((CONF / "encoder").glob("*.yaml")):
        option = yaml.safe_load(file.read_text())
        found += [(file.stem, b["id"], option["image_size"]) for b in option["backbones"] if b["kind"] == "open_clip"]
    return found


OPTIONS = _open_clip_options()
IDS = [f"{o}:{i}" for o, i, _ in OPTIONS]


def test_the_new_encoder_options_exist():
    names = {o for o, _, _ in OPTIONS}
    assert {"datacomp", "dfn", "metaclip", "siglip2", "dinosiglip2"} <= names
    zoo = set(open_clip.list_pretrained(as_str=True))
    assert all(i in zoo for _, i, _ in OPTIONS)  # every id is a real zoo entry


def _expected_preprocessing(model_id: str) -> tuple:
    """Independently: open_clip's defaults overlaid by the tag's pretrained config."""
    from open_clip.transform import PreprocessCfg

    arch, tag = model_id.split(":")
    cfg = {**asdict(PreprocessCfg()), **{k: v for k, v in open_clip.get_pretrained_cfg(arch, tag).items()
                                         if k in ("mean", "std", "interpolation")}}
    return tuple(cfg["mean"]), tuple(cfg["std"]), cfg["interpolation"]


@pytest.mark.parametrize("option,model_id,size", OPTIONS, ids=IDS)
def test_tiny_backbone_is_open_clips_tower_with_penultimate_patch_tokens(option, model_id, size):
    entry = ocb.zoo_entry(model_id)
    torch.manual_seed(0)
    bb = build_backbone("open_clip", model_id, size, TINY, pretrained=False).eval()
    assert isinstance(bb, ocb.OpenClipBackbone) and bb.library == "open_clip"
    assert isinstance(bb.model, TimmModel if entry.timm_trunk else VisionTransformer)
    mean, std, interpolation = _expected_preprocessing(model_id)
    assert bb.preprocessing.mean == pytest.approx(mean) and bb.preprocessing.std == pytest.approx(std)
    assert bb.preprocessing.interpolation == interpolation

    shape = bb.shape
    x = torch.randn(2, 3, shape.image_size, shape.image_size)
    start = time.perf_counter()
    with torch.no_grad():
        feats = bb(x)
    assert time.perf_counter() - start < 1.0  # tiny: a few milliseconds on one CPU thread
    assert feats.shape == (2, shape.grid ** 2, shape.width)
    assert len(ocb.blocks_of(bb.model)) == shape.depth - 1  # the last block is never computed

    # The same weights in an uncut tower, read at block L-2 by open_clip's own forward_intermediates.
    full = ocb.random_tower(entry, shape).eval()
    result = full.load_state_dict(bb.model.state_dict(), strict=False)
    assert not result.unexpected_keys
    last = f"blocks.{shape.depth - 1}." if entry.timm_trunk else f"resblocks.{shape.depth - 1}."
    assert all(last in k or not any(s in k for s in ("blocks.", "resblocks.")) for k in result.missing_keys)
    with torch.no_grad():
        (ref,) = full.forward_intermediates(x, indices=[shape.depth - 2], intermediates_only=True,
                                            output_fmt="NLC")["image_intermediates"]
    assert torch.allclose(feats, ref, atol=1e-5)


@pytest.mark.parametrize("option,model_id,size", OPTIONS, ids=IDS)
def test_full_size_random_build_works_on_the_meta_device(option, model_id, size):
    """What the dry run builds: the real architecture at the option's size, no memory."""
    fam = ocb.family(ocb.zoo_entry(model_id))
    with torch.device("meta"):
        bb = build_backbone("open_clip", model_id, size, REAL, pretrained=False)
    assert all(t.is_meta for t in bb.parameters())
    assert (bb.shape.width, bb.shape.depth, bb.shape.patch, bb.shape.image_size) == (fam.width, fam.depth, fam.patch,
                                                                                      size)
    assert bb.num_patches == (size // fam.patch) ** 2


def test_real_facts_of_the_zoo_archs():
    """ViT-L/14 (open_clip's ViT) and SO400M/14 (timm trunk) at their published sizes."""
    vitl = ocb.family(ocb.zoo_entry("ViT-L-14:datacomp_xl_s13b_b90k"))
    assert (vitl.width, vitl.depth, vitl.heads, vitl.mlp, vitl.patch) == (1024, 24, 16, 4096, 14)
    so400m = ocb.family(ocb.zoo_entry("ViT-SO400M-14-SigLIP2-378:webli"))
    assert (so400m.width, so400m.depth, so400m.heads, so400m.mlp, so400m.patch) == (1152, 27, 16, 4304, 14)
    assert ocb.zoo_entry("ViT-L-14:dfn2b").quick_gelu  # trained with QuickGELU, whatever the arch says
    assert not ocb.zoo_entry("ViT-L-14:datacomp_xl_s13b_b90k").quick_gelu


def test_quick_gelu_follows_the_tag():
    from open_clip.transformer import QuickGELU

    torch.manual_seed(0)
    bb = build_backbone("open_clip", "ViT-L-14-quickgelu:dfn2b", 224, TINY, pretrained=False)
    assert any(isinstance(m, QuickGELU) for m in bb.modules())
    bb = build_backbone("open_clip", "ViT-L-14:datacomp_xl_s13b_b90k", 224, TINY, pretrained=False)
    assert not any(isinstance(m, QuickGELU) for m in bb.modules())


def test_fused_pair_of_two_kinds_shares_the_patch_grid():
    """dinosiglip2: DINOv2 from timm + SigLIP 2 from open_clip, same grid at tiny scale."""
    option = yaml.safe_load((CONF / "encoder" / "dinosiglip2.yaml").read_text())
    backbones = [build_backbone(b["kind"], b["id"], option["image_size"], TINY, pretrained=False)
                 for b in option["backbones"]]
    assert [b.library for b in backbones] == ["timm", "open_clip"]
    check_same_grid(backbones)
    assert backbones[0].shape.grid == backbones[1].shape.grid == 8


def test_an_id_no_option_names_builds_from_a_yaml_file_alone(tmp_path, small_world, session_root):
    """A new encoder option of the open_clip kind is one YAML file: it composes, builds and trains."""
    from vlm_sweeps.models.builder import build_vlm

    folder = tmp_path / "extra" / "encoder"
    folder.mkdir(parents=True)
    (folder / "vitb16.yaml").write_text(
        "# LAION-2B CLIP ViT-B/16 @ 224\nname: vitb16\nimage_size: 224\nbackbones:\n"
        '  - {kind: open_clip, id: "ViT-B-16:laion2b_s34b_b88k"}\n')
    cfg = compose(SMALL + [f"hydra.searchpath=[file://{tmp_path / 'extra'}]", "encoder=vitb16"], root=session_root)
    _, tok = small_world
    torch.manual_seed(0)
    model = build_vlm(cfg, tok)
    (bb,) = model.encoder
    assert isinstance(bb.model, VisionTransformer) and bb.shape.patch == 8  # ViT-B/16's patch, halved
    pixels = [torch.randn(2, 3, bb.shape.image_size, bb.shape.image_size)]
    assert model.encode_images(pixels).shape[:2] == (2, bb.num_patches)


@pytest.mark.parametrize("bad,says", [
    ("ViT-L-14", "expected 'ARCH:TAG'"),
    ("ViT-L-14:no_such_tag", "datacomp_xl_s13b_b90k"),  # lists the arch's tags
    ("ViT-L-15:openai", "close: ViT-L-14"),
    ("RN50:openai", "ResNet"),
    ("convnext_base:laion400m_s13b_b51k", "not a plain ViT"),  # a timm trunk that is no ViT
])
def test_a_bad_id_says_how_to_find_valid_ones(bad, says):
    with pytest.raises(ValueError) as err:
        build_backbone("open_clip", bad, 224, TINY, pretrained=False)
    assert says in str(err.value)
    assert "open_clip.list_pretrained(as_str=True)" in str(err.value)
    if "plain ViT" not in says:  # the same check before anything builds (a trunk's layout is checked when built)
        with pytest.raises(ValueError, match="list_pretrained"):
            ocb.open_clip_weights("open_clip", bad, "encoder=x")


def test_cut_leaves_nothing_unused():
    """No parameter of the cut tower is left without a gradient (full finetuning trains them all)."""
    for model_id, size in [("ViT-L-14:datacomp_xl_s13b_b90k", 224), ("ViT-SO400M-14-SigLIP2-378:webli", 378),
                           ("coca_ViT-L-14:laion2b_s13b_b90k", 224)]:
        torch.manual_seed(0)
        bb = build_backbone("open_clip", model_id, size, TINY, pretrained=False)
        bb(torch.randn(1, 3, bb.shape.image_size, bb.shape.image_size)).sum().backward()
        assert [n for n, p in bb.named_parameters() if p.grad is None] == [], model_id


@pytest.mark.parametrize("model_id,size", [("ViT-L-14:datacomp_xl_s13b_b90k", 224),
                                           ("ViT-SO400M-14-SigLIP2-378:webli", 378)])
@pytest.mark.parametrize("layers,blocks", [(("-1",), 3), (("middle", "-2"), 2)])
def test_feature_layers_are_open_clips_intermediates_of_those_blocks(model_id, size, layers, blocks):
    """The `features` axis: other blocks (or several, concatenated on channels), the same way."""
    entry = ocb.zoo_entry(model_id)
    torch.manual_seed(0)
    bb = build_backbone("open_clip", model_id, size, TINY, pretrained=False, layers=layers).eval()
    assert len(ocb.blocks_of(bb.model)) == blocks == bb.kept_blocks  # nothing after the deepest one
    full = ocb.random_tower(entry, bb.shape).eval()
    assert not full.load_state_dict(bb.model.state_dict(), strict=False).unexpected_keys
    x = torch.randn(2, 3, bb.shape.image_size, bb.shape.image_size)
    with torch.no_grad():
        feats = bb(x)
        refs = full.forward_intermediates(x, indices=list(bb.layers), intermediates_only=True,
                                          output_fmt="NLC")["image_intermediates"]
    assert feats.shape == (2, bb.num_patches, bb.shape.width * len(layers)) and bb.embed_dim == feats.shape[-1]
    assert torch.allclose(feats, torch.cat(refs, dim=-1), atol=1e-5)
