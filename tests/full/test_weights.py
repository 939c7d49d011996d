"""Weight resolution without the network: where weights are found, and the error that names every
missing id with the command that fetches it, before anything loads."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.full.conftest import IDS, compose_full
from vlm_sweeps import validate
from vlm_sweeps.models import weights


def test_every_missing_id_is_named_with_its_fetch_command(tmp_path, empty_hf_cache):
    models = tmp_path / "models"
    cfg = compose_full(["encoder=dinosiglip", "llm=mistral"], tmp_path, models_dir=models)
    problems = validate.problems(cfg)
    text = "\n".join(problems)
    for repo in ("timm/vit_large_patch14_reg4_dinov2.lvd142m", "google/siglip-so400m-patch14-384",
                 "mistralai/Mistral-7B-v0.1"):
        assert f"missing pretrained weights {repo}" in text
        assert f"`hf download {repo} --local-dir {models / repo}`" in text
    assert str(empty_hf_cache) in text  # says where it looked


def test_gated_llama_says_how_to_get_access(tmp_path, empty_hf_cache):
    cfg = compose_full([], tmp_path)
    (line,) = [p for p in validate.problems(cfg) if "meta-llama/Llama-2-7b-hf" in p]
    assert "gated" in line and "hf auth login" in line and "`hf download meta-llama/Llama-2-7b-hf`" in line


def test_models_dir_then_env_then_hf_cache(tmp_path, models_dir, empty_hf_cache, monkeypatch):
    spec = weights.WeightSpec(IDS["clip"], "transformers", "encoder=clip")
    assert weights.locate(spec, models_dir) == models_dir / IDS["clip"]
    assert weights.locate(spec, None) is None
    monkeypatch.setenv(weights.ENV_MODELS_DIR, str(models_dir))  # used when paths.models_dir is unset
    assert weights.models_dir_of(None) == models_dir
    monkeypatch.delenv(weights.ENV_MODELS_DIR)
    # a Hugging Face cache (what `hf download <repo>` fills): refs/main -> snapshots/<rev>
    snap = empty_hf_cache / "models--openai--clip-vit-large-patch14-336" / "snapshots" / "abc123"
    shutil.copytree(models_dir / IDS["clip"], snap)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("abc123")
    assert weights.locate(spec, None) == snap


def _cache_snapshot(cache, source, repo: str, rev: str, main: bool):
    """A Hugging Face cache entry as huggingface_hub lays it out: snapshots/<rev> (+ refs/main)."""
    base = cache / ("models--" + repo.replace("/", "--"))
    shutil.copytree(source, base / "snapshots" / rev)
    if main:
        (base / "refs").mkdir(exist_ok=True)
        (base / "refs" / "main").write_text(rev)
    return base / "snapshots" / rev


def test_caches_are_read_through_huggingface_hub(tmp_path, models_dir, empty_hf_cache, monkeypatch):
    spec = weights.WeightSpec(IDS["clip"], "transformers", "encoder=clip")
    # a Hugging Face cache kept inside models_dir is searched before the standard one
    kept = tmp_path / "kept"
    in_models_dir = _cache_snapshot(kept, models_dir / IDS["clip"], IDS["clip"], "r1", main=True)
    in_standard = _cache_snapshot(empty_hf_cache, models_dir / IDS["clip"], IDS["clip"], "r2", main=True)
    assert weights.candidates(spec, kept)[:2] == [kept / IDS["clip"], in_models_dir]
    assert weights.locate(spec, kept) == in_models_dir
    assert weights.locate(spec, None) == in_standard
    # `main` incomplete (an interrupted download): another cached revision that is complete is taken
    (in_standard / "config.json").unlink()
    older = _cache_snapshot(empty_hf_cache, models_dir / IDS["clip"], IDS["clip"], "r0", main=False)
    assert weights.locate(spec, None) == older
    # the standard cache is where huggingface_hub puts it: HF_HUB_CACHE, else HF_HOME/hub, read now
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert weights.hf_cache_dir() == tmp_path / "home" / "hub"
    assert weights.locate(spec, None) is None


def test_required_asks_each_backbone_kind(tmp_path, empty_hf_cache):
    """Backbone specs come from the kind's own entry (models/vision.py KINDS), any kind."""
    cfg = compose_full(["encoder=dinosiglip2"], tmp_path)
    assert [(s.library, s.repo) for s in weights.required(cfg)] == [
        ("timm", IDS["dinov2"]), ("open_clip", "timm/ViT-SO400M-14-SigLIP2-378"), ("transformers", IDS["llama2"])]


def test_an_incomplete_download_is_not_taken_for_weights(tmp_path, models_dir, empty_hf_cache):
    partial = tmp_path / "partial"
    shutil.copytree(models_dir, partial)
    llm = partial / IDS["llama2"]
    shard = sorted(llm.glob("model-*.safetensors"))[-1]
    shard.unlink()  # one shard of a sharded checkpoint missing
    cfg = compose_full([], tmp_path, models_dir=partial)
    assert [s.repo for s in weights.missing(cfg)] == [IDS["llama2"]]
    (partial / IDS["clip"] / "config.json").unlink()
    assert [s.repo for s in weights.missing(cfg)] == [IDS["clip"], IDS["llama2"]]
    assert weights.missing(compose_full([], tmp_path, models_dir=models_dir)) == []


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_cli_scale_full_stops_before_training_naming_the_missing_ids(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "VLM_SWEEPS_"))}
    env.update(HF_HUB_CACHE=str(tmp_path / "empty_cache"), HF_HUB_OFFLINE="1",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "vlm_sweeps.run", "scale=full"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "missing pretrained weights openai/clip-vit-large-patch14-336 (encoder=clip)" in text
    assert "`hf download openai/clip-vit-large-patch14-336`" in text
    assert "missing pretrained weights meta-llama/Llama-2-7b-hf (llm=llama2)" in text
    assert not (tmp_path / ".vlm_sweeps" / "runs").exists()  # nothing started


@pytest.mark.parametrize("missing_part", ["encoder", "llm"])
def test_building_without_weights_raises_the_same_message(tmp_path, models_dir, empty_hf_cache, missing_part):
    """The builders resolve through the same layer, so a direct call fails just as clearly."""
    from vlm_sweeps.models.vision import build_backbone
    from vlm_sweeps.models.tokenizer import load_pretrained_tokenizer

    with pytest.raises(weights.MissingWeightsError, match="hf download"):
        if missing_part == "encoder":
            build_backbone("siglip", "google/siglip-so400m-patch14-224", 224, None, True, models_dir=tmp_path)
        else:
            load_pretrained_tokenizer("lmsys/vicuna-7b-v1.5", tmp_path, 2048)
