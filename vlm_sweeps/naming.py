"""Names shared by every layer: what a job writes to the tracking store and what analysis reads.

The tracking store is the only interface between `vlm_sweeps` (writer) and `analysis` (reader),
so these names are a contract: change them and old stores stop being readable.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Axis:
    """One row of the axis table. `group`: a config group whose value is its option's `name`;
    otherwise a top-level number of the config, rendered by str(float) ("1.0", "1.5") or, for
    `integer` ones, str(int). `design`: a design axis of a study (params, run names, analysis,
    the status view) or a context param (logged beside them, not compared)."""

    name: str
    group: bool = True
    design: bool = True
    integer: bool = False


# THE AXIS TABLE: the single source of truth for which config entries are axes. Params (top-level
# MLflow params with exactly these keys), run names, `job.axes_of`, the every-option test, the
# status view and analysis read it. A new axis is one row here plus its config group (conf/<name>/);
# identity needs no row: it hashes everything but a denylist of run-time keys (identity.py).
AXIS_TABLE: tuple[Axis, ...] = (
    Axis("encoder"), Axis("resize"), Axis("optimization"), Axis("llm"), Axis("epochs", group=False), Axis("data"),
    Axis("projector"), Axis("features"),
    # context: scale of the run and its seed
    Axis("scale", design=False), Axis("seed", group=False, design=False, integer=True),
)


def design_axes() -> tuple[str, ...]:
    """The design axes, in the table's order."""
    return tuple(a.name for a in AXIS_TABLE if a.design)


def context_params() -> tuple[str, ...]:
    return tuple(a.name for a in AXIS_TABLE if not a.design)


def group_axes() -> tuple[str, ...]:
    """Axes that are config groups (conf/<name>/*.yaml), design and context."""
    return tuple(a.name for a in AXIS_TABLE if a.group)


# Read at import; code that must follow a changed table (tests that add an axis) calls the functions.
AXES: tuple[str, ...] = design_axes()
CONTEXT_PARAMS: tuple[str, ...] = context_params()

TAG_PREFIX = "vlm_sweeps."
TAG_SIGNATURE = TAG_PREFIX + "signature"  # hash of the resolved config (see identity.py)
TAG_SWEEP_ID = TAG_PREFIX + "sweep_id"  # one id per `-m` invocation
TAG_KIND = TAG_PREFIX + "kind"  # "job" for a training run, "sweep" for a sweep's parent run
TAG_STATUS = TAG_PREFIX + "status"  # mirrors the job's life: running, interrupted, finished, failed, superseded
TAG_ERROR = TAG_PREFIX + "error"  # the exception message of a failed job
TAG_GIT_COMMIT = TAG_PREFIX + "git_commit"  # of the code the job ran (its sweep's snapshot: code_version.py)
TAG_GIT_DIRTY = TAG_PREFIX + "git_dirty"  # "true": it differed from that commit (artifact CODE_DIFF)
TAG_CODE_SNAPSHOT = TAG_PREFIX + "code_snapshot"  # the snapshot's folder, when the job ran from one
CODE_DIFF = "code/diff.patch"  # artifact: `git diff HEAD` of the code the job ran, untracked files named
TAG_TOTAL_STEPS = TAG_PREFIX + "total_steps"  # optimizer steps of the whole stage plan
TAG_SLURM_JOB_ID = TAG_PREFIX + "slurm_job_id"
TAG_SKIPPED_BENCHMARKS = TAG_PREFIX + "skipped_benchmarks"  # benchmarks whose files were missing
TAG_FEATURE_CACHE = TAG_PREFIX + "feature_cache"  # .<stage>: "hits=.. misses=.. written=.. evicted=.." (features.py)
# Two-stage runs: the hash of what their align stage depends on (identity.align_signature), and
# "trained" (the align stage ran in this job) or "reused" (loaded from the shared align checkpoint).
TAG_ALIGN_SIGNATURE = TAG_PREFIX + "align_signature"
TAG_ALIGN_SOURCE = TAG_PREFIX + "align_source"
# Image positions in the LLM's sequence (the connector's output tokens): a tag set before training and
# a metric beside the benchmarks' (the projector axis' token budget).
TAG_VISUAL_TOKENS = TAG_PREFIX + "visual_tokens"
VISUAL_TOKENS = "visual_tokens"
# Liveness of a job's run (issue: dead runs must not look alive). While a job holds its run it
# rewrites TAG_HEARTBEAT (unix seconds, as a string) every TAG_HEARTBEAT_EVERY seconds; a RUNNING
# run whose heartbeat is older than DEAD_AFTER heartbeats is dead (SIGKILL, power loss, OOM).
TAG_HEARTBEAT = TAG_PREFIX + "heartbeat"
TAG_HEARTBEAT_EVERY = TAG_PREFIX + "heartbeat_every_s"
DEAD_AFTER = 4  # heartbeats missed before a RUNNING run counts as dead
TAG_HOST = TAG_PREFIX + "host"  # hostname of the process that holds the run
TAG_PID = TAG_PREFIX + "pid"  # its process id
TAG_COMMAND = TAG_PREFIX + "command"  # the command line that runs (and resumes) this job, credentials redacted
# Studies (conf/study/, hydra/sweeper=ablation): the study's name, each job's experiment id (the
# paper's registry id for +study=prismatic) and its section ("4.1" ... "4.4", "prism").
TAG_STUDY = TAG_PREFIX + "study"
TAG_EXPERIMENT = TAG_PREFIX + "experiment"
TAG_SECTION = TAG_PREFIX + "section"
# Evaluations after the first, on a FINISHED run's checkpoint: TAG_EVALUATED + "[blind/]<benchmark>" holds
# the slim size it was evaluated with (benchmarks.max_examples; eval/pending.py)
TAG_EVALUATED = TAG_PREFIX + "evaluated."
TAG_EVALUATED_IN_SWEEP = TAG_PREFIX + "evaluated_in_sweep"  # the last sweep that evaluated a FINISHED run
# Every evaluation, the first and later ones: TAG_EVAL_SETTING + "[blind/]<benchmark>" holds what its scores
# depend on besides the model (examples scored, slim size, version, blind, generation settings) as compact
# JSON (eval/settings.py); analysis compares runs on a benchmark only where these agree, except the fields
# of EVAL_SETTING_UNCOMPARED (recorded for audits).
TAG_EVAL_SETTING = TAG_PREFIX + "eval_setting."
EVAL_SETTING_UNCOMPARED = ("examples", "score")
BLIND_PREFIX = "blind/"  # blind-control metrics: blind/<benchmark>/<metric>
KIND_JOB = "job"
KIND_SWEEP = "sweep"

