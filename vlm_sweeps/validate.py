"""Cross-axis checks, run before anything heavy loads. Every problem is collected into one error
that says what is wrong and what the valid choices are."""

from __future__ import annotations

import math
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
    from vlm_sweeps.components import llm_spec
    from vlm_sweeps.models.llm import spec_problems
    from vlm_sweeps.models.projector import Projector
    from vlm_sweeps.models.prompts import FORMATS
    from vlm_sweeps.models.vision import KINDS, weight_spec
    from vlm_sweeps.train.distributed import problems as parallel_problems
    from vlm_sweeps.train.stages import PARTS

    found: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            found.append(message)

    need("seeds" not in cfg, "+seeds=N: replicates are a sweep: run with -m (e.g. `python -m vlm_sweeps.run -m "
         "+seeds=3`), which runs seed, seed+1, ..., seed+N-1")
    found.extend(_unknown_keys(cfg))
    need(_positive(cfg.epochs), f"epochs={cfg.epochs}: must be a positive finite number of finetune passes "
         "(e.g. epochs=1, 1.5, 2)")
    need(len(cfg.encoder.backbones) >= 1, f"encoder={cfg.encoder.name}: lists no backbone")
    for b in cfg.encoder.backbones:
        need(b.kind in KINDS, f"encoder={cfg.encoder.name}: unknown backbone kind {b.kind!r}; known: "
             f"{', '.join(KINDS)}")
        if b.kind in KINDS:
            try:  # an id the kind cannot resolve (an open_clip ARCH:TAG not in the zoo)
                weight_spec(b.kind, b.id, f"encoder={cfg.encoder.name}")
            except ValueError as err:
                found.append(f"encoder={cfg.encoder.name}: {err}")
    need(cfg.projector.kind in Projector.KINDS, f"projector={cfg.projector.name}: kind {cfg.projector.kind!r}; known: "
         f"{', '.join(Projector.KINDS)}")
    found += _projector_problems(cfg.encoder, cfg.projector)
    found += _features_problems(cfg.features)
    need(cfg.resize.name in STRATEGIES, f"resize={cfg.resize.name!r}; known: {', '.join(STRATEGIES)}")
    found += spec_problems(llm_spec(cfg.llm))
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
    for stage in dict.fromkeys(names):  # only the stages the plan trains: an unused stage's values are never read
        if stage in ("align", "finetune"):
            found += _hparam_problems(f"scale.{stage}", cfg.scale[stage])
    if "align" in names:
        need(_positive(cfg.scale.align_epochs), f"scale.align_epochs={cfg.scale.align_epochs}: must be a positive "
             "finite number of align passes (e.g. scale.align_epochs=1)")
    found += _size_problems(cfg, names, registry)
    found += parallel_problems(cfg.run.parallel, world_size,
                               {stage: cfg.scale[stage].batch_size for stage in names if stage in ("align", "finetune")})
    if cfg.scale.pretrained and not cfg.run.dry_run:
        found += _missing_weights(cfg)
    return found


def _unknown_keys(cfg: Any) -> list[str]:
    """Keys a `+key=value` override added where the schema has no such setting (the root, run,
    tracking, eval, paths, study): nothing reads them, so a misspelled `+run.nmae=x` would be ignored
    in silence. (The design axes' groups stay open: an option file may carry keys of its own.)"""
    import difflib
    from dataclasses import fields

    from vlm_sweeps.config import EvalConf, PathsConf, RunConf, StudyConf, TrackingConf, root_schema

    found = []
    nodes = {"": root_schema(), "run": RunConf, "tracking": TrackingConf, "eval": EvalConf, "paths": PathsConf,
             "study": StudyConf}
    for node, schema in nodes.items():
        tree = cfg if not node else cfg.get(node)
        if not hasattr(tree, "keys"):
            continue
        known = {f.name for f in fields(schema)} | ({"seeds", "hydra"} if not node else set())
        for key in tree.keys():
            if key not in known:
                name = f"{node}.{key}" if node else str(key)
                close = difflib.get_close_matches(str(key), sorted(known), n=1)
                hint = f"did you mean {node + '.' if node else ''}{close[0]}? " if close else ""
                found.append(f"+{name}: no such setting, so nothing would read it; {hint}the settings of "
                             f"{node or 'the root'} are {', '.join(sorted(known - {'hydra'}))}")
    return found


