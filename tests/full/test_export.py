"""Export to transformers' LLaVA format: the exported checkpoint, loaded with the library users
already have, gives our model's loss and token probabilities over the whole vocabulary on the same
image and prompt, through its own processor."""

import copy
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

# (encoder, llm, resize, tokenizer size): 512 is the default tiny tokenizer's, a multiple of 64, so
# padding leaves no row to spare for `<image>` (the SMALL world's tokenizer has 511 tokens)
CASES = [("clip", "llama2", "naive", 512), ("siglip", "mistral", "crop", None),
         ("clip_224", "vicuna_v15", "letterbox", None)]


def _image(seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (50, 80, 3), dtype=np.uint8))


def _sized(tok, size: int):
    """A copy of `tok` grown to `size` tokens by unused added tokens (the prompt tokenizes as before)."""
    tok = copy.deepcopy(tok)
    tok.add_tokens([f"<unused_{i}>" for i in range(size - len(tok))])
    assert len(tok) == size
    return tok


@pytest.mark.parametrize("encoder,llm,resize,tokens", CASES, ids=["-".join(c[:3]) for c in CASES])
def test_exported_llava_gives_our_logits(encoder, llm, resize, tokens, small_world, session_root, tmp_path):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    _, tok = small_world
    tok = _sized(tok, tokens) if tokens else tok
    cfg = compose(SMALL + [f"encoder={encoder}", f"llm={llm}", f"resize={resize}"], root=session_root)
    torch.manual_seed(0)
    model = build_vlm(cfg, tok).eval()
    transform = image_transforms(cfg, model)[0]
    out = export_llava(model, tok, transform, tmp_path / "llava", cfg.llm.prompt)
    llava = LlavaForConditionalGeneration.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out, backend="pil")
    notes = json.loads((out / "vlm_sweeps.json").read_text())

    image, prompt = _image(), question_prompt(get_format(cfg.llm.prompt), "What colour is the square?")
    prompt_ids, _ = encode_segments(tok, [(prompt, False)], 10_000)  # [BOS] + prompt, as in training
    ids, labels = encode_segments(tok, [(prompt, False), ("A red square.", True)], 10_000)
    answer = ids[len(prompt_ids):]
    with torch.no_grad():
        rounding, model.feature_dtype = model.feature_dtype, None  # the architecture alone: bit-exact
        pixels = [transform(image)[None]]
        ours_loss = model(pixels, [ids], [labels]).loss
        embeds, mask, pos, _ = model.build_inputs(model.encode_images(pixels), [ids])
        ours = model.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos).logits
        model.feature_dtype = rounding

    if resize == "letterbox":  # the documented step before the processor
        image = letterbox(image, tuple(notes["letterbox_fill"]))
    # the tiny tokenizer adds no BOS by itself (Llama's does): write it
    inputs = processor(images=image, text=tok.bos_token + notes["text"].format(prompt=prompt),
                       return_tensors="pt", add_special_tokens=False)
    image_id, n = llava.config.image_token_id, model.num_patches
    expected_ids = torch.cat([prompt_ids[:1], torch.full((n,), image_id), prompt_ids[1:]])
    assert torch.equal(inputs["input_ids"][0], expected_ids)  # [BOS] [image x N] [prompt]
    assert torch.equal(inputs["pixel_values"][0], transform(_image()))  # bit-exact preprocessing
    assert len(tok) <= image_id < ours.shape[-1]  # `<image>` takes a row the model reserved: no row added
    # the answer as training tokenizes it; its labels in LLaVA's layout (image positions ignored)
    llava_ids = torch.cat([inputs["input_ids"][0], answer])[None]
    llava_labels = torch.cat([labels[:1], torch.full((n,), -100), labels[1:]])[None]
    with torch.no_grad():
        out = llava(input_ids=llava_ids, pixel_values=inputs["pixel_values"], labels=llava_labels)
    theirs = out.logits
    assert theirs.shape == ours.shape  # the whole vocabulary, the same rows
    diff = (theirs.log_softmax(-1) - ours.log_softmax(-1)).abs().max().item()
    print(f"{encoder}+{llm} ({resize}): loss ours {ours_loss.item():.6f} / LLaVA {out.loss.item():.6f}, "
          f"max abs log-probability difference {diff:.3g} over {tuple(ours.shape)}")
    assert diff < 1e-4
    assert ours_loss.item() == pytest.approx(out.loss.item(), abs=1e-5)

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
    # an LLM without a spare row for `<image>` (built elsewhere): adding one would change its predictions
    cfg = compose(SMALL, root=session_root)
    model = build_vlm(cfg, tok)
    model.llm.resize_token_embeddings(len(tok))
    with pytest.raises(ValueError, match="cannot export to LLaVA: <image> gets id .* none spare"):
        export_llava(model, tok, image_transforms(cfg, model)[0], tmp_path / "no_spare_row")


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
