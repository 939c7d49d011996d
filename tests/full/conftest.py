"""Tiny checkpoints in each library's real on-disk format, written once per session into a models
directory laid out as `hf download <repo> --local-dir <models_dir>/<repo>` leaves it, under the
public ids the config options name. The code that loads full weights reads them unchanged:
only the dimensions are tiny."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import compose

# Tiny sizes; the encoder options are composed with `encoder.image_size` set to these.
HF_IMAGE = 42  # CLIP / SigLIP checkpoints: 42 px, patch 14 -> a 3x3 grid
DINO_SAVED_IMAGE = 56  # DINOv2 saved at 56 px (4x4) and loaded at 42: position embeddings resampled
IN1K_IMAGE = 48  # patch 16 -> 3x3
IDS = {
    "clip": "openai/clip-vit-large-patch14-336",
    "clip_224": "openai/clip-vit-large-patch14",
    "siglip": "google/siglip-so400m-patch14-384",
    "dinov2": "timm/vit_large_patch14_reg4_dinov2.lvd142m",
    "in1k": "timm/vit_large_patch16_224.augreg_in21k_ft_in1k",
    "llama2": "meta-llama/Llama-2-7b-hf",
    "mistral": "mistralai/Mistral-7B-v0.1",
    "phi2": "microsoft/phi-2",
}
CORPUS = ["In: What is in the image?\nOut: A red square.", "USER: hello ASSISTANT: hi there",
          "Input: count the shapes\nOutput: three", "[INST] describe it [/INST] a blue circle on the left"]


def _hf_vision(kind: str, folder: Path) -> None:
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, SiglipConfig, SiglipImageProcessor,
                              SiglipModel)

    dims = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4)
    text = dict(dims, vocab_size=99, max_position_embeddings=16)
    if kind == "clip":  # the published repo is a whole CLIPModel (quick-GELU) with its processor
        CLIPModel(CLIPConfig(text_config=dict(text, hidden_act="quick_gelu"), projection_dim=16,
                             vision_config=dict(dims, image_size=HF_IMAGE, patch_size=14, hidden_act="quick_gelu"))
                  ).save_pretrained(folder)
        CLIPImageProcessor().save_pretrained(folder)
    else:
        SiglipModel(SiglipConfig(text_config=text, vision_config=dict(dims, image_size=HF_IMAGE, patch_size=14))
                    ).save_pretrained(folder)
        SiglipImageProcessor().save_pretrained(folder)


def _timm(arch: str, folder: Path, **args) -> None:
    import timm
    from timm.models._hub import save_for_hf

    model = timm.create_model(arch, pretrained=False, **args)
    save_for_hf(model, str(folder), model_args=args, safe_serialization=True)


# The tiny checkpoints' architecture: each LLM option's own config.json fields with these dimensions.
# Tests compose an option with `tiny_llm_overrides()`, i.e. declare the dimensions of the tiny
# checkpoint they load, as a user declares the checkpoint an option names.
TINY_LLM_DIMS = dict(hidden_size=40, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2)


def llm_option(name: str) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(Path(__file__).resolve().parents[2] / "conf" / "llm" / f"{name}.yaml"))


def tiny_llm_overrides(name: str) -> list[str]:
    declared = llm_option(name)["config"]
    dims = {k: v for k, v in TINY_LLM_DIMS.items() if k in declared or k != "num_key_value_heads"}
    if "head_dim" in declared:
        dims["head_dim"] = 10
    return [f"llm.config.{k}={v}" for k, v in dims.items()] + [f"llm.config.vocab_size={len(_corpus_tokenizer())}"]


def _corpus_tokenizer():
    """A Llama-style tokenizer without a pad token, as the public LLM tokenizers come."""
    from vlm_sweeps.models.tokenizer import train_tokenizer

    tok = train_tokenizer(CORPUS * 4, 200)
    tok.pad_token = None
    return tok


def _llm(option: str, folder: Path) -> None:
    """The tiny checkpoint of an LLM option: its model type and declared fields, tiny dimensions,
    saved as transformers saves a published checkpoint (float16 shards with an index)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = _corpus_tokenizer()
    tok.save_pretrained(folder)
    opt = llm_option(option)
    fields = {**opt["config"], **{k: v for k, v in TINY_LLM_DIMS.items()
                                  if k in opt["config"] or k != "num_key_value_heads"}}
    if "head_dim" in fields:
        fields["head_dim"] = 10
    fields.update(vocab_size=len(tok), max_position_embeddings=fields.get("max_position_embeddings", 256))
    fields.setdefault("tie_word_embeddings", False)
    config = AutoConfig.for_model(opt["model_type"], **fields)
    for token in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if isinstance(getattr(config, token, None), int) and getattr(config, token) >= len(tok):
            setattr(config, token, None)
    AutoModelForCausalLM.from_config(config).half().save_pretrained(folder, max_shard_size="60KB")


LLM_OPTIONS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "conf" / "llm").glob("*.yaml"))


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    import torch

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    _hf_vision("clip", root / IDS["clip"])
    _hf_vision("siglip", root / IDS["siglip"])
    _timm("vit_large_patch14_reg4_dinov2", root / IDS["dinov2"], img_size=DINO_SAVED_IMAGE, embed_dim=32, depth=3,
          num_heads=4, num_classes=0)
    # the public IN1K checkpoint has its 1000-class head; ours has a small one, dropped on load
    _timm("vit_large_patch16_224", root / IDS["in1k"], img_size=IN1K_IMAGE, embed_dim=32, depth=3, num_heads=4,
          num_classes=10)
    for option in LLM_OPTIONS:  # options sharing an architecture (chat and base) each get their id's folder
        _llm(option, root / llm_option(option)["id"])
    return root


@pytest.fixture()
def empty_hf_cache(tmp_path, monkeypatch) -> Path:
    """No weights from the developer's own caches leak into a test."""
    cache = tmp_path / "hf_cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("VLM_SWEEPS_MODELS_DIR", raising=False)
    return cache


def compose_full(overrides: list[str], root: Path, models_dir: Path | None = None):
    extra = [f"paths.models_dir={models_dir}"] if models_dir is not None else []
    return compose(["scale=full", "run.progress=false", "benchmarks=paper"] + overrides + extra, root=root)


def write_llava(folder: Path, records: list[dict], name: str = "mix.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(records))
    return folder / name
