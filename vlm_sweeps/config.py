"""Typed schema of the config tree (conf/): a typo or an unknown key fails at compose time.

Each design axis is one dataclass, filled by one option file of its group. Facts about model
families (architecture dimensions, normalisation constants) live in code beside their builders
(`models/vision.py`, `models/llm.py`), not here: an option names a family and an id, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class BackboneConf:
    kind: str = MISSING  # models/vision.py KINDS: clip | siglip | dinov2 | in1k | open_clip
    id: str = MISSING  # public id loaded at scale=full (HF hub id, timm name, or open_clip "ARCH:TAG")


@dataclass
class EncoderConf:
    name: str = MISSING
    image_size: int = MISSING  # native input resolution of the option (224, 336, 384)
    backbones: List[BackboneConf] = MISSING  # >1 = fused: features concatenated on channels


@dataclass
class ProjectorConf:
    """The connector (models/projector.py) and its visual-token budget."""

    name: str = MISSING
    kind: str = MISSING  # linear | mlp | resampler | pool | pixel_shuffle | cabstractor
    tokens: Optional[int] = None  # visual tokens of a compressing connector (None: a quarter of the patches)
    factor: int = 2  # pixel_shuffle: factor x factor patches per token
    depth: int = 2  # resampler: cross-attention blocks; cabstractor: residual blocks (half before, half after pooling)


@dataclass
class FeaturesConf:
    """Which vision blocks feed the projector (outputs concatenated on channels)."""

    name: str = MISSING
    layers: List[str] = MISSING  # block indices, negative from the end (-2: penultimate, the paper's), or `middle`


@dataclass
class ResizeConf:
    name: str = MISSING  # naive | letterbox | crop


@dataclass
class StageConf:
    name: str = MISSING  # align | finetune (hyperparameters per stage come from the scale)
    train: List[str] = MISSING  # parts that get gradients: encoder, projector, llm
    # learning-rate scale per trained part (e.g. {encoder: 0.1}: the vision tower at a tenth of the rate)
    lr_scale: Dict[str, float] = field(default_factory=dict)


@dataclass
class OptimizationConf:
    name: str = MISSING
    stages: List[StageConf] = MISSING


@dataclass
class LLMConf:
    """Any transformers causal LM (models/llm.py): its Hub id, transformers model type and the
    architecture fields of its config.json, which `scale=tiny` shrinks and `scale=full` checks."""

    name: str = MISSING
    id: str = MISSING  # HF hub id loaded at scale=full
    model_type: str = MISSING  # a transformers model type: llama, mistral, phi, qwen2, gemma2, phi3, ...
    config: Dict[str, Any] = MISSING  # hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, ...
    prompt: str = MISSING  # prompt format (models/prompts.py): base, vicuna, llama2_chat, llama3, chatml, gemma, ...
    tokenizer_size: Optional[int] = None  # len() of its tokenizer, for the dry run (None: config vocab_size)


@dataclass
class SyntheticConf:
    """Settings of the synthetic world (data/synthetic.py); the world is cached keyed by them."""

    seed: int = 0
    n_align: int = 1200  # caption pairs for the align stage
    n_finetune: int = 12000  # instruction records (several turns each) for the finetune stage
    n_eval: int = 300  # examples per synthetic benchmark
    max_objects: int = 3  # shapes per scene, 2..4 (also the largest count answer)
    turns: List[int] = field(default_factory=lambda: [3, 7])  # question turns per general record, [min, max]
    # Relative weights of the instruction task families in the finetune mix; 0 drops a family (the
    # same as conf/data/synthetic.yaml). Short-answer VQA and the families the default suite scores
    # dominate; box answers (~20 tokens each) are kept rare so they do not dominate a token-averaged
    # loss; reading (synth_text) is near the resolution limit. spatial and the planted families
    # (shape, margin, fine: data/synthetic.py) are records of one question about a scene of their own.
    tasks: Dict[str, float] = field(default_factory=lambda: {
        "vqa": 3.0, "count": 2.5, "pope": 1.5, "ref": 0.25, "text": 0.25, "text_only": 1.0,
        "spatial": 2.5, "shape": 2.5, "margin": 1.0, "fine": 2.0})


@dataclass
class DataConf:
    name: str = MISSING
    source: str = MISSING  # synthetic | llava
    # LLaVA-format files relative to paths.data_root (source=llava); ignored for synthetic.
    align_file: Optional[str] = None
    finetune_file: Optional[str] = None
    drop_text_only: bool = False  # remove records without an image (the "no language" ablation)
    synthetic: SyntheticConf = field(default_factory=SyntheticConf)


@dataclass
class StageHparams:
    lr: float = MISSING
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    batch_size: int = MISSING  # global batch
    max_grad_norm: float = 1.0
    # Samples per forward/backward; the global batch is reached by gradient accumulation (None: the
    # whole batch at once). Batches are then length-grouped so each micro-batch pads little.
    micro_batch_size: Optional[int] = None


@dataclass
class ShrinkConf:
    """Divisors that turn a family's real dimensions into tiny ones (same class, same proportions)."""

    width: int = 1
    depth: int = 1
    heads: int = 1
    resolution: int = 1  # image size divisor
    patch: int = 1  # patch size divisor


