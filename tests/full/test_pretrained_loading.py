"""Every backbone and LLM family loads through the full-weight code path (scale=full) from tiny
checkpoints in the real formats: the weights arrive unchanged, features come from the
second-to-last block, the checkpoint's own preprocessing is the one applied, and a whole VLM
trains a step with gradient accumulation on LLaVA-format data."""

import numpy as np
import pytest
import torch
from PIL import Image

from tests.full.conftest import (DINO_SAVED_IMAGE, HF_IMAGE, IDS, IN1K_IMAGE, LLM_OPTIONS, compose_full,
                                 tiny_llm_overrides, write_llava)
from vlm_sweeps.models.vision import FAMILIES, build_backbone

BACKBONES = [("clip", HF_IMAGE), ("siglip", HF_IMAGE), ("dinov2", HF_IMAGE), ("in1k", IN1K_IMAGE)]


def _reference_features(kind: str, folder, x):
    """Second-to-last block of the untruncated checkpoint, read the libraries' own way."""
    if FAMILIES[kind].library == "timm":
        import timm

        full = timm.create_model(f"local-dir:{folder}", pretrained=True, img_size=x.shape[-1], num_classes=0).eval()
        (ref,) = full.forward_intermediates(x, indices=[len(full.blocks) - 2], intermediates_only=True,
                                            output_fmt="NLC")
        return ref
    from transformers import CLIPModel, SiglipModel

    whole = (CLIPModel if kind == "clip" else SiglipModel).from_pretrained(folder).eval()
    hidden = whole.vision_model(pixel_values=x, output_hidden_states=True).hidden_states
    return hidden[-2][:, 1:] if kind == "clip" else hidden[-2]


@pytest.mark.parametrize("kind,size", BACKBONES, ids=[k for k, _ in BACKBONES])
def test_backbone_loads_its_checkpoint_and_reads_the_second_to_last_block(kind, size, models_dir):
    repo = IDS[kind]
    model_id = repo.removeprefix("timm/")  # configs name timm models by their timm name
    bb = build_backbone(kind, model_id, size, None, pretrained=True, models_dir=models_dir).eval()
    assert bb.shape.grid == 3 and bb.num_patches == 9 and bb.shape.image_size == size
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        feats, ref = bb(x), _reference_features(kind, models_dir / repo, x)
    assert feats.shape == (2, 9, 32) and all(p.dtype == torch.float32 for p in bb.parameters())
    assert torch.allclose(feats, ref, atol=1e-5)
    if kind == "clip":
        assert bb.model.config.hidden_act == "quick_gelu"  # from the checkpoint, as OpenAI trained it


def test_timm_position_embeddings_are_resampled_to_the_requested_size(models_dir):
    bb = build_backbone("dinov2", "vit_large_patch14_reg4_dinov2.lvd142m", HF_IMAGE, None, True, models_dir=models_dir)
    assert DINO_SAVED_IMAGE != HF_IMAGE and bb.model.pos_embed.shape[1] == 9


def test_a_checkpoint_at_another_resolution_is_refused(models_dir):
    with pytest.raises(ValueError, match="checkpoint is for 42 px images but encoder.image_size=336"):
        build_backbone("clip", IDS["clip"], 336, None, True, models_dir=models_dir)


def test_family_facts_are_each_checkpoints_own_preprocessing():
    """Mean, std and interpolation of every family equal what its public checkpoint declares
    (timm's registry and transformers' processors know them offline)."""
    import timm
    from transformers import CLIPImageProcessor, SiglipImageProcessor

    timm_ids = {"clip": "vit_large_patch14_clip_336.openai", "siglip": "vit_so400m_patch14_siglip_384.webli",
                "dinov2": "vit_large_patch14_reg4_dinov2.lvd142m", "in1k": "vit_large_patch16_224.augreg_in21k_ft_in1k"}
    for kind, name in timm_ids.items():
        cfg = timm.models.get_pretrained_cfg(name).to_dict()
        fam = FAMILIES[kind]
        assert np.allclose(cfg["mean"], fam.mean) and np.allclose(cfg["std"], fam.std), kind
        assert cfg["interpolation"] == fam.interpolation, kind
    for kind, proc in (("clip", CLIPImageProcessor()), ("siglip", SiglipImageProcessor())):
        assert np.allclose(proc.image_mean, FAMILIES[kind].mean) and np.allclose(proc.image_std, FAMILIES[kind].std)
    assert FAMILIES["clip"].fill_rgb() == (122, 116, 104) and FAMILIES["siglip"].fill_rgb() == (127, 127, 127)


def test_a_checkpoint_with_other_normalisation_is_refused(tmp_path, models_dir):
    import json
    import shutil

    folder = tmp_path / IDS["clip"]
    shutil.copytree(models_dir / IDS["clip"], folder)
    conf = json.loads((folder / "preprocessor_config.json").read_text())
    conf["image_mean"] = [0.5, 0.5, 0.5]
    (folder / "preprocessor_config.json").write_text(json.dumps(conf))
    with pytest.raises(ValueError, match="preprocesses with"):
        build_backbone("clip", IDS["clip"], HF_IMAGE, None, True, models_dir=tmp_path)


