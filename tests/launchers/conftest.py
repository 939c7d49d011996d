"""Launcher unit tier: no cluster, no jobs; Hydra's own loader composes the sweep configs."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def hydra_loader():
    """(config loader, master config) as `python -m vlm_sweeps.run -m ... hydra/launcher=slurm` has them."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from vlm_sweeps.config import register_configs

    register_configs()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3", job_name="run"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", ["hydra/launcher=slurm"], run_mode=RunMode.MULTIRUN)
        yield loader, master
