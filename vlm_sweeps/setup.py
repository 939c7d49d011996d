"""What a job builds before training: the synthetic world and tokenizer (shared caches), the model
from its components (components.py), the image transforms and the prompt format."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vlm_sweeps import components, cpu_share, validate
from vlm_sweeps.eval import registry
from vlm_sweeps.train import distributed


def device_of(cfg: Any) -> torch.device:
    if cfg.run.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.run.device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Setup:
    """Everything a job builds before training: data files, tokenizer, model, transforms."""

    model: Any
    tokenizer: Any
    fmt: Any
    transforms: list
    device: torch.device
    world: Path | None
    files: dict[str, Path]
    data_root: Path
    autocast: torch.dtype | None
    components: components.Components | None = None  # what the config builds (components.py)
    records: dict[str, list] = field(default_factory=dict)  # stage -> records already read (check_data)
    feature_cache: dict[str, Any] = field(default_factory=dict)  # stage -> its feature-cache CacheStats
    dist: distributed.Distributed = field(default_factory=distributed.Distributed)  # the job's processes


def setup(cfg: Any, dist: distributed.Distributed | None = None) -> Setup:
    from vlm_sweeps.data.synthetic import ensure_world
    from vlm_sweeps.models.builder import build_vlm, image_transforms
    from vlm_sweeps.data.checks import llava_files
    from vlm_sweeps.models.prompts import get_format

    cpu_share.start(cfg.run.threads)  # this job's share of the host's CPUs, or run.threads
    cache_dir = Path(cfg.paths.cache_dir).resolve()
    data_root = Path(cfg.paths.data_root).resolve()
    # The synthetic world is built once per settings and shared by every job that uses it.
    needs_world = cfg.data.source == "synthetic" or any(registry.get(b).synthetic for b in cfg.benchmarks.suite)
    dist = dist or distributed.Distributed(device=device_of(cfg))
    with dist.main_first():  # rank 0 builds the shared caches, the other ranks then read them
        world = ensure_world(cache_dir, cfg.data.synthetic) if needs_world else None
        tokenizer = load_tokenizer(cfg, world, cache_dir)
    if cfg.data.source == "synthetic":
        files = {"align": world / "align.json", "finetune": world / "finetune.json"}
    else:
        files = llava_files(cfg)
    parts = components.of(cfg)
    seed_everything(cfg.seed)  # the same initial weights on every rank
    model = build_vlm(parts.model, tokenizer).to(dist.device)
    return Setup(model, tokenizer, get_format(parts.prompt), image_transforms(parts.resize, model), dist.device,
                 world, files, data_root, torch.bfloat16 if parts.model.precision == "bf16" else None,
                 components=parts, dist=dist)


def load_tokenizer(cfg: Any, world: Path | None, cache_dir: Path):
    """Tiny: the in-process tokenizer trained on the synthetic corpus. Full: the LLM's own from its
    local checkpoint folder, with a pad token added (the embeddings are resized to match in
    models/llm.py)."""
    if not cfg.scale.pretrained:
        from vlm_sweeps.models.tokenizer import cached_tokenizer

        if world is None:
            raise validate.ConfigError([f"scale={cfg.scale.name} trains its tokenizer on the synthetic corpus; "
                                        "use data=synthetic (or scale=full for real data)"])
        return cached_tokenizer(world / "corpus.txt", cfg.scale.vocab_size, cache_dir)
    from vlm_sweeps.models.tokenizer import load_pretrained_tokenizer
    from vlm_sweeps.models.weights import models_dir_of

    return load_pretrained_tokenizer(cfg.llm.id, models_dir_of(cfg.paths.models_dir), cfg.scale.max_seq_len)

