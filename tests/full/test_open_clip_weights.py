"""open_clip zoo ids at scale=full: the checkpoint file of the Hub repo open_clip's pretrained config
names is found locally (models_dir, then the Hugging Face caches) and loaded by open_clip, never
downloaded; a missing one is named with the command that fetches it.

Full-size checkpoints are gigabytes, so two tiny architectures are registered in open_clip's zoo
for the test (one open_clip ViT, one timm trunk like SigLIP's), each saved in open_clip's own
on-disk format (`open_clip_model.safetensors`) under a fake repo id."""

import json
import shutil

import open_clip
import pytest
import torch
from open_clip import factory
from open_clip import pretrained as zoo
from safetensors.torch import save_file

from tests.full.conftest import compose_full
from vlm_sweeps.models import open_clip_backbone as ocb
from vlm_sweeps.models import weights
from vlm_sweeps.models.vision import build_backbone, weight_spec

TEXT = {"context_length": 8, "vocab_size": 50, "heads": 2, "layers": 1}
ARCHS = {  # arch: (model config, pretrained config of its tag "test", image size)
    "Tiny-ViT-7": ({"embed_dim": 16, "vision_cfg": {"image_size": 28, "layers": 3, "width": 32, "head_width": 8,
                                                   "patch_size": 7}, "text_cfg": {**TEXT, "width": 16}},
                   {"url": "", "hf_hub": "tinyorg/tiny-vit-7/", "mean": (0.1, 0.2, 0.3), "std": (0.4, 0.5, 0.6),
                    "interpolation": "bilinear", "quick_gelu": True}, 28),
    "Tiny-SigLIP-16": ({"embed_dim": 96, "custom_text": True,
                        "vision_cfg": {"image_size": 160, "timm_model_name": "test_vit3", "timm_model_pretrained": False,
                                       "timm_pool": "map", "timm_proj": "none"},
                        "text_cfg": {**TEXT, "width": 96, "no_causal_mask": True, "pool_type": "last"}},
                       {"url": "", "hf_hub": "tinyorg/tiny-siglip-16/", "mean": (0.5,) * 3, "std": (0.5,) * 3,
                        "interpolation": "bicubic"}, 160),
}


@pytest.fixture()
def tiny_zoo(monkeypatch):
    for arch, (model_cfg, pretrained_cfg, _) in ARCHS.items():
        monkeypatch.setitem(factory._MODEL_CONFIGS, arch, model_cfg)
        monkeypatch.setitem(zoo._PRETRAINED, arch, {"test": pretrained_cfg})
    return ARCHS


