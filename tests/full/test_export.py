"""Export to transformers' LLaVA format: the exported checkpoint, loaded with the library users
already have, gives our model's logits on the same image and prompt, through its own processor."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import SMALL, compose
from vlm_sweeps.data.instruct import encode_segments
from vlm_sweeps.data.transforms import letterbox
from vlm_sweeps.export import export_llava
from vlm_sweeps.models.builder import build_vlm, image_transforms
from vlm_sweeps.models.prompts import get_format, question_prompt

CASES = [("clip", "llama2", "naive"), ("siglip", "mistral", "crop"), ("clip_224", "vicuna_v15", "letterbox")]


def _image(seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (50, 80, 3), dtype=np.uint8))


@pytest.mark.parametrize("encoder,llm,resize", CASES, ids=["-".join(c) for c in CASES])
def test_exported_llava_gives_our_logits(encoder, llm, resize, small_world, session_root, tmp_path):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    _, tok = small_world
    cfg = compose(SMALL + [f"encoder={encoder}", f"llm={llm}", f"resize={resize}"], root=session_root)
    torch.manual_seed(0)
    model = build_vlm(cfg, tok).eval()
    transform = image_transforms(cfg, model)[0]
    out = export_llava(model, tok, transform, tmp_path / "llava", cfg.llm.prompt)
    llava = LlavaForConditionalGeneration.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out, backend="pil")
    notes = json.loads((out / "vlm_sweeps.json").read_text())

    image, prompt = _image(), question_prompt(get_format(cfg.llm.prompt), "What colour is the square?")
    ids, _ = encode_segments(tok, [(prompt, False)], 10_000)  # [BOS] + prompt, as in training
    with torch.no_grad():
        rounding, model.feature_dtype = model.feature_dtype, None  # the architecture alone: bit-exact
        embeds, mask, pos, _ = model.build_inputs(model.encode_images([transform(image)[None]]), [ids])
        ours = model.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos).logits
        model.feature_dtype = rounding

    if resize == "letterbox":  # the documented step before the processor
        image = letterbox(image, tuple(notes["letterbox_fill"]))
    # the tiny tokenizer adds no BOS by itself (Llama's does): write it
    inputs = processor(images=image, text=tok.bos_token + notes["text"].format(prompt=prompt),
                       return_tensors="pt", add_special_tokens=False)
    expected_ids = torch.cat([ids[:1], torch.full((model.num_patches,), llava.config.image_token_id), ids[1:]])
    assert torch.equal(inputs["input_ids"][0], expected_ids)  # [BOS] [image x N] [prompt]
    assert torch.equal(inputs["pixel_values"][0], transform(_image()))  # bit-exact preprocessing
    with torch.no_grad():
        # the export may add a block of rows for `<image>` (no spare padded row): compare our vocabulary
        theirs = llava(**inputs).logits[..., :ours.shape[-1]]
    diff = (theirs - ours).abs().max().item()
    print(f"{encoder}+{llm} ({resize}): max abs logit difference {diff:.3g} over {tuple(ours.shape)}")
    assert theirs.shape == ours.shape and diff < 1e-4

    # Frozen (always, at evaluation), our encoder's features are rounded to half precision (the
    # feature cache's); the LLaVA class keeps them in fp32: the export records it, logits stay close.
    with torch.no_grad():
        embeds, mask, pos, _ = model.build_inputs(model.encode_images([transform(_image())[None]]), [ids])
        rounded = model.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos).logits
    assert notes["frozen_features_rounded_to"] == "float16"
    assert 0 < (rounded - theirs).abs().max().item() < 1e-2


def test_only_llava_shaped_models_export(small_world, session_root, tmp_path):
    _, tok = small_world
    for override in ("encoder=dinosiglip", "llm=phi2", "encoder=in1k"):
        cfg = compose(SMALL + [override], root=session_root)
        model = build_vlm(cfg, tok)
        with pytest.raises(ValueError, match="cannot export to LLaVA"):
            export_llava(model, tok, image_transforms(cfg, model)[0], tmp_path / override)


def test_a_trained_job_checkpoint_exports(session_root, tmp_path):
    """The route for a finished run: rebuild the job's model, load its checkpoint, export."""
    from transformers import LlavaForConditionalGeneration

    from vlm_sweeps import job
    from vlm_sweeps.export import export_checkpoint
    from vlm_sweeps.train.checkpoint import atomic_save, trained_state

    cfg = compose(SMALL + ["resize=naive"], root=session_root)
    s = job.setup(cfg)
    with torch.no_grad():
        s.model.projector.net[2].bias.add_(1.0)  # "trained": differs from a fresh build
    atomic_save({"model": trained_state(s.model, {"projector", "llm"})}, tmp_path / "checkpoint.pt")
    out = export_checkpoint(cfg, tmp_path / "checkpoint.pt", tmp_path / "llava")
    llava = LlavaForConditionalGeneration.from_pretrained(out)
    assert torch.equal(llava.model.multi_modal_projector.linear_2.bias, s.model.projector.net[2].bias)
