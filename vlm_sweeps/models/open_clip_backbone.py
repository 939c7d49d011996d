"""The `open_clip` backbone kind: any ViT of open_clip's pretrained zoo, named `ARCH:TAG`
(`ViT-L-14:datacomp_xl_s13b_b90k`, `ViT-SO400M-14-SigLIP2-378:webli`, ...; the pairs of
`open_clip.list_pretrained()`), from its encoder option file alone.

- Normalisation (mean, std, interpolation): the tag's pretrained config, as open_clip merges it.
- Features: patch tokens of the second-to-last block (the paper's choice, as for the other kinds;
  or the blocks the `layers` argument names) through open_clip's `visual.forward_intermediates`,
  for its own `VisionTransformer` and for its `TimmModel` around a timm trunk (SigLIP / SigLIP 2
  SO400M). The blocks after the deepest one, the final norm and the pooling / projection head are
  removed at build time: they are never computed, and the pooled embedding is never used.
- Activation: QuickGELU when the arch or the tag was trained with it (`ViT-L-14:dfn2b` is;
  open_clip itself only warns when the two disagree).
- Random weights (`scale=tiny`, and the dry run's full-size meta build): the arch's vision tower
  built by open_clip's own tower builder (the one `CLIP` / `CustomTextCLIP` use for `.visual`)
  from its `vision_cfg`, the dimensions shrunk by `vision.backbone_shape`'s rule so that fused
  pairs of different kinds share the patch grid. For a timm trunk, the trunk inside open_clip's
  wrapper is that timm architecture at the shrunk dimensions.
- Pretrained (`scale=full`): the checkpoint file of the tag found locally (models/weights.py: the
  Hub repository the pretrained config names) and loaded by `open_clip.create_model(ARCH,
  pretrained=<file>)`; nothing is downloaded. At an `image_size` other than the arch's own,
  open_clip resamples the position embeddings (as the timm kind does for DINOv2).
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vlm_sweeps.models.vision import (
    BackboneFamily,
    BackboneShape,
    Preprocessing,
    VisionBackbone,
    backbone_shape,
    resolve_layers,
)

log = logging.getLogger(__name__)

KIND = "open_clip"
HOW_TO_LIST = ("valid ids are ARCH:TAG pairs of open_clip's pretrained zoo, listed by "
               "`python -c \"import open_clip; print(open_clip.list_pretrained(as_str=True))\"`")
# open_clip's names of a Hub repo's weights when its pretrained config names none (preference order)
DEFAULT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


@dataclass(frozen=True)
class ZooEntry:
    """One (arch, tag) of open_clip's pretrained zoo: its model config and pretrained config."""

    arch: str
    tag: str
    model_cfg: dict
    pretrained_cfg: dict

    @property
    def id(self) -> str:
        return f"{self.arch}:{self.tag}"

    @property
    def vision_cfg(self) -> dict:
        return self.model_cfg["vision_cfg"]

    @property
    def timm_trunk(self) -> str | None:
        return self.vision_cfg.get("timm_model_name")

    @property
    def quick_gelu(self) -> bool:
        return bool(self.model_cfg.get("quick_gelu") or self.pretrained_cfg.get("quick_gelu"))

    @property
    def native_size(self) -> int:
        size = self.vision_cfg.get("image_size", 224)
        return size if isinstance(size, int) else _square(size, f"{self.id}: image_size")

    @property
    def preprocessing(self) -> Preprocessing:
        """What open_clip's `create_model(arch, pretrained=tag)` would set: its defaults overlaid by the tag's."""
        from open_clip.transform import PreprocessCfg, merge_preprocess_dict

        cfg = merge_preprocess_dict(asdict(PreprocessCfg()), self.pretrained_cfg)
        return Preprocessing(tuple(float(x) for x in cfg["mean"]), tuple(float(x) for x in cfg["std"]),
                             cfg["interpolation"])


def _square(size, what: str) -> int:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h != w:
        raise ValueError(f"{what} {size} is not square; the open_clip kind builds square ViTs")
    return int(h)