@pytest.mark.parametrize("llm", LLM_OPTIONS)
def test_llm_and_tokenizer_load_with_pad_token_and_embeddings_padded_to_64(llm, tmp_path, models_dir):
    """Every LLM option's load path (its model type, its declared fields) on a tiny checkpoint."""
    from transformers import AutoModelForCausalLM

    from vlm_sweeps.components import llm_spec
    from vlm_sweeps.job import load_tokenizer
    from vlm_sweeps.models.llm import attention_of, build_llm

    cfg = compose_full([f"llm={llm}"] + tiny_llm_overrides(llm), tmp_path, models_dir)
    tok = load_tokenizer(cfg, None, tmp_path)
    assert tok.pad_token == "<PAD>" and tok.model_max_length == 2048
    model = build_llm(llm_spec(cfg.llm), tok, None, 2048, True, models_dir=models_dir).eval()
    assert model.config.model_type == cfg.llm.model_type
    rows = model.get_input_embeddings().num_embeddings
    assert rows % 64 == 0 and rows >= len(tok) and model.config.pad_token_id == tok.pad_token_id
    assert model.config._attn_implementation == attention_of(model.config) and model.dtype == torch.float32
    reference = AutoModelForCausalLM.from_pretrained(models_dir / cfg.llm.id, dtype=torch.float32).eval()
    ids = torch.tensor([[1, 5, 9, 14, 3]])
    with torch.no_grad():
        vocab = reference.config.vocab_size
        assert torch.allclose(model(ids).logits[..., :vocab], reference(ids).logits, atol=1e-5)


def test_a_checkpoint_of_another_family_is_refused(tmp_path, models_dir):
    from vlm_sweeps.components import llm_spec
    from vlm_sweeps.models.llm import build_llm

    cfg = compose_full(["llm=llama2", f"llm.id={IDS['phi2']}"] + tiny_llm_overrides("llama2"), tmp_path, models_dir)
    with pytest.raises(ValueError, match=r"not the architecture llm=llama2 declares .*model_type: 'llama' != 'phi'"):
        build_llm(llm_spec(cfg.llm), [0] * 10, None, 2048, True, models_dir=models_dir)


def test_a_checkpoint_of_another_size_is_refused_before_it_loads(tmp_path, models_dir):
    """The real option (4096 wide, 32 layers) against the tiny checkpoint under its id."""
    from vlm_sweeps.components import llm_spec
    from vlm_sweeps.models.llm import build_llm

    cfg = compose_full(["llm=qwen25_7b"], tmp_path, models_dir)
    with pytest.raises(ValueError, match=r"hidden_size: 3584 != 40; num_hidden_layers: 28 != 2"):
        build_llm(llm_spec(cfg.llm), [0] * 10, None, 2048, True, models_dir=models_dir)


def _image(folder, name, seed):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (30 + seed, 50, 3), dtype=np.uint8)).save(folder / name)
    return name


def test_fused_vlm_trains_a_step_through_the_full_path(tmp_path, models_dir):
    """scale=full end to end at tiny size: validation, weights, tokenizer, LLaVA-format data with
    text-only records, bf16 autocast, gradient checkpointing, 2 micro-batches per step."""
    from vlm_sweeps import job, validate

    mix = tmp_path / "data" / "download" / "llava-v1.5-instruct"
    records = [{"id": f"r{i}", "image": "coco/" + _image(mix / "coco", f"{i}.png", i),
                "conversations": [{"from": "human", "value": "<image>\nWhat is in the image?"},
                                  {"from": "gpt", "value": "A red square." * (1 + i)}]} for i in range(4)]
    records += [{"id": f"t{i}", "conversations": [{"from": "human", "value": "hello"}, {"from": "gpt", "value": "hi"}]}
                for i in range(4)]
    write_llava(mix, records, "llava_v1_5_mix665k.json")
    cfg = compose_full(["encoder=dinosiglip", f"encoder.image_size={HF_IMAGE}", "llm=mistral", *tiny_llm_overrides("mistral"),
                        "data=llava_v15",
                        f"paths.data_root={tmp_path / 'data'}", "scale.finetune.batch_size=4",
                        "scale.finetune.micro_batch_size=2", "scale.max_seq_len=64"], tmp_path, models_dir)
    validate.check(cfg)
    s = job.setup(cfg)
    assert s.autocast == torch.bfloat16 and any(getattr(m, "gradient_checkpointing", False) for m in s.model.llm.modules())
    before = {k: v.clone() for k, v in s.model.projector.state_dict().items()}
    logged = []
    steps = job.train(cfg, s, log_fn=lambda metrics, step: logged.append(metrics))
    assert steps == 2 and all(np.isfinite(m["train/loss"]) for m in logged)
    assert any(not torch.equal(before[k], v) for k, v in s.model.projector.state_dict().items())
