"""One job's config, frozen at submit time: composed, resolved, with absolute paths and an
explicit tracking URI, so that editing YAML files, the working directory or the environment
after submitting changes nothing about a queued (or requeued) job."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from vlm_sweeps import identity, tracking
from vlm_sweeps.config import to_container
from vlm_sweeps.job import axes_of


@dataclass
class FrozenJob:
    num: int  # Hydra's job number within the sweep
    overrides: list[str]  # the job's own overrides (what the user swept)
    config: dict  # resolved, plain containers: what the job receives
    signature: str
    axes: dict[str, str]
    job_dir: Path  # hydra.sweep.dir/hydra.sweep.subdir
    resource_class: str = "default"
    resources: dict[str, Any] = field(default_factory=dict)
    view: DictConfig | None = field(default=None, repr=False, compare=False)  # `config` as an OmegaConf tree


def absolute_uri(uri: str, cwd: Path) -> str:
    """A tracking URI that means the same from any working directory: relative sqlite files and
    bare paths are anchored at `cwd`; server and database URIs pass unchanged."""
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        path = uri[len(prefix):]
        return uri if path.startswith("/") or path == ":memory:" else prefix + str(cwd / path)
    if "://" in uri or uri.startswith("file:") or uri in ("databricks", "databricks-uc", "uc"):
        return uri
    return uri if os.path.isabs(uri) else str(cwd / uri)  # a bare path: a file store


def anchor(config: dict, cwd: Path) -> dict:
    """Make `paths.*` absolute and `tracking.uri` explicit (as the submitting shell resolves it)."""
    config = copy.deepcopy(config)
    for key, value in config.get("paths", {}).items():
        if isinstance(value, str) and not os.path.isabs(value):
            config["paths"][key] = str(cwd / value)
    config["tracking"]["uri"] = absolute_uri(tracking.resolve_uri(config["tracking"].get("uri")), cwd)
    return config


def task_config(sweep_config: DictConfig) -> dict:
    """The job's config without the `hydra` node, resolved (as Hydra's run_job would hand it over).
    Takes the `hydra` node out of `sweep_config` (a private copy: copying it again costs as much
    as composing)."""
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(sweep_config)  # for ${hydra:...} interpolations in the task config
    with read_write(sweep_config), open_dict(sweep_config):
        del sweep_config["hydra"]
    return to_container(sweep_config)


class Composer:
    """Hydra's `load_sweep_config`, reusing compositions.

    Composing is the slow part (~0.1 s a job). A job that differs from an already composed one
    only by plain `key=value` overrides of values (not config groups) reuses that composition
    and gets its values set the way Hydra sets them after composing (`OmegaConf.update`, merge),
    so a 100-seed sweep composes once; a sweep over groups composes once per combination."""

    def __init__(self, loader: Any):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        self.load_sweep_config = loader.load_sweep_config  # Hydra's own, bound to the loader
        self.parser = OverridesParser.create(config_loader=loader)
        self.composed: dict[tuple, DictConfig] = {}  # by the overrides that need a composition
        self.validated: dict[tuple, DictConfig] = {}  # by all overrides: the sweeper's, kept for the launcher

    @classmethod
    def attach(cls, loader: Any) -> "Composer":
        """Serve the loader's `load_sweep_config` from a Composer. Hydra's sweeper composes every
        job once, only to validate it, right before it calls the launcher, which composes them
        again; sharing the compositions halves the time a large sweep takes to submit."""
        composer = loader.load_sweep_config if isinstance(loader.load_sweep_config, cls) else cls(loader)
        loader.load_sweep_config = composer
        return composer

    def __call__(self, master_config: DictConfig, sweep_overrides: Sequence[str]) -> DictConfig:
        """For Hydra's sweeper (its argument names), which composes each job only to validate it:
        the composition is kept for `take`."""
        key = (id(master_config), *sweep_overrides)
        if key not in self.validated:
            self.validated[key] = self.build(master_config, list(sweep_overrides))
        return self.validated[key]

    def take(self, master: DictConfig, overrides: Sequence[str]) -> DictConfig:
        """A composition of this job that the caller owns (and may change)."""
        kept = self.validated.pop((id(master), *overrides), None)
        return kept if kept is not None else self.build(master, list(overrides))

    def build(self, master: DictConfig, overrides: list[str]) -> DictConfig:
        from hydra.core.override_parser.types import OverrideType

        parsed = self.parser.parse_overrides(overrides)
        groups = set(master.hydra.runtime.choices)

        def plain(o: Any) -> bool:
            return o.type == OverrideType.CHANGE and o.package is None and o.key_or_group not in groups \
                and "/" not in o.key_or_group and not o.is_hydra_override()

        structural = [o.input_line for o in parsed if not plain(o)]
        key = (id(master), *structural)
        if key not in self.composed:
            self.composed[key] = self.load_sweep_config(master, structural)
        config = copy.deepcopy(self.composed[key])
        for o in parsed:
            if plain(o):
                OmegaConf.update(config, o.key_or_group, o.value(), merge=True)
        with open_dict(config):
            config.hydra.overrides.task = overrides
        return config


def freeze(composer: Composer, master: DictConfig, overrides: Sequence[str], num: int, cwd: Path) -> FrozenJob:
    """Job `num` of a sweep, composed from its overrides and frozen."""
    sweep_config = composer.take(master, overrides)
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = num
        sweep_config.hydra.job.num = num
    job_dir = Path(sweep_config.hydra.sweep.dir) / str(sweep_config.hydra.sweep.subdir)
    config = anchor(task_config(sweep_config), cwd.resolve())
    frozen = OmegaConf.create(config)
    return FrozenJob(num=num, overrides=list(overrides), config=config, signature=identity.signature(frozen),
                     axes=axes_of(frozen), job_dir=job_dir.resolve(), view=frozen)


def write_record(job: FrozenJob) -> None:
    """The frozen config and the overrides beside the job, where Hydra keeps them for local runs."""
    import yaml

    from vlm_sweeps.redact import redact_tree

    folder = job.job_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)  # credentials never on disk (vlm_sweeps/redact.py)
    (folder / "config.yaml").write_text(yaml.safe_dump(redact_tree(job.config), sort_keys=False))
    (folder / "overrides.yaml").write_text(yaml.safe_dump(redact_tree(job.overrides), sort_keys=False))


def begin_launch(params: dict, config: DictConfig) -> tuple[dict, Path]:
    """What every launcher does first: Hydra's globals and logging, its options as plain values,
    and the sweep folder (created; Hydra's multirun.yaml in it redacted of tracking credentials)."""
    from hydra.core.utils import configure_log, setup_globals

    from vlm_sweeps.redact import redact_file

    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    options = {k: OmegaConf.to_container(v, resolve=True) if isinstance(v, DictConfig) else v
               for k, v in params.items()}
    sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    redact_file(sweep_dir / "multirun.yaml")  # Hydra's sweeper wrote it with tracking.uri=... as given
    return options, sweep_dir

