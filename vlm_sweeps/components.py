"""The one boundary from config to components: `of(cfg)` turns a composed config into typed,
frozen specs (encoder backbones, projector, LLM, transforms, stage plan, benchmark suite). The
builders below it (models/, train/, eval/) take these specs and never read `cfg`.

A new option of a known kind is one YAML file (its fields land in a spec here); a new kind is one
builder (models/vision.py KINDS for backbones; any transformers model type for LLMs) plus its option
files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlm_sweeps.models.llm import LLMSpec


@dataclass(frozen=True)
class Shrink:
    """Divisors that turn a family's real dimensions into tiny ones (all 1: the real model)."""

    width: int = 1
    depth: int = 1
    heads: int = 1
    resolution: int = 1
    patch: int = 1


@dataclass(frozen=True)
class BackboneSpec:
    kind: str  # models/vision.py KINDS
    id: str  # HF hub id, timm name or open_clip "ARCH:TAG"


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    image_size: int
    backbones: tuple[BackboneSpec, ...]
    layers: tuple[str, ...] = ("-2",)  # the `features` axis: blocks whose outputs feed the projector


@dataclass(frozen=True)
class ProjectorSpec:
    kind: str  # models/projector.py KINDS
    tokens: int | None = None
    factor: int = 2
    depth: int = 2


@dataclass(frozen=True)
class ModelSpec:
    """Everything that builds the VLM (models/builder.py)."""

    encoder: EncoderSpec
    projector: ProjectorSpec
    llm: LLMSpec
    vision_shrink: Shrink
    llm_shrink: Shrink
    max_seq_len: int
    pretrained: bool
    precision: str  # fp32 | bf16
    grad_checkpointing: bool
    models_dir: Path | None  # local pretrained weights (models/weights.py), pretrained only


@dataclass(frozen=True)
class Hparams:
    lr: float
    weight_decay: float
    warmup_ratio: float
    batch_size: int
    max_grad_norm: float
    micro_batch_size: int | None


@dataclass(frozen=True)
class Stage:
    """One stage of the plan: which parts train, with which hyperparameters, for how many passes."""

    name: str  # align | finetune
    train: tuple[str, ...]
    hparams: Hparams
    lr_scale: tuple[tuple[str, float], ...]  # (part, scale of the stage's learning rate); parts not named: 1
    epochs: float
    seed: int  # its batch order: the job's seed + the stage's index


@dataclass(frozen=True)
class Suite:
    benchmarks: tuple[str, ...]
    max_examples: int | None
    batch_size: int
    blind: bool


@dataclass(frozen=True)
class Components:
    model: ModelSpec
    resize: str  # data/transforms.py STRATEGIES
    prompt: str  # models/prompts.py FORMATS
    plan: tuple[Stage, ...]
    suite: Suite


def _shrink(node: Any) -> Shrink:
    return Shrink(**{k: int(node[k]) for k in ("width", "depth", "heads", "resolution", "patch")})


def llm_spec(llm: Any) -> LLMSpec:
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(llm.config, resolve=True) if not isinstance(llm.config, dict) else dict(llm.config)
    return LLMSpec(name=str(llm.name), id=str(llm.id), model_type=str(llm.model_type), config=config,
                   tokenizer_size=llm.get("tokenizer_size"))


def model_spec(cfg: Any) -> ModelSpec:
    from vlm_sweeps.models.weights import models_dir_of

    scale, enc = cfg.scale, cfg.encoder
    encoder = EncoderSpec(str(enc.name), int(enc.image_size),
                          tuple(BackboneSpec(str(b.kind), str(b.id)) for b in enc.backbones),
                          tuple(str(x) for x in cfg.features.layers))
    p = cfg.projector
    projector = ProjectorSpec(str(p.kind), None if p.tokens is None else int(p.tokens), int(p.factor), int(p.depth))
    return ModelSpec(encoder=encoder, projector=projector, llm=llm_spec(cfg.llm), vision_shrink=_shrink(scale.vision_shrink),
                     llm_shrink=_shrink(scale.llm_shrink), max_seq_len=int(scale.max_seq_len),
                     pretrained=bool(scale.pretrained), precision=str(scale.precision),
                     grad_checkpointing=bool(scale.get("grad_checkpointing", False)),
                     models_dir=models_dir_of(cfg.paths.models_dir) if scale.pretrained else None)


def plan_of(cfg: Any) -> tuple[Stage, ...]:
    stages = []
    for index, stage in enumerate(cfg.optimization.stages):
        hp = cfg.scale[stage.name]
        hparams = Hparams(float(hp.lr), float(hp.weight_decay), float(hp.warmup_ratio), int(hp.batch_size),
                          float(hp.max_grad_norm), None if hp.micro_batch_size is None else int(hp.micro_batch_size))
        # the epochs axis is the finetune stage's; the paper always aligns for one epoch
        epochs = float(cfg.epochs if stage.name == "finetune" else cfg.scale.align_epochs)
        scales = tuple(sorted((str(k), float(v)) for k, v in stage.get("lr_scale", {}).items()))
        stages.append(Stage(str(stage.name), tuple(stage.train), hparams, scales, epochs, int(cfg.seed) + index))
    return tuple(stages)


def of(cfg: Any) -> Components:
    """The typed components of a composed (and validated) config."""
    b = cfg.benchmarks
    suite = Suite(tuple(b.suite), None if b.max_examples is None else int(b.max_examples), int(b.batch_size),
                  bool(cfg.eval.blind))
    return Components(model=model_spec(cfg), resize=str(cfg.resize.name), prompt=str(cfg.llm.prompt),
                      plan=plan_of(cfg), suite=suite)
