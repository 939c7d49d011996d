"""Model side of evaluation: examples -> predictions, batched.

Free-form answers: greedy decoding with a KV cache over left-padded batches (the same text as batch
size 1). Closed-set answers: the candidate with the highest log-likelihood under the model, all
candidates of a batch scored in one forward pass (no free generation, as in the Prismatic suite).
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Sequence

import torch
from PIL import Image

from vlm_sweeps.data.instruct import load_image
from vlm_sweeps.data.transforms import ImageTransform
from vlm_sweeps.eval.examples import EvalExample
from vlm_sweeps.features import FrozenFeatures, image_key
from vlm_sweeps.models.prompts import PromptFormat, question_prompt
from vlm_sweeps.models.vlm import VisionLanguageModel

log = logging.getLogger(__name__)
BLANK_RGB = (128, 128, 128)
# Part of every prediction-cache key (eval/cache.py): bump it when a change here can change an answer
# (prompt assembly, decoding, candidate scoring), so that cached predictions are not reused.
HARNESS_VERSION = 1


def _cache_argument(llm) -> str:
    """transformers >= 5.2x names the KV cache `cache` (in and out); earlier `past_key_values`."""
    return "cache" if "cache" in inspect.signature(llm.forward).parameters else "past_key_values"


@dataclass
class Answerer:
    """Everything needed to turn examples into predictions with one model."""

    model: VisionLanguageModel
    tokenizer: object
    fmt: PromptFormat
    transforms: Sequence[ImageTransform]
    device: torch.device
    blind: bool = False  # control: every image replaced by a blank one of the same size
    autocast_dtype: torch.dtype | None = None
    features: FrozenFeatures | None = None  # the frozen-feature cache of an encoder never trained

    def _image_embeds(self, examples: Sequence[EvalExample]) -> torch.Tensor | None:
        """Projected patches of the batch's images: encoded, or read from the feature cache (and
        the missing ones encoded and stored)."""
        if examples[0].image is None:
            return None
        if self.features is None or self.blind:
            return self.model.encode_images(self._pixels(examples))
        keys = [image_key(ex.image) for ex in examples]
        found = [self.features.lookup(key) for key in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            fresh = self.model.backbone_features(self._pixels([examples[i] for i in missing]))
            self.features.store([keys[i] for i in missing], fresh)
            for j, i in enumerate(missing):
                found[i] = [f[j] for f in fresh]
        per_backbone = [torch.stack([f[b].to(self.device) for f in found]) for b in range(len(found[0]))]
        return self.model.project(per_backbone)

    def _pixels(self, examples: Sequence[EvalExample]) -> list[torch.Tensor] | None:
        if examples[0].image is None:
            return None
        images = []
        for ex in examples:
            image = load_image(ex.image, f"example {ex.qid}")
            if self.blind:
                image = Image.new("RGB", image.size, BLANK_RGB)
            images.append(image)
        return [torch.stack([t(im) for im in images]).to(self.device) for t in self.transforms]

    def _prompt_ids(self, ex: EvalExample) -> list[int]:
        text = question_prompt(self.fmt, ex.question)
        return [self.tokenizer.bos_token_id] + self.tokenizer(text, add_special_tokens=False)["input_ids"]

    @property
    def dtype_name(self) -> str:
        """The compute dtype, as named in prediction-cache keys."""
        return "fp32" if self.autocast_dtype is None else str(self.autocast_dtype).removeprefix("torch.")

    def _autocast(self):
        import contextlib

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @torch.no_grad()
    def generate(self, examples: Sequence[EvalExample], max_new_tokens: int) -> list[str]:
        """Greedy decoding of a batch; stops per row at EOS."""
        model, llm = self.model, self.model.llm
        with self._autocast():
            image_embeds = self._image_embeds(examples)
            ids = [torch.tensor(self._prompt_ids(ex), device=self.device) for ex in examples]
            embeds, mask, pos, _ = model.build_inputs(image_embeds, ids, padding_side="left")
            # logits_to_keep=1: the prefill only needs the last position's logits
            out = llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
            cache_arg = _cache_argument(llm)
            eos = self.tokenizer.eos_token_id
            done = torch.zeros(len(examples), dtype=torch.bool, device=self.device)
            generated: list[torch.Tensor] = []
            for _ in range(max_new_tokens):
                next_ids = out.logits[:, -1].argmax(-1)
                next_ids = torch.where(done, torch.full_like(next_ids, eos), next_ids)
                generated.append(next_ids)
                done |= next_ids == eos
                if bool(done.all()):
                    break
                mask = torch.cat([mask, mask.new_ones(len(examples), 1)], dim=1)
                pos = pos[:, -1:] + 1
                out = llm(input_ids=next_ids[:, None], attention_mask=mask, position_ids=pos, use_cache=True,
                          **{cache_arg: getattr(out, cache_arg)})
        tokens = torch.stack(generated, dim=1).tolist() if generated else [[] for _ in examples]
        texts = []
        for row in tokens:
            row = row[: row.index(eos)] if eos in row else row
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True).strip())
        return texts

    @torch.no_grad()
    def choose(self, examples: Sequence[EvalExample]) -> list[str]:
        """For each example, the candidate in `choices` with the highest summed log-probability."""
        model = self.model
        with self._autocast():
            image_embeds = self._image_embeds(examples)
            rows, owners, candidates, spans = [], [], [], []
            for i, ex in enumerate(examples):
                prompt = self._prompt_ids(ex)
                for choice in ex.choices:
                    cand = self.tokenizer(choice, add_special_tokens=False)["input_ids"]
                    rows.append(torch.tensor(prompt + cand, device=self.device))
                    owners.append(i)
                    candidates.append(choice)
                    spans.append((len(prompt), len(cand)))
            index = torch.tensor(owners, device=self.device)
            repeated = image_embeds[index] if image_embeds is not None else None
            embeds, mask, pos, _ = model.build_inputs(repeated, rows, padding_side="right")
            logprobs = model.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos,
                                 use_cache=False).logits.float().log_softmax(-1)
        offset = model.num_patches if image_embeds is not None else 0
        scores = []
        for r, (start, length) in enumerate(spans):
            # token t of the candidate sits at sequence position offset+start+t, predicted at -1
            positions = torch.arange(start, start + length, device=self.device) + offset
            targets = rows[r][start:start + length]
            scores.append(logprobs[r, positions - 1, targets].sum().item())
        best: dict[int, tuple[float, str]] = {}
        for i, choice, score in zip(owners, candidates, scores):
            if i not in best or score > best[i][0]:
                best[i] = (score, choice)
        return [best[i][1] for i in range(len(examples))]

    def answer(self, examples: Sequence[EvalExample], batch_size: int, max_new_tokens: int,
               progress=None) -> list[str]:
        """Predictions for all examples, in order, batched by answer mode."""
        preds: list[str | None] = [None] * len(examples)
        for mode in ("generate", "closed_set"):
            idx = [i for i, ex in enumerate(examples) if ex.mode == mode]
            for b in range(0, len(idx), batch_size):
                chunk = idx[b:b + batch_size]
                batch = [examples[i] for i in chunk]
                out = self.generate(batch, max_new_tokens) if mode == "generate" else self.choose(batch)
                for i, p in zip(chunk, out):
                    preds[i] = p
                if progress is not None:
                    progress.update(len(chunk))
        return preds  # type: ignore[return-value]
