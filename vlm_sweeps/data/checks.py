"""Data checks before a job opens its run: every record of a real mix read, every image found, and
every file the benchmark suite reads there (so a missing one stops a job before it trains, not after)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("vlm_sweeps.job")


def llava_files(cfg: Any) -> dict[str, Path]:
    data_root = Path(cfg.paths.data_root).resolve()
    return {"align": data_root / str(cfg.data.align_file), "finetune": data_root / str(cfg.data.finetune_file)}


# What building a synthetic world costs, measured (data.synthetic.n_finetune=2000): ~1.3 KB of files per
# record, each image a file of its own (a 4 KB block on most file systems), ~450 records/s on one core.
WORLD_DISK_BYTES_PER_RECORD = 4_600
WORLD_RECORDS_PER_S = 450
WORLD_SAY_ABOVE_S = 300  # a world that takes longer to build is announced with its estimate


def check_world(cfg: Any) -> None:
    """A synthetic world not built yet: its size and build time estimated before a run opens; one that
    would not fit the free space under paths.cache_dir is refused (DataError, saying the fix), a
    long one announced (a typo such as data.synthetic.n_finetune=10000000 would write ~46 GB for ~6 h)."""
    import shutil

    from vlm_sweeps.data.llava import DataError
    from vlm_sweeps.data.synthetic import BENCHMARK_TASK, world_key

    syn = cfg.data.synthetic
    folder = Path(cfg.paths.cache_dir).resolve() / "synthetic" / world_key(syn)
    if (folder / "corpus.txt").exists():
        return
    records = int(syn.n_align) + int(syn.n_finetune) + int(syn.n_eval) * len(BENCHMARK_TASK)
    size, seconds = records * WORLD_DISK_BYTES_PER_RECORD, records / WORLD_RECORDS_PER_S
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    said = (f"the synthetic world of data.synthetic (n_align={syn.n_align}, n_finetune={syn.n_finetune}, "
            f"n_eval={syn.n_eval}: {records:,} records) needs ~{size / 1e9:.1f} GB and ~{seconds / 60:.0f} min to build")
    if size > free:
        raise DataError(f"{said}, but {existing} has {free / 1e9:.1f} GB free; nothing was trained: lower "
                        "data.synthetic.n_finetune / n_align / n_eval, or point paths.cache_dir at a larger disk")
    if seconds > WORLD_SAY_ABOVE_S:
        log.warning("%s (in %s), once, before training", said, folder.parent)


def check_data(cfg: Any, stages: list[str] | None = None) -> dict[str, list]:
    """Real mixes: read the records of every stage of the plan (or of `stages`) and check that each
    image file exists (unless `run.check_images=false`), so unreadable files, image paths escaping
    the data root and missing images stop a job before any weights load. Corrupt images are caught
    when read (data/instruct.py). Returns {stage: records} ({} for synthetic data, made by us)."""
    from vlm_sweeps.data.llava import check_images_exist, load_llava

    if cfg.data.source == "synthetic":
        check_world(cfg)
    if cfg.data.source != "llava":
        return {}
    files, records = llava_files(cfg), {}
    for stage in cfg.optimization.stages:
        if stages is not None and stage.name not in stages:
            continue
        records[stage.name] = load_llava(files[stage.name], drop_text_only=cfg.data.drop_text_only)
        if cfg.run.check_images:
            check_images_exist(records[stage.name], files[stage.name])
    return records


def check_benchmarks(cfg: Any) -> dict[str, str]:
    """The suite's benchmarks read from the data root, loaded as the evaluation will load them (each
    family's loader requires its files and the images of the examples it selects), before anything
    trains. A missing file raises DataError naming every benchmark's missing file and the fix; with
    `eval.continue_on_missing=true` it is a warning listing what the evaluation will skip, and the
    result is {benchmark: why} of those (the synthetic benchmarks are made by the job itself)."""
    from vlm_sweeps.data.llava import DataError
    from vlm_sweeps.eval import registry

    data_root = Path(cfg.paths.data_root).resolve()
    context = registry.LoadContext(data_root, cfg.benchmarks.max_examples, cfg.seed)
    missing: dict[str, str] = {}
    for name in cfg.benchmarks.suite:
        benchmark = registry.get(name)
        if benchmark.synthetic:
            continue
        try:
            benchmark.load(context)
        except FileNotFoundError as err:  # eval.families.files.MissingBenchmarkFile
            missing[name] = str(err)
        except ValueError as err:  # a file there but not as released: no setting skips it
            raise DataError(f"benchmark {name!r}: {err}; nothing was trained") from None
    if not missing:
        return {}
    listed = "\n  - ".join(missing.values())
    if not cfg.eval.continue_on_missing:
        raise DataError(f"{len(missing)} of {len(cfg.benchmarks.suite)} benchmarks of the suite lack files under "
                        f"paths.data_root={data_root}; nothing was trained:\n  - {listed}\nput the files there "
                        "(each line says what to download), set paths.data_root to where they are, leave those "
                        "benchmarks out of benchmarks.suite, or add eval.continue_on_missing=true to train now "
                        "and skip them (a later run of the same job evaluates them on its checkpoint)")
    log.warning("eval.continue_on_missing=true: the evaluation will skip %d of %d benchmarks of the suite, "
                "whose files are not under %s (a later run of this job, once they are there, evaluates them "
                "on its checkpoint):\n  - %s", len(missing), len(cfg.benchmarks.suite), data_root, listed)
    return missing
