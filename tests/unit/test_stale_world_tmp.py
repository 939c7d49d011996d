"""A synthetic world half-built by a killed builder does not stay in the cache forever: the next
ensure_world removes it (atomic.remove_stale), while one a live builder is filling is kept."""

from __future__ import annotations

import os
import subprocess
import sys

from vlm_sweeps import atomic
from vlm_sweeps.config import SyntheticConf
from vlm_sweeps.data import synthetic as syn

CONF = SyntheticConf(n_align=6, n_finetune=40, n_eval=5)


def _half_built(folder, name: str):
    path = folder / name
    (path / "eval").mkdir(parents=True)
    (path / "align.json").write_text("[]")
    (path / "eval" / "synth_vqa.json").write_text("[")
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_killed_builders_temp_world_is_removed_and_a_live_ones_kept(tmp_path):
    host = atomic._writer().rsplit("-", 1)[0]
    worlds = tmp_path / "synthetic"
    key = syn.world_key(CONF)
    dead = _half_built(worlds, f".tmp-world-{key}.{host}-{_dead_pid()}.k3j2h1.tmp")
    live = _half_built(worlds, f".tmp-world-{key}.{host}-{os.getpid()}.a1b2c3.tmp")
    (worlds / key).mkdir()
    (worlds / key / "corpus.txt").write_text("")  # the world itself exists: nothing to build
    assert syn.ensure_world(tmp_path, CONF) == worlds / key
    assert not dead.exists() and live.exists()
    assert (worlds / key / "corpus.txt").exists()


def test_a_build_names_its_temp_folder_with_host_and_pid(tmp_path, monkeypatch):
    built = []

    def generate(folder, conf):  # stands in for the real generator (seconds of drawing)
        built.append(folder.name)
        (folder / "corpus.txt").write_text("")

    monkeypatch.setattr(syn, "generate", generate)
    world = syn.ensure_world(tmp_path, CONF)
    assert (world / "corpus.txt").exists()
    assert built[0].startswith(f".tmp-world-{world.name}.{atomic._writer()}.")
    assert built[0].endswith(".tmp")
    assert sorted(p.name for p in world.parent.iterdir()) == [world.name]  # no temp folder left


def test_a_killed_jobs_half_saved_tokenizer_is_removed_and_the_tokenizer_trained(tmp_path):
    import json

    from vlm_sweeps.models.tokenizer import cached_tokenizer

    host = atomic._writer().rsplit("-", 1)[0]
    dead = tmp_path / f".tokenizer.{host}-{_dead_pid()}.x1y2z3.tmp"
    live = tmp_path / f".tokenizer.{host}-{os.getpid()}.a1b2c3.tmp"
    for folder in (dead, live):
        folder.mkdir()
        (folder / "tokenizer.json").write_text("{")  # half saved
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(json.dumps(f"a red square and {n} blue circles") for n in range(50)))
    tok = cached_tokenizer(corpus, 300, tmp_path)
    assert tok("a red square").input_ids
    assert not dead.exists() and live.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tokenizer.") and p != live]  # its own renamed