def zoo_entry(model_id: str) -> ZooEntry:
    """Parse and check an `ARCH:TAG` id against open_clip's zoo; errors say how to find valid ids."""
    import open_clip

    arch, sep, tag = str(model_id).partition(":")
    if not (sep and arch and tag):
        raise ValueError(f"open_clip backbone id {model_id!r}: expected 'ARCH:TAG' (e.g. "
                         f"'ViT-L-14:datacomp_xl_s13b_b90k'); {HOW_TO_LIST}")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not tags:
        archs = sorted({a for a, _ in open_clip.list_pretrained()})
        close = difflib.get_close_matches(arch, archs, n=5, cutoff=0.6)
        raise ValueError(f"open_clip backbone id {model_id!r}: no pretrained architecture {arch!r}"
                         + (f" (close: {', '.join(close)})" if close else "") + f"; {HOW_TO_LIST}")
    pretrained_cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not pretrained_cfg:
        raise ValueError(f"open_clip backbone id {model_id!r}: {arch} has no pretrained tag {tag!r}; its tags: "
                         f"{', '.join(tags)}; {HOW_TO_LIST}")
    model_cfg = open_clip.get_model_config(arch)
    if model_cfg is None or "vision_cfg" not in model_cfg:
        raise ValueError(f"open_clip backbone id {model_id!r}: open_clip has no model config for {arch!r}")
    if isinstance(model_cfg["vision_cfg"].get("layers"), (list, tuple)):
        raise ValueError(f"open_clip backbone id {model_id!r}: {arch} is a ResNet, it has no transformer block to "
                         "take patch tokens from; choose a ViT architecture (ViT-*, ViT-SO400M-*, EVA*, ...); "
                         + HOW_TO_LIST)
    return ZooEntry(arch, tag, model_cfg, dict(pretrained_cfg))


def open_clip_weights(kind: str, model_id: str, role: str):
    """The WeightSpec of a zoo id: the Hub repo (and file) its pretrained config names, or for an
    entry with a download URL only, the file to place under models_dir (models/weights.py)."""
    from vlm_sweeps.models.weights import WeightSpec

    entry = zoo_entry(model_id)
    hub = entry.pretrained_cfg.get("hf_hub", "")
    url = entry.pretrained_cfg.get("url") or None
    if hub:
        # open_clip's convention: 'org/name/' (default file names) or 'org/name/file.bin'
        repo, filename = os.path.split(hub)
        if not filename:
            files = DEFAULT_FILES
        else:  # open_clip tries a safetensors twin of a .bin/.pth first
            stem, ext = os.path.splitext(filename)
            files = (f"{stem}.safetensors", filename) if ext in (".bin", ".pth") else (filename,)
        return WeightSpec(entry.id, KIND, role, hub_repo=repo.strip("/"), files=files, url=url)
    if url:
        return WeightSpec(entry.id, KIND, role, files=(os.path.basename(url),), url=url)
    raise ValueError(f"open_clip backbone id {model_id!r}: its pretrained config names no Hub repo and no URL "
                     f"({entry.pretrained_cfg}); nothing to load at scale=full")


class OpenClipBackbone(VisionBackbone):
    """An open_clip vision tower cut after its deepest feature block (`layers`; by default the
    second-to-last): `features` are those blocks' patch tokens [B, N, D x len(layers)], before any
    final norm (open_clip splits the prefix CLS token off)."""

    def __init__(self, model: nn.Module, shape: BackboneShape, num_prefix_tokens: int,
                 preprocessing: Preprocessing, model_id: str, layers: tuple[int, ...]):
        super().__init__(KIND, model, shape, num_prefix_tokens, preprocessing=preprocessing, library="open_clip",
                         layers=layers)
        self.model_id = model_id

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model.forward_intermediates(pixel_values, indices=list(self.layers), intermediates_only=True,
                                               normalize_intermediates=False, output_fmt="NLC")
        found = out["image_intermediates"]
        return found[0] if len(found) == 1 else torch.cat(found, dim=-1)


def blocks_of(visual: nn.Module) -> nn.ModuleList:
    """The transformer blocks of an open_clip tower (its own ViT, or the timm trunk it wraps)."""
    return visual.trunk.blocks if hasattr(visual, "trunk") else visual.transformer.resblocks


def _mlp_width(block: nn.Module) -> int:
    return next(m.out_features for m in block.mlp.modules() if isinstance(m, nn.Linear))