DEFAULT_EXPERIMENT = "vlm_sweeps"

# Training curves.
TRAIN_LOSS = "train/loss"
TRAIN_LR = "train/lr"
TRAIN_SAMPLES_PER_S = "train/samples_per_s"

# Headline metric of each benchmark, `<benchmark>/<metric>`: the one figure per benchmark that
# tables, radar charts and z-score aggregates use. Benchmarks also log secondary metrics
# (e.g. `synth_pope/f1`), always under their own `<benchmark>/` prefix.
HEADLINE_METRIC: dict[str, str] = {
    # synthetic suite (scale=tiny)
    "synth_vqa": "accuracy",
    "synth_count": "accuracy",
    "synth_spatial": "accuracy",
    "synth_pope": "accuracy",
    "synth_ref": "acc_iou50",
    "synth_text": "accuracy",
    "synth_shape": "accuracy",  # planted: what naive resizing distorts (data/synthetic.py)
    "synth_margin": "accuracy",  # planted: what a centre crop cuts away
    "synth_fine": "accuracy",  # planted: what a lower resolution blurs
    # the paper's suite
    "vqav2": "accuracy",
    "gqa": "accuracy",
    "vizwiz": "accuracy",
    "textvqa": "accuracy",
    "refcoco": "acc_iou50",
    "refcoco+": "acc_iou50",
    "refcocog": "acc_iou50",
    "ocid_ref": "acc_iou25",
    "vsr": "accuracy",
    "tallyqa": "accuracy",
    "pope": "accuracy",
    "ai2d": "accuracy",
    "textvqa_ocr": "accuracy",  # TextVQA asked with OCR tokens in the prompt (vlm-evaluation's TextVQA-OCR)
}


def metric_name(benchmark: str, metric: str) -> str:
    """`<benchmark>/<metric>`, the stable name of an evaluation metric."""
    return f"{benchmark}/{metric}"


def headline_metric(benchmark: str) -> str:
    """Full metric name of a benchmark's headline figure, e.g. `synth_ref/acc_iou50`."""
    return metric_name(benchmark, HEADLINE_METRIC.get(benchmark, "accuracy"))