def _positive(x: Any) -> bool:
    """A positive finite number (`inf` and `nan` would only fail, or hang, once a run started)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _whole(x: Any, least: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= least


def _hparam_problems(key: str, h: Any) -> list[str]:
    """The optimizer hyperparameters of one stage (`key` = scale.align | scale.finetune)."""
    found = []
    if not _whole(h.batch_size, 1):
        found.append(f"{key}.batch_size={h.batch_size}: must be an integer >= 1 (samples per optimizer step), "
                     f"e.g. {key}.batch_size=16")
    if not _positive(h.lr):
        found.append(f"{key}.lr={h.lr}: must be a positive finite learning rate, e.g. {key}.lr=2e-5")
    if not (isinstance(h.weight_decay, (int, float)) and math.isfinite(h.weight_decay) and h.weight_decay >= 0):
        found.append(f"{key}.weight_decay={h.weight_decay}: must be a finite number >= 0 (0 turns it off)")
    if not (isinstance(h.warmup_ratio, (int, float)) and 0 <= h.warmup_ratio < 1):
        found.append(f"{key}.warmup_ratio={h.warmup_ratio}: must be in [0, 1) (the fraction of the stage's steps "
                     "spent warming up; 0: no warmup), e.g. 0.03")
    if not _positive(h.max_grad_norm):
        found.append(f"{key}.max_grad_norm={h.max_grad_norm}: must be a positive finite gradient-norm clip, "
                     f"e.g. {key}.max_grad_norm=1.0")
    return found


def _projector_problems(encoder: Any, projector: Any) -> list[str]:
    """The explicit Prismatic MLPs fit one kind of encoder each (`mlp` picks the right one); the
    compressing connectors need a sensible budget."""
    n, kind, where = len(encoder.backbones), projector.kind, f"projector={projector.name}"
    found = []
    if kind == "fused-gelu-mlp" and n < 2:
        found.append(f"{where}: fused-gelu-mlp needs >= 2 backbones (a fused encoder), but encoder={encoder.name} has "
                     f"{n}; use projector=mlp (the MLP that fits the encoder), or a fused encoder (dinosiglip, dinoclip)")
    if kind == "gelu-mlp" and n != 1:
        found.append(f"{where}: gelu-mlp takes one backbone, but encoder={encoder.name} fuses {n}; use projector=mlp "
                     "(the fused MLP for a fused encoder), or a single-backbone encoder (clip, siglip, dinov2, in1k)")
    tokens = projector.tokens
    if tokens is not None and not _whole(tokens, 1):
        found.append(f"{where}: projector.tokens={tokens}: must be an integer >= 1 (visual tokens), or null")
    elif tokens is not None and kind in ("pool", "cabstractor") and math.isqrt(int(tokens)) ** 2 != int(tokens):
        side = math.isqrt(int(tokens))
        found.append(f"{where}: projector.tokens={tokens}: {kind} keeps a square grid of tokens; use a square number "
                     f"(e.g. {side * side} or {(side + 1) ** 2})")
    if not _whole(projector.factor, 1):
        found.append(f"{where}: projector.factor={projector.factor}: must be an integer >= 1")
    if not _whole(projector.depth, 1):
        found.append(f"{where}: projector.depth={projector.depth}: must be an integer >= 1")
    return found


def _features_problems(features: Any) -> list[str]:
    from vlm_sweeps.models.vision import LAYER_CHOICES

    bad = [str(x) for x in features.layers if str(x).strip() != "middle" and not str(x).strip().lstrip("-").isdigit()]
    if not list(features.layers) or bad:
        return [f"features={features.name}: layers {list(features.layers)}: each must be {LAYER_CHOICES}"]
    return []


def _size_problems(cfg: Any, names: list[str], registry: Any) -> list[str]:
    """Counts that would make an empty epoch, an empty benchmark or a step loop that never logs."""
    found = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            found.append(message)

    b = cfg.benchmarks
    need(b.max_examples is None or _whole(b.max_examples, 1),
         f"benchmarks.max_examples={b.max_examples}: must be >= 1 (examples per benchmark) or null (all of them)")
    need(_whole(b.batch_size, 1), f"benchmarks.batch_size={b.batch_size}: must be an integer >= 1, e.g. "
         "benchmarks.batch_size=16")
    syn = cfg.data.synthetic
    if cfg.data.source == "synthetic":
        sizes = (["n_align"] if "align" in names else []) + ["n_finetune"]
        for key in sizes:
            need(_whole(syn[key], 1), f"data.synthetic.{key}={syn[key]}: must be >= 1 (records of the synthetic "
                 f"world; 0 would make an empty epoch), e.g. data.synthetic.{key}=96")
    known = set(registry.names())
    if any(name in known and registry.get(name).synthetic for name in b.suite):
        need(_whole(syn.n_eval, 1), f"data.synthetic.n_eval={syn.n_eval}: must be >= 1 (examples per synthetic "
             "benchmark of the suite), e.g. data.synthetic.n_eval=12")
    run = cfg.run
    need(_whole(run.checkpoint_every, 0), f"run.checkpoint_every={run.checkpoint_every}: must be >= 0 (optimizer "
         "steps between checkpoints; 0: only at stage ends)")
    need(_whole(run.log_every, 1), f"run.log_every={run.log_every}: must be >= 1 (optimizer steps between "
         "training-curve points), e.g. run.log_every=10")
    need(run.progress_every_s == 0 or _positive(run.progress_every_s), f"run.progress_every_s="
         f"{run.progress_every_s}: must be >= 0 (seconds between training progress lines where no progress bar "
         "is shown; 0: not by time), e.g. run.progress_every_s=30")
    need(_whole(run.progress_every_steps, 0), f"run.progress_every_steps={run.progress_every_steps}: must be an "
         "integer >= 0 (optimizer steps between training progress lines; 0: by time only)")
    need(run.threads is None or _whole(run.threads, 1), f"run.threads={run.threads}: must be >= 1 or null "
         "(this job's share of the host's CPUs, vlm_sweeps/cpu_share.py)")
    t = cfg.tracking
    need(_whole(t.write_retries, 0), f"tracking.write_retries={t.write_retries}: must be >= 0 (retries of a "
         "tracking server's write before the job gives up on the store), e.g. tracking.write_retries=3")
    need(_positive(t.write_timeout_s), f"tracking.write_timeout_s={t.write_timeout_s}: must be > 0 (seconds a "
         "write to a tracking server waits for its answer), e.g. tracking.write_timeout_s=30")
    return found


def _missing_weights(cfg: Any) -> list[str]:
    """One problem per pretrained id with no local copy, with the command that fetches it."""
    from vlm_sweeps.components import llm_spec
    from vlm_sweeps.models import weights
    from vlm_sweeps.models.llm import spec_problems
    from vlm_sweeps.models.vision import KINDS

    if spec_problems(llm_spec(cfg.llm)) or any(b.kind not in KINDS for b in cfg.encoder.backbones):
        return []  # already reported above
    try:
        from vlm_sweeps.models.vision import weight_spec

        for b in cfg.encoder.backbones:
            weight_spec(b.kind, b.id, f"encoder={cfg.encoder.name}")
    except ValueError:
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