@functools.cache
def _timm_facts(name: str) -> tuple[int, int, int, int, int]:
    """(width, depth, heads, mlp, patch) of a timm trunk by its model defaults (built weight-free)."""
    import timm

    with torch.device("meta"):
        trunk = timm.create_model(name, pretrained=False, num_classes=0)
    if not all(hasattr(trunk, a) for a in ("blocks", "patch_embed", "forward_intermediates", "num_prefix_tokens")):
        raise ValueError(f"timm trunk {name} ({type(trunk).__name__}) is not a plain ViT (blocks over a patch "
                         "embedding); the open_clip kind takes patch tokens of a ViT block")
    block = trunk.blocks[0]
    return (trunk.embed_dim, len(trunk.blocks), block.attn.num_heads, _mlp_width(block),
            _square(trunk.patch_embed.patch_size, f"{name}: patch size"))


def family(entry: ZooEntry) -> BackboneFamily:
    """The arch's real facts (its vision_cfg, or a timm trunk's model defaults) and the tag's normalisation."""
    from open_clip.model import CLIPVisionCfg

    if entry.timm_trunk:
        try:
            width, depth, heads, mlp, patch = _timm_facts(entry.timm_trunk)
        except ValueError as e:
            raise ValueError(f"open_clip backbone id {entry.id!r}: {e}; choose a ViT architecture; {HOW_TO_LIST}") from e
    else:
        vc = CLIPVisionCfg(**entry.vision_cfg)
        width, depth, heads, mlp = vc.width, vc.layers, vc.width // vc.head_width, int(vc.width * vc.mlp_ratio)
        patch = _square(vc.patch_size, f"{entry.id}: patch size")
    p = entry.preprocessing
    return BackboneFamily("open_clip", width, depth, heads, mlp, patch, p.mean, p.std, p.interpolation,
                          timm_arch=entry.timm_trunk)


def random_tower(entry: ZooEntry, shape: BackboneShape) -> nn.Module:
    """The arch's vision tower at `shape`, random weights, through open_clip's own classes (uncut)."""
    # open_clip's own tower builder: what CLIP / CustomTextCLIP build their `.visual` with
    from open_clip.model import _build_vision_tower

    embed_dim = entry.model_cfg["embed_dim"]
    if not entry.timm_trunk:
        vision_cfg = {**entry.vision_cfg, "image_size": shape.image_size, "patch_size": shape.patch,
                      "width": shape.width, "layers": shape.depth, "head_width": shape.width // shape.heads,
                      "mlp_ratio": shape.mlp / shape.width, "patch_dropout": 0.0}
        return _build_vision_tower(embed_dim, vision_cfg, quick_gelu=entry.quick_gelu)
    import timm

    with torch.device("meta"):  # open_clip's TimmModel; it builds its trunk at the timm defaults, replaced here
        visual = _build_vision_tower(embed_dim, {**entry.vision_cfg, "patch_dropout": 0.0}, quick_gelu=entry.quick_gelu)
    extra = {"drop_path_rate": entry.vision_cfg["timm_drop_path"]} if entry.vision_cfg.get("timm_drop_path") else {}
    try:
        visual.trunk = timm.create_model(entry.timm_trunk, pretrained=False, num_classes=0, img_size=shape.image_size,
                                         patch_size=shape.patch, embed_dim=shape.width, depth=shape.depth,
                                         num_heads=shape.heads, mlp_ratio=shape.mlp / shape.width, **extra)
    except TypeError as e:
        raise ValueError(f"open_clip {entry.id}: its timm trunk {entry.timm_trunk} cannot be built at other "
                         f"dimensions ({e})") from e
    visual.head = nn.Sequential()  # pooling / projection to the contrastive embedding: never used here
    visual.image_size = (shape.image_size, shape.image_size)
    return visual


def cut(visual: nn.Module, blocks: int) -> nn.Module:
    """Keep blocks 0..blocks-1; drop the final norm, the pooling and the projection (never computed)."""
    keep = [blocks - 1]
    if hasattr(visual, "trunk"):
        visual.trunk.prune_intermediate_layers(indices=keep, prune_norm=True, prune_head=True)
        visual.head = nn.Sequential()
    else:
        visual.prune_intermediate_layers(indices=keep, prune_norm=True, prune_head=True)
        visual.attn_pool = None  # CoCa-style attentional pooling of the embedding
        visual.attn_pool_contrastive = None
    return visual


