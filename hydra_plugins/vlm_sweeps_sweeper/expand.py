"""How a sweep's command line becomes a list of jobs, each a list of Hydra overrides:

- grid: the cross product of every `key=a,b,c` (Hydra's basic sweeper, the same jobs in the same order);
- ablation: the baseline (the composed defaults, or `+baseline=NAME`) plus one job per option of
  each swept axis that differs from the baseline, every other axis held at the baseline;
- study: a study's experiments (`+study=NAME`, conf/study/): each job = the study's baseline +
  the command line's overrides + the experiment's own, tagged with its id and section;
- replicates: each job once per seed (`study.seeds=N` or `+seeds=N`: seed, seed+1, ...).

Pure functions of override strings and of the baseline's values: nothing is composed here.
No `from __future__ import annotations`: Hydra imports this module while scanning for plugins,
before it is in sys.modules, where dataclasses would look string annotations up.
"""

import itertools
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from hydra.errors import HydraException

# the baseline job of an ablation: its label and section (tags vlm_sweeps.experiment / .section)
BASELINE = "baseline"


@dataclass
class Job:
    overrides: List[str]  # what the launcher receives for this job
    label: Optional[str] = None  # what the job is: "baseline", "encoder=siglip", a study's experiment id
    section: Optional[str] = None  # the study's section, or the ablated axis
    seed: Optional[int] = None  # set when the sweep replicates over seeds


_PARSER: Optional[OverridesParser] = None


def parse(lines: Sequence[str], parser: Optional[OverridesParser] = None) -> List[Override]:
    global _PARSER
    if parser is None:
        _PARSER = _PARSER or OverridesParser.create()
        parser = _PARSER
    return parser.parse_overrides(list(lines))


def render(override: Override) -> str:
    """An override as one job's `key=value` (as Hydra's basic sweeper writes it)."""
    return f"{override.get_key_element()}={override.get_value_element_as_str()}"


def split(overrides: Sequence[Override]) -> Tuple[List[str], List[Override]]:
    """(the fixed overrides every job gets, the sweeps); only enumerable sweeps are accepted."""
    fixed, sweeps = [], []
    for o in overrides:
        if not o.is_sweep_override():
            fixed.append(render(o))
        elif o.is_discrete_sweep():
            sweeps.append(o)
        else:
            raise HydraException(f"{o.input_line}: an interval cannot be enumerated; list the values (a,b,c) "
                                 "or give a range(start, stop, step)")
    return fixed, sweeps


def grid(overrides: Sequence[Override]) -> List[Job]:
    """Every combination of the sweeps, in Hydra's basic order (the fixed overrides in place)."""
    lists = []
    for o in overrides:
        if o.is_sweep_override():
            split([o])  # an interval fails here, as it does in the basic sweeper
            lists.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        else:
            lists.append([render(o)])
    return [Job(list(combination)) for combination in itertools.product(*lists)]


def options(override: Override) -> List[Tuple[Any, str]]:
    """(value, as written) of each option of a sweep, in one pass (a shuffled sweep shuffles once;
    a glob lists option names, untransformed)."""
    items = override.sweep_iterator(transformer=lambda x: (Override._convert_value(x), Transformer.str(x)))
    return [item if isinstance(item, tuple) else (item, str(item)) for item in items]


def same_value(baseline: Any, value: Any, text: str) -> bool:
    """Whether a swept option is the baseline's (1 and 1.0 are one number of epochs)."""
    if baseline is None:
        return False
    numbers = (int, float)
    if isinstance(baseline, numbers) and isinstance(value, numbers) and not isinstance(value, bool) \
            and not isinstance(baseline, bool):
        return float(baseline) == float(value)
    return str(baseline) == text


