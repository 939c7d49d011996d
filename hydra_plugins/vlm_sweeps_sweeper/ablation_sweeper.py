"""`hydra/sweeper=ablation` and `hydra/sweeper=grid`: the schema of their options and the Sweeper
that Hydra instantiates.

    python -m vlm_sweeps.run -m hydra/sweeper=ablation encoder=clip,siglip,dinosiglip resize=letterbox,naive,crop
        -> 5 jobs: the baseline (clip, letterbox) once, siglip, dinosiglip, naive, crop
    python -m vlm_sweeps.run -m +study=prismatic scale=tiny      # a study lists its own jobs
    python -m vlm_sweeps.run -m ... hydra.sweeper.dry=true       # the plan only

Every mode prints the plan first (each job's axes, signature, and whether the store already has it
FINISHED) and launches each signature once. The launcher (local or SLURM) only receives the jobs'
override lists. Only hydra, omegaconf and the standard library are imported at the top (Hydra
imports this module on every run); no `from __future__ import annotations` (see expand.py).
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.errors import HydraException
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.vlm_sweeps_sweeper import expand, plan

log = logging.getLogger(__name__)

MODES = ("ablation", "grid")

# The paper's mixes (conf/data/llava_*) and suite (benchmarks=paper) need the LLaVA files; at
# scale=tiny a study's overrides naming them become their synthetic analogues (conf/data/synthetic*):
# the same record count, the composition shifted toward what each addition brings. LVIS-Instruct4V
# adds fine-grained, object-level instructions (more counting, spatial and grounding); LRV-Instruct
# adds positive and negative existence questions against hallucination (more POPE-style yes/no).
_LVIS4V = ["data.synthetic.tasks.count=2.0", "data.synthetic.tasks.spatial=2.0", "data.synthetic.tasks.ref=1.0"]
_LRV = ["data.synthetic.tasks.pope=6.0"]


def _tiny_analogues() -> Dict[str, Any]:
    return {"tiny": {
        "data=llava_v15": ["data=synthetic"],
        "data=llava_v15_no_language": ["data=synthetic_no_language"],
        "data=llava_lvis4v": ["data=synthetic", "data.name=synthetic_lvis4v", *_LVIS4V],
        "data=llava_lrv": ["data=synthetic", "data.name=synthetic_lrv", *_LRV],
        "data=llava_lvis4v_lrv": ["data=synthetic", "data.name=synthetic_lvis4v_lrv", *_LVIS4V, *_LRV],
        "benchmarks=paper": ["benchmarks=synthetic"],
    }}


@dataclass
class AblationSweeperConf:
    _target_: str = "hydra_plugins.vlm_sweeps_sweeper.ablation_sweeper.AblationSweeper"
    # ablation: the baseline + one job per non-baseline option of each axis; grid: every combination.
    # With +study=NAME (study.experiments not empty) either mode runs the study's experiments.
    mode: str = "ablation"
    dry: bool = False  # print the plan, launch nothing
    max_batch_size: Optional[int] = None  # jobs handed to the launcher at a time (None: all at once)
    params: Optional[Dict[str, str]] = None  # sweeps given in config, like the basic sweeper's
    # {scale: {override: [overrides]}}: at that scale, a study's override (baseline or experiment)
    # equal to a key is replaced by the list; the command line's own overrides are never replaced
    at_scale: Dict[str, Any] = field(default_factory=_tiny_analogues)


@dataclass
class GridSweeperConf(AblationSweeperConf):
    mode: str = "grid"


ConfigStore.instance().store(group="hydra/sweeper", name="ablation", node=AblationSweeperConf, provider="vlm_sweeps")
ConfigStore.instance().store(group="hydra/sweeper", name="grid", node=GridSweeperConf, provider="vlm_sweeps")


class AblationSweeper(Sweeper):
    """Expands the command line (or a study) into jobs, prints the plan, launches each signature once."""

    def __init__(self, mode: str = "ablation", dry: bool = False, max_batch_size: Optional[int] = None,
                 params: Optional[Dict[str, str]] = None, at_scale: Optional[Dict[str, Any]] = None) -> None:
        if mode not in MODES:
            raise HydraException(f"hydra.sweeper.mode={mode}: known modes are {', '.join(MODES)}")
        if max_batch_size is not None and max_batch_size < 1:
            raise HydraException(f"hydra.sweeper.max_batch_size={max_batch_size}: must be >= 1 (or null: all at once)")
        self.mode, self.dry, self.max_batch_size = mode, bool(dry), max_batch_size
        self.params = dict(params or {})
        self.at_scale = OmegaConf.to_container(at_scale, resolve=True) if isinstance(at_scale, DictConfig) \
            else dict(at_scale or {})
        self.hydra_context: Optional[HydraContext] = None
        self.config: Optional[DictConfig] = None
        self.launcher: Optional[Launcher] = None
        self.notes: List[str] = []  # lines printed below the plan

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    # -- expansion ---------------------------------------------------------------------------

    def jobs(self, arguments: Sequence[str]) -> tuple:
        """(jobs, what the sweep is, extra plan columns) of this command line."""
        assert self.config is not None and self.hydra_context is not None
        self.notes = []
        lines = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        overrides = OverridesParser.create(config_loader=self.hydra_context.config_loader).parse_overrides(lines)
        overrides, seeds = self.seeds(overrides)
        study = self.config.get("study")
        if study is not None and study.experiments:
            jobs, columns = self.study_jobs(study, overrides), ["experiment", "section"]
            what = f"study {study.name or '(unnamed)'} at scale={self.config.hydra.runtime.choices.get('scale')}"
        elif self.mode == "grid":
            jobs, what, columns = expand.grid(overrides), "grid", []
        else:
            jobs, columns = self.ablation_jobs(overrides), ["ablates"]
            baseline = [f"{o.get_key_element()}={self.baseline_of(o)}" for o in expand.split(overrides)[1]]
            what = "ablation around the baseline " + (" ".join(baseline) or "(nothing swept: the baseline alone)")
        if seeds > 1:
            what += f", {seeds} seeds each"
        return expand.replicate(jobs, seeds, int(self.config.get("seed", 0))), what, columns

    def study_jobs(self, study: DictConfig, overrides: Sequence[Any]) -> List[expand.Job]:
        """The study's experiments; the command line's overrides go to every job."""
        assert self.config is not None
        fixed, sweeps = expand.split(overrides)
        if sweeps:
            raise HydraException(
                f"+study={study.name} lists its own jobs; {', '.join(o.input_line for o in sweeps)} would cross "
                "every experiment with more options: add them to the study's experiments (or its baseline), "
                "or run them as their own ablation; replicates are study.seeds=N")
        experiments = OmegaConf.to_container(study.experiments, resolve=True)
        scale = self.config.hydra.runtime.choices.get("scale")
        table = self.at_scale.get(scale) or {}
        own = [*study.baseline, *(line for exp in experiments for line in exp.get("overrides") or [])]
        self.notes += [f"at scale={scale} (hydra.sweeper.at_scale): {line} -> {' '.join(table[line])}"
                       for line in dict.fromkeys(own) if line in table]
        return expand.study(list(study.baseline), experiments, fixed, scale, self.at_scale)

    def ablation_jobs(self, overrides: Sequence[Any]) -> List[expand.Job]:
        """The baseline and one job per non-baseline option of each swept axis."""
        for o in expand.split(overrides)[1]:
            base = self.baseline_of(o)
            if not any(expand.same_value(base, v, t) for v, t in expand.options(o)):
                self.notes.append(f"the baseline's {o.get_key_element()}={base} is not among the swept options: "
                                  "it runs as the reference (+baseline=NAME sets another)")
        return expand.ablation(overrides, self.baseline_of)

    def seeds(self, overrides: Sequence[Any]) -> tuple:
        """(the overrides without the shorthand `+seeds=N`, the number of seeds): `+seeds=N` or
        `study.seeds=N`. The shorthand is the sweeper's: no job receives it (a `seeds` key in a
        job's config would change its signature); each receives its `seed=` instead."""
        assert self.config is not None
        study = self.config.get("study")
        configured = int(study.seeds) if study is not None else 1
        short = [o for o in overrides if o.key_or_group == "seeds" and o.package is None]
        if not short:
            return list(overrides), configured
        o = short[-1]
        value = o.value()
        if o.is_sweep_override() or isinstance(value, bool) or not isinstance(value, int):
            raise HydraException(f"{o.input_line}: the number of seeds is one whole number, e.g. +seeds=3")
        if configured != 1 and configured != value:
            raise HydraException(f"{o.input_line} and study.seeds={configured}: give the number of seeds once")
        return [x for x in overrides if x not in short], value

    def baseline_of(self, override: Any) -> Any:
        """The baseline's value of an override's key: a group's chosen option, or a config value."""
        assert self.config is not None
        key = override.key_or_group
        choices = self.config.hydra.runtime.choices
        if key in choices:
            return choices[key]
        if override.package is not None or "/" in key:
            return None
        return OmegaConf.select(self.config, key, default=None)

    # -- the sweep ---------------------------------------------------------------------------

    def sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        jobs, what, columns = self.jobs(arguments)
        planned = plan.compose(self.hydra_context.config_loader, self.config, jobs)
        problem = plan.look_up_finished(planned)
        self.print_plan(planned, what, columns, problem)
        if self.dry:
            print("hydra.sweeper.dry=true: nothing launched", flush=True)
            return []

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")  # as Hydra's basic sweeper does
        study = self.config.get("study")
        plan.write(planned, sweep_dir, {"sweep_id": sweep_dir.name, "mode": self.mode, "what": what,
                                        "study": None if study is None else study.get("name")})
        launched = [p.overrides for p in planned if p.num is not None]
        size = self.max_batch_size or len(launched) or 1
        returns: List[Sequence[JobReturn]] = []
        for start in range(0, len(launched), size):
            results = self.launcher.launch(launched[start:start + size], initial_job_idx=start)
            for r in results:
                _ = r.return_value  # a failed job raises here, as with the basic sweeper
            returns.append(results)
        return returns

    def print_plan(self, planned: Sequence[plan.PlannedJob], what: str, columns: Sequence[str],
                   problem: Optional[str]) -> None:
        from vlm_sweeps.redact import redact_uri

        launched = [p for p in planned if p.num is not None]
        done = sum(1 for p in launched if p.finished_run)
        stores = sorted({redact_uri(p.uri) for p in planned})
        print(f"plan: {len(launched)} jobs, {what}; {done} of them FINISHED in {', '.join(stores)}", flush=True)
        for line in plan.table(planned, columns):
            print("  " + line)
        for note in self.notes:
            print("  " + note)
        if problem:
            print(f"  ({problem})")
        print(flush=True)