@dataclass
class ScaleConf:
    name: str = MISSING
    pretrained: bool = MISSING  # full: load public weights; tiny: random init of tiny shapes
    vision_shrink: ShrinkConf = field(default_factory=ShrinkConf)
    llm_shrink: ShrinkConf = field(default_factory=ShrinkConf)
    vocab_size: int = 512  # size of the in-process tokenizer (tiny only)
    max_seq_len: int = 2048
    precision: str = "fp32"  # fp32 | bf16
    grad_checkpointing: bool = False
    align: StageHparams = field(default_factory=StageHparams)
    finetune: StageHparams = field(default_factory=StageHparams)
    align_epochs: float = 1.0  # the paper always aligns for one epoch; the epochs axis is finetune


@dataclass
class BenchmarksConf:
    name: str = MISSING
    suite: List[str] = MISSING
    # slim subset (None: all): vlm-evaluation's slim-N sets, N examples per benchmark, or per split where
    # its slim sets are (POPE, TallyQA, AI2D, OCID-Ref); VSR always whole
    max_examples: Optional[int] = None
    batch_size: int = 32


@dataclass
class TrackingConf:
    name: str = MISSING
    # None: $MLFLOW_TRACKING_URI if set, else sqlite:///<working dir>/mlflow.db
    uri: Optional[str] = None
    experiment: str = "vlm_sweeps"
    # Talk to the store from a process of the job's own (vlm_sweeps/tracking_process.py): MLflow's
    # import and store writes run beside the job's work. false: in the job's process.
    process: bool = True
    # Seconds between a job's heartbeats on its run (tag vlm_sweeps.heartbeat): a RUNNING run whose
    # heartbeat stopped is dead (vlm_sweeps/liveness.py). 0: no heartbeat thread.
    heartbeat_s: float = 30.0
    # A tracking server's write is retried `write_retries` times (1, 2, 4 ... s apart), each try waiting
    # `write_timeout_s` for an answer; once one is lost for good the job fails at once (the server is
    # gone: its run cannot record the rest) instead of retrying every queued write for minutes.
    write_retries: int = 3
    write_timeout_s: float = 30.0


@dataclass
class EvalConf:
    blind: bool = False  # control: every image replaced by a blank one (language prior alone)
    # Skip benchmarks whose files are missing (listed in the tag vlm_sweeps.skipped_benchmarks)
    # instead of failing the evaluation.
    continue_on_missing: bool = False
    cache: bool = True  # reuse predictions under <paths.cache_dir>/predictions/ (eval/cache.py)
    # `python -m vlm_sweeps.evaluate` only: the finished MLflow run to evaluate and log into, and/or
    # a checkpoint file (default: <paths.runs_dir>/<signature>/checkpoint.pt of that run).
    run_id: Optional[str] = None
    checkpoint: Optional[str] = None
    # `python -m vlm_sweeps.evaluate` only: which harness evaluates the run: `suite` (benchmarks.suite,
    # our scorers) or `lmms_eval` (lmms-eval's tasks `eval.tasks`, logged as lmms/<task>/<metric>),
    # with task YAMLs of one's own under `eval.include_path` (lmms-eval's --include_path)
    harness: str = "suite"
    tasks: List[str] = field(default_factory=list)
    include_path: Optional[str] = None


@dataclass
class StudyConf:
    """Which study a job belongs to (`+study=NAME`, conf/study/; expanded by hydra/sweeper=ablation).
    Not part of a job's signature: the same model trained for two studies is one job."""

    name: Optional[str] = None  # tag vlm_sweeps.study
    experiment: Optional[str] = None  # this job's experiment id, e.g. the paper's registry id (tag vlm_sweeps.experiment)
    section: Optional[str] = None  # its section of the study, e.g. "4.2" (tag vlm_sweeps.section)
    seeds: int = 1  # replicates: each configuration with seeds seed, seed+1, ... (hydra/sweeper=ablation)
    baseline: List[str] = field(default_factory=list)  # overrides that make the study's controlled baseline
    experiments: List[Dict[str, Any]] = field(default_factory=list)  # [{id, section, overrides: [...]}]


@dataclass
class PathsConf:
    root: str = ".vlm_sweeps"  # relative to the working directory; runs/ and cache/ live here
    cache_dir: str = "${paths.root}/cache"
    runs_dir: str = "${paths.root}/runs"
    data_root: str = "data"  # real datasets (scale=full): LLaVA files and benchmark files
    models_dir: Optional[str] = None  # local pretrained weights (scale=full)


