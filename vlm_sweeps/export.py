"""Export a trained single-encoder VLM (CLIP or SigLIP + gelu-mlp + Llama/Mistral) to transformers'
LLaVA format: weights, config and processor, loadable with `LlavaForConditionalGeneration` and
`AutoProcessor`, giving the same logits as our model on the same image and prompt, over the
whole vocabulary (so the same loss and token probabilities).

How our model maps onto LLaVA:
- vision tower: ours has its last block removed (features = output of block L-1). It is saved
  as is, with `num_hidden_layers = L-1` and `vision_feature_layer = -1`: the same features as
  LLaVA's usual `-2` on the full tower, without shipping a block that is never used. CLIP's CLS
  token is dropped (`vision_feature_select_strategy="default"`); SigLIP has none (`"full"`).
- projector `gelu-mlp` (Linear, exact GELU, Linear) = LLaVA's `linear_1`, `"gelu"`, `linear_2`.
- LLM: model and head unchanged, rows included. The tokenizer gains an `<image>` token with the
  first id past it, a row every LLM we build reserves (models/llm.py `RESERVED_ROWS`); its
  embedding row is never read (LLaVA writes the image features over the image-token positions).
  No row is added: added rows would enter the softmax (transformers fills them at random), and
  the export would be another model.
- sequence: ours is `[BOS] [patches] [prompt]`. LLaVA puts the patches where its `<image>`
  tokens are, so the text must put `<image>` right after BOS: text = `"<image> " + prompt`
  (prompt as built by models/prompts.py, e.g. `"In: What is this?\\nOut: "`). The space makes a
  Metaspace tokenizer (Llama, Mistral, our tiny one) start the prompt with the same word-initial
  `▁` it gets when we tokenize the prompt on its own; `"<image>" + prompt` would drop it. Llama
  and Mistral tokenizers add BOS themselves.
- preprocessing (`image_processor`): CLIPImageProcessor with the backbone's mean/std and bicubic
  resampling. `naive` = resize to SxS, no crop; `crop` = shortest edge to S then centre crop S.
  Both are bit-exact with ours on the PIL backend (`AutoProcessor.from_pretrained(dir,
  backend="pil")`); the default torchvision backend resamples differently (up to ~0.015 in
  normalised units). `letterbox` has no transformers equivalent: the processor is the naive one,
  and the image must first be padded to a square with the backbone's mean colour
  (`vlm_sweeps.data.transforms.letterbox(image, fill)`, fill in `vlm_sweeps.json`); with that
  step the result is exact too.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch

from vlm_sweeps.data.transforms import ImageTransform
from vlm_sweeps.models.vlm import VisionLanguageModel

IMAGE_TOKEN = "<image>"
EXPORTABLE_LLMS = ("llama", "mistral")


def check_exportable(model: VisionLanguageModel) -> None:
    problems = []
    if len(model.encoder) != 1 or model.encoder[0].kind not in ("clip", "siglip"):
        problems.append(f"encoder {[bb.kind for bb in model.encoder]}: LLaVA takes one CLIP or SigLIP tower")
    if model.projector.kind != "gelu-mlp":
        problems.append(f"projector {model.projector.kind!r}: transformers' Llava has no equivalent of this connector "
                        "(its multi_modal_projector is gelu-mlp: projector=mlp with a single-backbone encoder)")
    if any(len(bb.layers) != 1 for bb in model.encoder):
        problems.append("features from several blocks: the export writes one feature layer (features=penultimate "
                        "or features=last)")
    if model.llm.config.model_type not in EXPORTABLE_LLMS:
        problems.append(f"LLM {model.llm.config.model_type!r}: exportable LLMs are {', '.join(EXPORTABLE_LLMS)}")
    if problems:
        raise ValueError("cannot export to LLaVA: " + "; ".join(problems))


def image_processor(transform: ImageTransform):
    """The transformers image processor that reproduces `transform` (letterbox: see module doc)."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.image_utils import PILImageResampling

    resample = {"bicubic": PILImageResampling.BICUBIC, "bilinear": PILImageResampling.BILINEAR}[transform.interpolation]
    common = dict(do_resize=True, resample=resample, do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                  image_mean=list(transform.mean), image_std=list(transform.std), do_convert_rgb=True)
    square = {"height": transform.size, "width": transform.size}
    if transform.strategy == "crop":
        return CLIPImageProcessorPil(size={"shortest_edge": transform.size}, do_center_crop=True, crop_size=square,
                                     **common)
    return CLIPImageProcessorPil(size=square, do_center_crop=False, crop_size=square, **common)


