"""Data checks before a job opens its run: every record of a real mix read, every image found."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def llava_files(cfg: Any) -> dict[str, Path]:
    data_root = Path(cfg.paths.data_root).resolve()
    return {"align": data_root / str(cfg.data.align_file), "finetune": data_root / str(cfg.data.finetune_file)}


def check_data(cfg: Any, stages: list[str] | None = None) -> dict[str, list]:
    """Real mixes: read the records of every stage of the plan (or of `stages`) and check that each
    image file exists (unless `run.check_images=false`), so unreadable files, image paths escaping
    the data root and missing images stop a job before any weights load. Corrupt images are caught
    when read (data/instruct.py). Returns {stage: records} ({} for synthetic data, made by us)."""
    from vlm_sweeps.data.llava import check_images_exist, load_llava

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