def _save(arch: str, folder, name: str = "open_clip_model.safetensors"):
    """A random model of `arch` as open_clip's Hub repos hold it; returns the model."""
    torch.manual_seed(0)
    model = open_clip.create_model(arch, force_quick_gelu=bool(ARCHS[arch][1].get("quick_gelu"))).eval()
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / name))
    (folder / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": ARCHS[arch][0], "preprocess_cfg": {k: ARCHS[arch][1][k] for k in ("mean", "std", "interpolation")}}))
    return model


def _penultimate(visual, x):
    depth = len(ocb.blocks_of(visual))
    with torch.no_grad():
        return visual.forward_intermediates(x, indices=[depth - 2], intermediates_only=True,
                                            output_fmt="NLC")["image_intermediates"][0]


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_a_local_checkpoint_loads_with_its_zoo_preprocessing(arch, tiny_zoo, tmp_path, empty_hf_cache):
    _, pretrained_cfg, size = ARCHS[arch]
    models = tmp_path / "models"
    saved = _save(arch, models / pretrained_cfg["hf_hub"].rstrip("/"))
    bb = build_backbone("open_clip", f"{arch}:test", size, None, True, models_dir=models).eval()
    assert bb.preprocessing.mean == pretrained_cfg["mean"] and bb.preprocessing.std == pretrained_cfg["std"]
    assert bb.preprocessing.interpolation == pretrained_cfg["interpolation"]
    depth = len(ocb.blocks_of(saved.visual))
    assert bb.shape.depth == depth and len(ocb.blocks_of(bb.model)) == depth - 1
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.allclose(bb(x), _penultimate(saved.visual, x), atol=1e-6)  # the saved weights, block L-2


def test_found_in_the_hugging_face_cache_through_huggingface_hub(tiny_zoo, tmp_path, empty_hf_cache):
    """Where `hf download tinyorg/tiny-vit-7` would leave it: refs/main -> snapshots/<rev>."""
    base = empty_hf_cache / "models--tinyorg--tiny-vit-7"
    saved = _save("Tiny-ViT-7", base / "snapshots" / "rev1")
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text("rev1")
    bb = build_backbone("open_clip", "Tiny-ViT-7:test", 28, None, True, models_dir=tmp_path / "empty").eval()
    x = torch.randn(1, 3, 28, 28)
    with torch.no_grad():
        assert torch.allclose(bb(x), _penultimate(saved.visual, x), atol=1e-6)


def test_other_image_size_resamples_position_embeddings(tiny_zoo, tmp_path, empty_hf_cache):
    models = tmp_path / "models"
    _save("Tiny-ViT-7", models / "tinyorg/tiny-vit-7")
    bb = build_backbone("open_clip", "Tiny-ViT-7:test", 42, None, True, models_dir=models)
    assert bb.shape.image_size == 42 and bb(torch.randn(1, 3, 42, 42)).shape == (1, 36, 32)


def test_a_missing_checkpoint_names_the_repo_and_the_command(tiny_zoo, tmp_path, empty_hf_cache):
    models = tmp_path / "models"
    with pytest.raises(weights.MissingWeightsError) as err:
        build_backbone("open_clip", "Tiny-ViT-7:test", 28, None, True, models_dir=models)
    text = str(err.value)
    assert "missing pretrained weights tinyorg/tiny-vit-7 (open_clip Tiny-ViT-7:test" in text
    assert f"`hf download tinyorg/tiny-vit-7 open_clip_model.safetensors --local-dir {models / 'tinyorg/tiny-vit-7'}`" in text
    assert "open_clip_pytorch_model.bin" in text  # the other name open_clip's repos use
    assert str(empty_hf_cache) in text  # says where it looked
    # a .bin checkpoint (open_clip's older file name) is taken as well
    saved = _save("Tiny-ViT-7", tmp_path / "bin")
    (models / "tinyorg/tiny-vit-7").mkdir(parents=True)
    torch.save(saved.state_dict(), models / "tinyorg/tiny-vit-7" / "open_clip_pytorch_model.bin")
    assert build_backbone("open_clip", "Tiny-ViT-7:test", 28, None, True, models_dir=models).shape.width == 32


def test_an_entry_with_a_url_only_says_where_to_put_the_file(tiny_zoo, tmp_path, empty_hf_cache, monkeypatch):
    url = "https://example.org/weights/tiny_vit_7.pt"
    monkeypatch.setitem(zoo._PRETRAINED, "Tiny-ViT-7", {"test": {**ARCHS["Tiny-ViT-7"][1], "hf_hub": "", "url": url}})
    models = tmp_path / "models"
    with pytest.raises(weights.MissingWeightsError) as err:
        build_backbone("open_clip", "Tiny-ViT-7:test", 28, None, True, models_dir=models)
    target = models / "open_clip" / "Tiny-ViT-7" / "test" / "tiny_vit_7.pt"
    assert f"`curl -L --create-dirs -o {target} {url}`" in str(err.value)
    saved = _save("Tiny-ViT-7", tmp_path / "dl")
    target.parent.mkdir(parents=True)
    torch.save(saved.state_dict(), target)  # what the command would have fetched
    bb = build_backbone("open_clip", "Tiny-ViT-7:test", 28, None, True, models_dir=models).eval()
    x = torch.randn(1, 3, 28, 28)
    with torch.no_grad():
        assert torch.allclose(bb(x), _penultimate(saved.visual, x), atol=1e-6)
    with pytest.raises(weights.MissingWeightsError, match=r"paths.models_dir=DIR .*DIR/open_clip/Tiny-ViT-7/test"):
        build_backbone("open_clip", "Tiny-ViT-7:test", 28, None, True, models_dir=None)


def test_a_folder_declaring_other_normalisation_is_refused(tiny_zoo, tmp_path, empty_hf_cache):
    folder = tmp_path / "models" / "tinyorg/tiny-vit-7"
    _save("Tiny-ViT-7", folder)
    (folder / "open_clip_config.json").write_text(json.dumps({"preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3}}))
    with pytest.raises(ValueError, match="differs in mean, std"):
        build_backbone("open_clip", "Tiny-ViT-7:test", 28, None, True, models_dir=tmp_path / "models")


def test_specs_of_the_real_options_name_their_zoo_repos(tmp_path, empty_hf_cache):
    """The encoder options' ids map to the repos open_clip's own pretrained config names."""
    cases = {"ViT-L-14:datacomp_xl_s13b_b90k": "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K",
             "ViT-L-14-quickgelu:dfn2b": "apple/DFN2B-CLIP-ViT-L-14",
             "ViT-L-14-quickgelu:metaclip_fullcc": "timm/vit_large_patch14_clip_224.metaclip_2pt5b",
             "ViT-SO400M-14-SigLIP2-378:webli": "timm/ViT-SO400M-14-SigLIP2-378"}
    for model_id, repo in cases.items():
        spec = weight_spec("open_clip", model_id, "encoder=x")
        assert (spec.library, spec.repo, spec.files) == ("open_clip", repo, ocb.DEFAULT_FILES)
    models = tmp_path / "models"
    cfg = compose_full(["encoder=dinosiglip2", "llm=mistral"], tmp_path, models_dir=models)
    absent = weights.missing(cfg)
    assert [(s.library, s.repo) for s in absent] == [("timm", "timm/vit_large_patch14_reg4_dinov2.lvd142m"),
                                                     ("open_clip", "timm/ViT-SO400M-14-SigLIP2-378"),
                                                     ("transformers", "mistralai/Mistral-7B-v0.1")]
    text = "\n".join(weights.describe_missing(absent, models))
    assert ("`hf download timm/ViT-SO400M-14-SigLIP2-378 open_clip_model.safetensors --local-dir "
            f"{models / 'timm/ViT-SO400M-14-SigLIP2-378'}`") in text
    # the checkpoint file there is all an open_clip id needs (its architecture is open_clip's config)
    folder = models / "timm/ViT-SO400M-14-SigLIP2-378"
    folder.mkdir(parents=True)
    (folder / "open_clip_model.safetensors").write_bytes(b"")
    assert "timm/ViT-SO400M-14-SigLIP2-378" not in [s.repo for s in weights.missing(cfg)]
    shutil.rmtree(folder)