def ablation(overrides: Sequence[Override], baseline_of: Callable[[Override], Any]) -> List[Job]:
    """The baseline once, then for each swept axis in the command line's order one job per option
    that is not the baseline's, the other axes at the baseline. `baseline_of(override)`: the
    baseline's value of that override's key (a group's option name, a value; None if unset)."""
    fixed, sweeps = split(overrides)
    jobs = [Job([*fixed, *tags(BASELINE, BASELINE)], label=BASELINE, section=BASELINE)]
    seen = set()
    for o in sweeps:
        key = o.get_key_element()
        if key in seen:
            raise HydraException(f"{key} is swept twice; give its options once: {key}=a,b,c")
        seen.add(key)
        base = baseline_of(o)
        for value, text in options(o):
            if same_value(base, value, text):
                continue
            option = f"{key}={text}"
            jobs.append(Job([*fixed, option, *tags(option, o.key_or_group)], label=option, section=o.key_or_group))
    return jobs


def merge(*layers: Sequence[str]) -> List[str]:
    """Override lists, later layers winning per key (`llm=a` then `llm=b` is `llm=b`); the winner
    takes the later position."""
    lines = list(itertools.chain(*layers))
    by_key: Dict[str, str] = {}
    for line, o in zip(lines, parse(lines)):
        key = o.key_or_group if o.package is None else f"{o.key_or_group}@{o.package}"
        by_key.pop(key, None)
        by_key[key] = line
    return list(by_key.values())


def substitute(overrides: Sequence[str], table: Optional[Dict[str, Sequence[str]]]) -> List[str]:
    """Each override that is a key of `table` replaced by its list (the paper's LLaVA mixes by their
    synthetic analogues at scale=tiny: hydra.sweeper.at_scale)."""
    table = table or {}
    out: List[str] = []
    for line in overrides:
        out.extend(table.get(line.strip(), [line]))
    return out


def quoted(value: Any) -> str:
    """A value as an override writes it, quoted: ids such as `one-stage+7b` or `4.1` stay strings."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def tags(label: Optional[str], section: Optional[str]) -> List[str]:
    """The overrides that tag a job's run (vlm_sweeps.experiment, vlm_sweeps.section)."""
    out = []
    if label is not None:
        out.append(f"study.experiment={quoted(label)}")
    if section is not None:
        out.append(f"study.section={quoted(section)}")
    return out


def study(baseline: Sequence[str], experiments: Sequence[Dict[str, Any]], fixed: Sequence[str],
          scale: Optional[str] = None, at_scale: Optional[Dict[str, Dict[str, Sequence[str]]]] = None) -> List[Job]:
    """One job per experiment: the study's baseline, then the command line's fixed overrides (they
    change the baseline of every job: `llm=mistral`, `scale=tiny`), then the experiment's overrides
    (they define it), then its tags. The study's own overrides (baseline and experiments) go through
    `at_scale[scale]` first: at scale=tiny the paper's mixes and suite are their synthetic analogues."""
    table = (at_scale or {}).get(scale or "", {})
    jobs, ids = [], set()
    for i, exp in enumerate(experiments):
        problems = [k for k in ("id", "overrides") if k not in exp]
        if problems:
            raise HydraException(f"study.experiments[{i}] lacks {', '.join(problems)}: each experiment is "
                                 "{id: NAME, section: '4.2', overrides: [axis=option, ...]}")
        if exp["id"] in ids:
            raise HydraException(f"study.experiments: the id {exp['id']!r} is given twice")
        ids.add(exp["id"])
        section = exp.get("section")
        own = substitute(list(exp["overrides"] or []), table)
        overrides = merge(substitute(baseline, table), fixed, own,
                          tags(str(exp["id"]), None if section is None else str(section)))
        jobs.append(Job(overrides, label=str(exp["id"]), section=None if section is None else str(section)))
    return jobs


def replicate(jobs: Sequence[Job], seeds: int, base_seed: int) -> List[Job]:
    """Each job once per seed: base, base+1, ... (a job that sets `seed=` itself starts there)."""
    if seeds < 1:
        raise HydraException(f"study.seeds={seeds}: must be >= 1 (configurations are replicated that many times)")
    if seeds == 1:
        return list(jobs)
    out = []
    for job in jobs:
        own = [o for o in parse(job.overrides) if o.key_or_group == "seed" and not o.is_sweep_override()]
        start = int(own[-1].value()) if own else int(base_seed)
        for i in range(seeds):
            out.append(replace(job, overrides=merge(job.overrides, [f"seed={start + i}"]), seed=start + i))
    return out