def llava_config(model: VisionLanguageModel, image_token_id: int):
    from transformers import LlavaConfig

    bb = model.encoder[0]
    vision = copy.deepcopy(bb.model.config)
    vision.num_hidden_layers = bb.shape.depth - 1  # the tower as built: last block removed
    if bb.kind == "siglip":
        vision.vision_use_head = False
    text = copy.deepcopy(model.llm.config)
    text.vocab_size = model.llm.get_input_embeddings().num_embeddings
    return LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_token_id,
                       image_seq_length=bb.num_patches, projector_hidden_act="gelu",
                       vision_feature_select_strategy="default" if bb.kind == "clip" else "full",
                       vision_feature_layer=-1, multimodal_projector_bias=True, tie_word_embeddings=False)


def to_llava(model: VisionLanguageModel, tokenizer):
    """(LlavaForConditionalGeneration holding our weights, the tokenizer with `<image>` added)."""
    from transformers import LlavaForConditionalGeneration

    check_exportable(model)
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    rows = model.llm.get_input_embeddings().num_embeddings
    if image_token_id >= rows:
        raise ValueError(f"cannot export to LLaVA: {IMAGE_TOKEN} gets id {image_token_id} and the LLM has {rows} "
                         "rows, none spare; rows added now would change the model's predictions. LLMs built by "
                         "vlm_sweeps reserve one (models/llm.py RESERVED_ROWS): rebuild the model with this version")
    config = llava_config(model, image_token_id)
    llava = LlavaForConditionalGeneration(config).to(next(model.parameters()).dtype).eval()
    proj = model.projector.net
    llava.model.vision_tower.load_state_dict(model.encoder[0].model.state_dict())
    llava.model.multi_modal_projector.load_state_dict({
        "linear_1.weight": proj[0].weight, "linear_1.bias": proj[0].bias,
        "linear_2.weight": proj[2].weight, "linear_2.bias": proj[2].bias})
    llava.model.language_model.load_state_dict(model.llm.model.state_dict())
    llava.lm_head.load_state_dict(model.llm.lm_head.state_dict())
    return llava, tokenizer


def export_llava(model: VisionLanguageModel, tokenizer, transform: ImageTransform, out_dir: Path | str,
                 prompt_format: str | None = None) -> Path:
    """Write `model` as a LLaVA checkpoint (safetensors) with its processor into `out_dir`."""
    from transformers import LlavaProcessor

    out_dir = Path(out_dir)
    llava, tokenizer = to_llava(model, tokenizer)
    llava.save_pretrained(out_dir)
    bb = model.encoder[0]
    processor = LlavaProcessor(image_processor=image_processor(transform), tokenizer=tokenizer,
                               patch_size=bb.shape.patch, vision_feature_select_strategy=llava.config.vision_feature_select_strategy,
                               image_token=IMAGE_TOKEN, num_additional_image_tokens=bb.num_prefix_tokens)
    processor.save_pretrained(out_dir)
    notes: dict[str, Any] = {"resize": transform.strategy, "image_size": transform.size,
                             "load_processor_with": {"backend": "pil"},
                             "text": "<image> {prompt}", "prompt_format": prompt_format}
    if model.feature_dtype is not None:  # vlm_sweeps rounds frozen features; the LLaVA class cannot
        notes["frozen_features_rounded_to"] = str(model.feature_dtype).removeprefix("torch.")
    if transform.strategy == "letterbox":
        notes["letterbox_fill"] = list(transform.fill)
        notes["before_the_processor"] = ("pad the image to a square with letterbox_fill "
                                         "(vlm_sweeps.data.transforms.letterbox)")
    (out_dir / "vlm_sweeps.json").write_text(json.dumps(notes, indent=2))
    return out_dir


def export_checkpoint(cfg: Any, checkpoint: Path | str, out_dir: Path | str) -> Path:
    """Export a trained job: rebuild its model (setup), load its checkpoint, write the LLaVA files."""
    from vlm_sweeps.job import setup

    s = setup(cfg)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    s.model.load_state_dict(state["model"], strict=False)
    return export_llava(s.model.cpu().eval(), s.tokenizer, s.transforms[0], out_dir, cfg.llm.prompt)
