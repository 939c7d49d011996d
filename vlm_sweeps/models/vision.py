"""Vision backbones: each family's facts, and builders that return patch features of the
second-to-last transformer block (patch tokens only, no CLS or register tokens).

CLIP and SigLIP are built through transformers (the classes LLaVA uses, so exports load in
`LlavaForConditionalGeneration`); DINOv2 (with registers) and the ImageNet ViT through timm (the
anchor's ids). At `scale=tiny` the same classes are built with the family's real proportions
divided by `scale.vision_shrink` and random weights; at `scale=full` the public checkpoint loads
from its local folder (models/weights.py), its shape read from the checkpoint, after checking that
the family's normalisation is the one the checkpoint declares.

A backbone kind is one entry of KINDS: how to build it (tiny or pretrained) and which local weights
it needs at `scale=full`. `open_clip` (models/open_clip_backbone.py) builds any model of open_clip's
pretrained zoo from an id `ARCH:TAG`, its normalisation read from open_clip's pretrained config. A
new kind is one builder registered there plus its encoder option files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Preprocessing:
    """How a backbone's input images are normalised: what its checkpoint was trained with."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    def fill_rgb(self) -> tuple[int, int, int]:
        """Letterbox fill: the normalisation mean in 0-255, e.g. (122, 116, 104) for CLIP."""
        return tuple(int(m * 255) for m in self.mean)  # type: ignore[return-value]


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
        return self.preprocessing.fill_rgb()

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.mean, self.std, self.interpolation)


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
    `kind` names its entry in KINDS; `preprocessing` is the normalisation its inputs need. Kinds
    whose model is not a transformers or timm tower subclass it and override `features`.
    """

    def __init__(self, kind: str, model: nn.Module, shape: BackboneShape, num_prefix_tokens: int,
                 preprocessing: Preprocessing | None = None, library: str | None = None,
                 layers: tuple[int, ...] | None = None):
        super().__init__()
        self.kind = kind
        family = FAMILIES.get(kind)
        self.library = library or family.library
        self.preprocessing = preprocessing or family.preprocessing
        self.model = model
        self.shape = shape
        self.num_prefix_tokens = num_prefix_tokens
        # blocks (0-based) whose outputs are the features, concatenated on channels (the `features` axis)
        self.layers = tuple(layers) if layers is not None else (shape.depth - 2,)

    @property
    def embed_dim(self) -> int:
        return self.shape.width * len(self.layers)

    @property
    def num_patches(self) -> int:
        return self.shape.grid ** 2

    @property
    def kept_blocks(self) -> int:
        """Blocks computed: up to the deepest feature layer."""
        return max(self.layers) + 1

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.library == "timm":
            # forward_intermediates strips prefix (CLS + register) tokens for NLC output.
            found = self.model.forward_intermediates(pixel_values, indices=list(self.layers), intermediates_only=True,
                                                     output_fmt="NLC", norm=False)
        else:
            hidden = self.model(pixel_values=pixel_values, output_hidden_states=True).hidden_states
            # hidden_states[i + 1] = block i's output, before any post-norm
            found = [hidden[i + 1][:, self.num_prefix_tokens:] for i in self.layers]
        return found[0] if len(found) == 1 else torch.cat(found, dim=-1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        features = self.features(pixel_values)
        assert features.shape[1] == self.num_patches, (features.shape, self.num_patches)
        return features  # [B, N, D]


LAYER_CHOICES = "an integer block index (negative from the end: -1 the last block, -2 the penultimate) or `middle`"


def resolve_layers(layers: Sequence[Any], depth: int) -> tuple[int, ...]:
    """The `features` option's layers as 0-based block indices of a tower of `depth` blocks:
    -1 the last block, -2 the penultimate (the paper's), `middle` block depth // 2 - 1."""
    found = []
    for layer in layers:
        text = str(layer).strip()
        if text == "middle":
            index = depth // 2 - 1
        else:
            try:
                value = int(text)
            except ValueError:
                raise ValueError(f"features layer {layer!r}: use {LAYER_CHOICES}") from None
            index = depth + value if value < 0 else value
        if not 0 <= index < depth:
            raise ValueError(f"features layer {layer!r}: the tower has {depth} blocks")
        found.append(index)
    return tuple(sorted(set(found)))


def _truncate_hf(model: nn.Module, keep: int) -> nn.Module:
    """Keep blocks 0..keep-1: the blocks after the deepest feature layer are never computed."""
    tower = getattr(model, "vision_model", model)  # transformers 4 nests the tower, 5 does not
    tower.encoder.layers = tower.encoder.layers[:keep]
    if getattr(tower, "head", None) is not None:
        tower.head = None  # SigLIP's MAP pooling head is unused
        tower.use_head = False
    return model


def _truncate_timm(model: nn.Module, keep: int) -> nn.Module:
    """Keep blocks 0..keep-1; drop the final norm and head (patch features are un-normed)."""
    model.prune_intermediate_layers(indices=[keep - 1], prune_norm=True, prune_head=True)
    return model


def _hf_tower(kind: str, shape: BackboneShape) -> nn.Module:
    """A randomly initialised tower of `shape` (tiny scale, and the meta-device dry run)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, SiglipVisionConfig, SiglipVisionModel

    model_cls, config_cls = {"clip": (CLIPVisionModel, CLIPVisionConfig),
                             "siglip": (SiglipVisionModel, SiglipVisionConfig)}[kind]
    extra = {"hidden_act": "quick_gelu"} if kind == "clip" else {"vision_use_head": False}
    config = config_cls(hidden_size=shape.width, intermediate_size=shape.mlp,
                        num_hidden_layers=shape.depth, num_attention_heads=shape.heads,
                        image_size=shape.image_size, patch_size=shape.patch, **extra)
    config._attn_implementation = "sdpa"
    return model_cls(config)


def _timm_tower(family: BackboneFamily, shape: BackboneShape) -> nn.Module:
    import timm

    model = timm.create_model(family.timm_arch, pretrained=False, img_size=shape.image_size,
                              patch_size=shape.patch, embed_dim=shape.width, depth=shape.depth,
                              num_heads=shape.heads, mlp_ratio=shape.mlp / shape.width, num_classes=0)
    return model


def _hf_pretrained(kind: str, folder: Path, image_size: int) -> tuple[nn.Module, BackboneShape]:
    """The vision tower of a CLIP/SigLIP checkpoint folder (a full CLIPModel/SiglipModel checkpoint,
    as published, or a vision-only one); its shape is read from the checkpoint's config."""
    from transformers import CLIPVisionModel, SiglipVisionModel

    model_cls = {"clip": CLIPVisionModel, "siglip": SiglipVisionModel}[kind]
    # float32 master weights whatever the stored dtype (transformers 5 would keep the checkpoint's)
    model, info = model_cls.from_pretrained(folder, attn_implementation="sdpa", local_files_only=True,
                                            dtype=torch.float32, output_loading_info=True)
    # never train on silently re-initialised weights (SigLIP's pooling head is dropped anyway)
    absent = sorted(k for k in info["missing_keys"] if not k.startswith("head."))
    if absent or info["mismatched_keys"]:
        raise ValueError(f"{folder}: checkpoint does not fit {model_cls.__name__}: missing {absent[:5]}, "
                         f"mismatched {sorted(info['mismatched_keys'])[:5]}")
    c = model.config
    if c.image_size != image_size:
        raise ValueError(f"{folder}: checkpoint is for {c.image_size} px images but encoder.image_size={image_size}; "
                         "choose the encoder option of that resolution (e.g. clip_224 / siglip_224)")
    shape = BackboneShape(width=c.hidden_size, depth=c.num_hidden_layers, heads=c.num_attention_heads,
                          mlp=c.intermediate_size, patch=c.patch_size, image_size=c.image_size)
    return model, shape


def _timm_pretrained(folder: Path, image_size: int) -> tuple[nn.Module, BackboneShape]:
    """A timm Hub folder (config.json + model.safetensors) through timm's own `local-dir:` source:
    architecture and pretrained config from the folder, position embeddings resampled to
    `image_size` by timm's checkpoint filter (as the anchor does), strict loading."""
    import timm

    model = timm.create_model(f"local-dir:{folder}", pretrained=True, img_size=image_size, num_classes=0)
    block = model.blocks[0]
    shape = BackboneShape(width=model.embed_dim, depth=len(model.blocks), heads=block.attn.num_heads,
                          mlp=block.mlp.fc1.out_features, patch=model.patch_embed.patch_size[0], image_size=image_size)
    return model, shape


def checkpoint_preprocessing(folder: Path, library: str) -> dict | None:
    """Mean, std and interpolation a checkpoint folder declares for its inputs (None: not declared)."""
    if library == "timm":
        cfg = json.loads((folder / "config.json").read_text()).get("pretrained_cfg", {})
        if "mean" not in cfg:
            return None
        return {"mean": tuple(cfg["mean"]), "std": tuple(cfg["std"]), "interpolation": cfg.get("interpolation")}
    file = folder / "preprocessor_config.json"
    if not file.is_file():
        return None
    cfg = json.loads(file.read_text())
    resample = {2: "bilinear", 3: "bicubic"}.get(cfg.get("resample"))
    return {"mean": tuple(cfg["image_mean"]), "std": tuple(cfg["image_std"]), "interpolation": resample}


def check_preprocessing(kind: str, folder: Path) -> None:
    """The family's normalisation must be the checkpoint's own, or every image would be off."""
    family = FAMILIES[kind]
    declared = checkpoint_preprocessing(folder, family.library)
    if declared is None:
        return
    ours = {"mean": family.mean, "std": family.std, "interpolation": family.interpolation}
    same = all(abs(a - b) < 1e-6 for key in ("mean", "std") for a, b in zip(declared[key], ours[key]))
    if not same or declared["interpolation"] not in (None, family.interpolation):
        raise ValueError(f"{folder}: the checkpoint preprocesses with {declared}, but family {kind!r} applies "
                         f"{ours} (models/vision.py FAMILIES); use a family whose facts match the checkpoint")


def _build_family(kind: str, model_id: str, image_size: int, shrink, pretrained: bool,
                  models_dir: Path | None, layers: Sequence[Any] = ("-2",)) -> VisionBackbone:
    """The builder of the transformers (clip, siglip) and timm (dinov2, in1k) kinds."""
    family = FAMILIES[kind]
    if pretrained:
        from vlm_sweeps.models.weights import resolve

        folder = resolve(_family_weights(kind, model_id, f"{kind} backbone"), models_dir)
        check_preprocessing(kind, folder)
        if family.library == "transformers":
            model, shape = _hf_pretrained(kind, folder, image_size)
        else:
            model, shape = _timm_pretrained(folder, image_size)
    else:
        shape = backbone_shape(family, image_size, shrink)
        model = _hf_tower(kind, shape) if family.library == "transformers" else _timm_tower(family, shape)
    picked = resolve_layers(layers, shape.depth)
    model = (_truncate_hf if family.library == "transformers" else _truncate_timm)(model, max(picked) + 1)
    prefix = (1 if kind == "clip" else 0) if family.library == "transformers" else model.num_prefix_tokens
    return VisionBackbone(kind, model, shape, prefix, layers=picked)


def _family_weights(kind: str, model_id: str, role: str):
    from vlm_sweeps.models.weights import WeightSpec

    return WeightSpec(model_id, FAMILIES[kind].library, role)


@dataclass(frozen=True)
class BackboneKind:
    """One kind of vision backbone: `build(kind, id, image_size, shrink, pretrained, models_dir)`
    and `weights(kind, id, role)`, the WeightSpec of the local copy it loads at scale=full."""

    build: Callable[..., VisionBackbone]
    weights: Callable[..., Any]


def _open_clip_build(*args, **kwargs) -> VisionBackbone:  # (kind, id, image_size, shrink, pretrained, models_dir, layers=)
    import zlib

    from vlm_sweeps.models.open_clip_backbone import build_open_clip

    kind, model_id, _, _, pretrained, *_ = args
    if pretrained:
        return build_open_clip(*args, **kwargs)
    # Zoo models of one architecture differ only in their weights (DataComp, DFN, MetaCLIP ViT-L/14): at
    # tiny scale their random weights differ too, drawn from the job's seed and the id, so that a sweep
    # over them is not a sweep over a label. The job's own random stream is left where it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed((torch.initial_seed() + zlib.crc32(str(model_id).encode())) % 2**63)
        return build_open_clip(*args, **kwargs)


def _open_clip_weights(*args, **kwargs):
    from vlm_sweeps.models.open_clip_backbone import open_clip_weights

    return open_clip_weights(*args, **kwargs)


KINDS: dict[str, BackboneKind] = {
    **{kind: BackboneKind(_build_family, _family_weights) for kind in FAMILIES},
    "open_clip": BackboneKind(_open_clip_build, _open_clip_weights),
}


def weight_spec(kind: str, model_id: str, role: str):
    """What a backbone of `kind` and `model_id` loads at scale=full (models/weights.py)."""
    return KINDS[kind].weights(kind, model_id, role)


def build_backbone(kind: str, model_id: str, image_size: int, shrink, pretrained: bool, *,
                   models_dir: Path | None = None, layers: Sequence[Any] = ("-2",)) -> VisionBackbone:
    """Build one backbone of `kind` (see KINDS) at `image_size`: random weights of the kind's shape
    shrunk by `shrink`, or (`pretrained`) the checkpoint of `model_id` found locally
    (models/weights.py), with its shape read from the checkpoint. `layers`: the blocks whose outputs
    are its features (`features` axis: -2 the penultimate, the paper's; -1 the last; `middle`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown vision backbone kind {kind!r}; known: {', '.join(KINDS)}")
    return KINDS[kind].build(kind, model_id, image_size, shrink, pretrained, models_dir, layers=tuple(layers))


def check_same_grid(backbones: list[VisionBackbone]) -> None:
    grids = {f"{b.kind}:{getattr(b, 'model_id', i)}": b.shape.grid for i, b in enumerate(backbones)}
    if len(set(grids.values())) > 1:
        raise ValueError(f"fused backbones need the same patch grid to concatenate features, got {grids}")


def fused_dim(backbones: list[VisionBackbone]) -> int:
    return sum(b.embed_dim for b in backbones)