def shape_of(visual: nn.Module, image_size: int) -> BackboneShape:
    """The shape of a built (uncut) tower, read from its modules."""
    blocks = blocks_of(visual)
    if hasattr(visual, "trunk"):
        width, patch = visual.trunk.embed_dim, visual.trunk.patch_embed.patch_size
    else:
        width, patch = visual.transformer.width, visual.patch_size
    return BackboneShape(width=width, depth=len(blocks), heads=blocks[0].attn.num_heads, mlp=_mlp_width(blocks[0]),
                         patch=_square(patch, "patch size"), image_size=image_size)


def check_folder_preprocessing(folder: Path, entry: ZooEntry) -> None:
    """A checkpoint folder's `open_clip_config.json` (when there is one) must declare the
    normalisation of the tag's pretrained config, which is what the transforms apply."""
    file = folder / "open_clip_config.json"
    if not file.is_file():
        return
    declared = json.loads(file.read_text()).get("preprocess_cfg", {})
    ours = entry.preprocessing
    wrong = [key for key, value in (("mean", ours.mean), ("std", ours.std)) if key in declared
             and any(abs(float(a) - b) > 1e-6 for a, b in zip(declared[key], value))]
    if declared.get("interpolation") not in (None, ours.interpolation):
        wrong.append("interpolation")
    if wrong:
        raise ValueError(f"{file}: the checkpoint preprocesses with {declared}, but open_clip's pretrained config "
                         f"of {entry.id} (what the transforms apply) has {ours} (differs in {', '.join(wrong)}); "
                         "is this folder the checkpoint of that id?")


def pretrained_tower(entry: ZooEntry, models_dir: Path | None, image_size: int) -> nn.Module:
    """The tag's checkpoint, found locally, loaded by open_clip; its vision tower (uncut)."""
    import open_clip

    from vlm_sweeps.models.weights import checkpoint_file, resolve

    spec = open_clip_weights(KIND, entry.id, f"{KIND} backbone")
    folder = resolve(spec, models_dir)
    check_folder_preprocessing(folder, entry)
    if image_size != entry.native_size:
        log.info("%s: built for %d px, used at %d px (open_clip resamples its position embeddings)",
                 entry.id, entry.native_size, image_size)
    model = open_clip.create_model(entry.arch, pretrained=str(checkpoint_file(folder, spec)),
                                   force_quick_gelu=entry.quick_gelu, force_patch_dropout=0.0,
                                   force_image_size=None if image_size == entry.native_size else image_size,
                                   pretrained_image=False, pretrained_text=False, require_pretrained=True)
    return model.visual  # the text tower goes with `model`


def build_open_clip(kind: str, model_id: str, image_size: int, shrink, pretrained: bool,
                    models_dir: Path | None, layers: Sequence[Any] = ("-2",)) -> VisionBackbone:
    """A backbone of open_clip zoo id `ARCH:TAG` (vision.KINDS["open_clip"]): random weights at the
    arch's shape shrunk by `shrink`, or (`pretrained`) its local checkpoint at its real shape.
    `layers`: the blocks whose patch tokens are the features (vision.resolve_layers; -2 the paper's)."""
    entry = zoo_entry(model_id)
    fam = family(entry)
    if pretrained:
        visual = pretrained_tower(entry, models_dir, image_size)
        shape = shape_of(visual, image_size)
    else:
        target = backbone_shape(fam, image_size, shrink)
        visual = random_tower(entry, target)
        shape = shape_of(visual, target.image_size)
        assert (shape.width, shape.depth, shape.patch) == (target.width, target.depth, target.patch), (shape, target)
    picked = resolve_layers(layers, shape.depth)
    prefix = visual.trunk.num_prefix_tokens if hasattr(visual, "trunk") else 1  # open_clip's ViT: one CLS token
    return OpenClipBackbone(cut(visual, max(picked) + 1), shape, prefix, entry.preprocessing, entry.id, picked)
