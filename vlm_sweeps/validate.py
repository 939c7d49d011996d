"""Cross-axis checks, run before anything heavy loads. Every problem is collected into one error
that says what is wrong and what the valid choices are."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))


def problems(cfg: Any, world_size: int = 1) -> list[str]:
    """Every problem of `cfg`, for a job of `world_size` processes (train/distributed.py)."""
    from vlm_sweeps.data.transforms import STRATEGIES
    from vlm_sweeps.eval import registry
    from vlm_sweeps.models.llm import ARCHS
    from vlm_sweeps.models.projector import Projector
    from vlm_sweeps.models.prompts import FORMATS
    from vlm_sweeps.models.vision import FAMILIES
    from vlm_sweeps.train.distributed import problems as parallel_problems
    from vlm_sweeps.train.stages import PARTS

    found: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            found.append(message)

    need(cfg.epochs > 0, f"epochs={cfg.epochs}: must be a positive number of finetune passes (e.g. 1, 1.5, 2)")
    need(len(cfg.encoder.backbones) >= 1, f"encoder={cfg.encoder.name}: lists no backbone")
    for b in cfg.encoder.backbones:
        need(b.kind in FAMILIES, f"encoder={cfg.encoder.name}: unknown backbone kind {b.kind!r}; known: "
             f"{', '.join(FAMILIES)}")
    need(cfg.encoder.projector in Projector.KINDS, f"encoder.projector={cfg.encoder.projector!r}; known: "
         f"{', '.join(Projector.KINDS)}")
    need(cfg.resize.name in STRATEGIES, f"resize={cfg.resize.name!r}; known: {', '.join(STRATEGIES)}")
    need(cfg.llm.arch in ARCHS, f"llm={cfg.llm.name}: unknown arch {cfg.llm.arch!r}; known: {', '.join(ARCHS)}")
    need(cfg.llm.prompt in FORMATS, f"llm={cfg.llm.name}: unknown prompt format {cfg.llm.prompt!r}; known: "
         f"{', '.join(FORMATS)}")
    names = [s.name for s in cfg.optimization.stages]
    need(names in (["finetune"], ["align", "finetune"]), f"optimization={cfg.optimization.name}: stages {names}; "
         "a plan is [finetune] or [align, finetune]")
    for stage in cfg.optimization.stages:
        bad = sorted(set(stage.train) - set(PARTS))
        need(not bad, f"optimization={cfg.optimization.name}: stage {stage.name} trains unknown parts {bad}; "
             f"known: {', '.join(PARTS)}")
    need(2 <= cfg.data.synthetic.max_objects <= 4, f"data.synthetic.max_objects={cfg.data.synthetic.max_objects}: "
         "must be 2..4 (spatial questions need two objects; counts are answered 0..4)")
    need(cfg.data.source in ("synthetic", "llava"), f"data={cfg.data.name}: source {cfg.data.source!r}; "
         "known: synthetic, llava")
    if cfg.data.source == "llava" and not cfg.run.dry_run:
        root = Path(cfg.paths.data_root)
        files = [cfg.data.finetune_file] + ([cfg.data.align_file] if "align" in names else [])
        for rel in files:
            need(rel is not None and (root / rel).is_file(),
                 f"data={cfg.data.name}: {root / str(rel)} not found; put the LLaVA files under paths.data_root "
                 f"(now {root.resolve()}) or choose a synthetic mix (data=synthetic)")
    known = registry.names()
    for name in cfg.benchmarks.suite:
        need(name in known, f"benchmarks: unknown benchmark {name!r}; known: {', '.join(known)}")
    need(cfg.scale.precision in ("fp32", "bf16"), f"scale.precision={cfg.scale.precision!r}; known: fp32, bf16")
    need(cfg.run.device in ("auto", "cpu", "cuda"), f"run.device={cfg.run.device!r}; known: auto, cpu, cuda")
    for stage in ("align", "finetune"):
        micro = cfg.scale[stage].micro_batch_size
        need(micro is None or micro >= 1, f"scale.{stage}.micro_batch_size={micro}: must be >= 1 (or null: the "
             "whole batch at once)")
    found += parallel_problems(cfg.run.parallel, world_size,
                               {stage: cfg.scale[stage].batch_size for stage in names if stage in ("align", "finetune")})
    if cfg.scale.pretrained and not cfg.run.dry_run:
        found += _missing_weights(cfg)
    return found


def _missing_weights(cfg: Any) -> list[str]:
    """One problem per pretrained id with no local copy, with the command that fetches it."""
    from vlm_sweeps.models import weights
    from vlm_sweeps.models.llm import ARCHS
    from vlm_sweeps.models.vision import FAMILIES

    if cfg.llm.arch not in ARCHS or any(b.kind not in FAMILIES for b in cfg.encoder.backbones):
        return []  # already reported above
    absent = weights.missing(cfg)
    if not absent:
        return []
    return [f"scale={cfg.scale.name}: " + line
            for line in weights.describe_missing(absent, weights.models_dir_of(cfg.paths.models_dir))]


def check(cfg: Any, world_size: int = 1) -> None:
    found = problems(cfg, world_size)
    if found:
        raise ConfigError(found)