@dataclass
class RunConf:
    device: str = "auto"  # auto | cpu | cuda
    num_workers: int = 0
    log_every: int = 10  # optimizer steps between training-curve points
    progress: bool = True  # progress bars on a terminal (tqdm)
    # where no bar is shown (output to a file or pipe: SLURM, the local launcher's logs; or progress=false),
    # a training progress line (step/total, loss, samples/s, ETA) after the first step, then every this
    # many seconds or `progress_every_steps` optimizer steps, whichever comes first (0: not by that measure)
    progress_every_s: float = 30.0
    progress_every_steps: int = 0
    # torch intra-op threads; None: the CPUs this job may use (affinity, cgroup quota,
    # SLURM_CPUS_PER_TASK) shared among the vlm_sweeps jobs running on this host (cpu_share.py)
    threads: Optional[int] = None
    # A second process with the same signature (the same command twice, two resumes of one run)
    # waits until the first one ends, then skips or resumes; false: it exits at once, naming the owner.
    wait_for_owner: bool = True
    checkpoint_every: int = 100  # optimizer steps between resumable checkpoints (0: only at stage ends)
    fail_at_step: Optional[int] = None  # fault injection: raise at this global step (resilience tests)
    dry_run: bool = False  # print parameter counts, memory and step-time estimates; load and train nothing
    check_images: bool = True  # real mixes: every image file must exist before the model loads
    # Frozen-feature cache (vlm_sweeps/features.py): a frozen encoder's features per image, computed
    # once, reused across epochs and runs; results are equal with it on or off.
    feature_cache: bool = True
    feature_cache_max_gb: float = 50.0  # least-recently-used entries are evicted beyond this
    feature_cache_dir: Optional[str] = None  # None: <paths.cache_dir>/features
    # Tokenized records shared by the jobs with the same records file, tokenizer, prompt format and
    # sequence budget, under <paths.cache_dir>/tokens (data/token_cache.py)
    token_cache: bool = True
    # Jobs with the same align signature (identity.align_signature) share one align stage: the first
    # trains it into <paths.runs_dir>/align-<align signature>/align.pt, the others load it.
    share_align: bool = True
    # Data parallelism over the job's processes (torchrun, or SLURM tasks: one per GPU): auto | none |
    # ddp | fsdp. auto = fsdp with several processes; any mode trains as none with one process.
    # Results equal one process's within float tolerance, hence not part of the signature (`run`).
    parallel: str = "auto"


@dataclass
class Config:
    encoder: EncoderConf = MISSING
    projector: ProjectorConf = MISSING
    features: FeaturesConf = MISSING
    resize: ResizeConf = MISSING
    optimization: OptimizationConf = MISSING
    llm: LLMConf = MISSING
    data: DataConf = MISSING
    scale: ScaleConf = MISSING
    benchmarks: BenchmarksConf = MISSING
    tracking: TrackingConf = MISSING
    epochs: float = 1.0  # finetune epochs, fractional allowed (1.5 = one and a half passes)
    seed: int = 7
    eval: EvalConf = field(default_factory=EvalConf)
    study: StudyConf = field(default_factory=StudyConf)
    paths: PathsConf = field(default_factory=PathsConf)
    run: RunConf = field(default_factory=RunConf)
    # Keys that do not change a job's result: left out of its signature (identity.py).
    identity_exclude: List[str] = field(
        default_factory=lambda: ["paths", "tracking", "run", "identity_exclude", "study",
                                 # memory layout (gradients equal the whole batch's)
                                 "scale.align.micro_batch_size", "scale.finetune.micro_batch_size",
                                 # what only evaluation reads: a signature names a trained model, and a
                                 # re-run evaluates what its FINISHED run lacks (eval/pending.py)
                                 "benchmarks", "eval"]
    )


# Schemas of the axis groups (naming.AXIS_TABLE). A group of the table with no schema here is an
# open mapping: its option files compose as written (a new axis needs no code before it has one).
GROUP_SCHEMAS: Dict[str, Any] = {"encoder": EncoderConf, "projector": ProjectorConf, "features": FeaturesConf,
                                 "resize": ResizeConf, "optimization": OptimizationConf,
                                 "llm": LLMConf, "data": DataConf, "scale": ScaleConf}


def root_schema() -> type:
    """`Config`, plus one open field per group axis of the axis table that Config does not name."""
    from dataclasses import fields as fields_of
    from dataclasses import make_dataclass

    from vlm_sweeps import naming

    known = {f.name for f in fields_of(Config)}
    extra = [(name, Dict[str, Any], field(default=MISSING)) for name in naming.group_axes() if name not in known]
    return make_dataclass("Config", extra, bases=(Config,)) if extra else Config


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore: `base_config` is the root of conf/config.yaml."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=root_schema())


def to_container(cfg: Any) -> dict:
    """The resolved config as plain python containers."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
