"""Model side of evaluation: examples -> predictions, batched.

Free-form answers: greedy decoding with a KV cache over left-padded batches (the same text as batch
size 1). Closed-set answers: the candidate with the highest log-likelihood under the model, all
candidates of a batch scored in one forward pass (no free generation, as in the Prismatic suite).
"""

from __future__ import annotations

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


def _greedy_config(max_new_tokens: int, eos_token_id: int | None, pad_token_id: int | None):
    """Plain greedy decoding for `generate`, whatever the checkpoint's generation_config.json says.

    `generate` fills every field left None here from the model's own generation config (Llama-2 and
    Llama-3.1 sample at temperature 0.6, top_p 0.9; Qwen2.5-instruct adds top_k 20 and
    repetition_penalty 1.05; Qwen2.5 sets max_new_tokens 2048; Phi-3 several EOS ids), so each field
    that could change a greedy token, the stopping point or the output type is set here. The
    sampling-only ones do nothing without `do_sample`, but inherited they draw a "generation flags
    are not valid" warning: they are pinned to their neutral values. `max_length` and `min_length`
    stay unset (`max_new_tokens` and `min_new_tokens` take precedence; setting them too warns)."""
    from transformers import GenerationConfig

    return GenerationConfig(
        max_new_tokens=max_new_tokens, min_new_tokens=0, do_sample=False, num_beams=1, num_return_sequences=1,
        temperature=1.0, top_k=50, top_p=1.0, repetition_penalty=1.0, no_repeat_ngram_size=0,
        cache_implementation="dynamic", eos_token_id=eos_token_id, pad_token_id=pad_token_id,
        return_dict_in_generate=False)


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
        """Greedy decoding of a batch through transformers' `generate` (KV cache, left padding);
        stops per row at EOS. The same texts as batch size 1, and as the hand-written loop this
        replaced (tests/unit/test_harness.py keeps that loop as the reference)."""
        if max_new_tokens <= 0:  # `generate` refuses a zero budget
            return ["" for _ in examples]
        eos = self.tokenizer.eos_token_id
        with self._autocast():
            image_embeds = self._image_embeds(examples)
            ids = [torch.tensor(self._prompt_ids(ex), device=self.device) for ex in examples]
            # position ids are left to `generate`: it derives them from the mask (cumsum - 1, padding
            # at 0) exactly as build_inputs does, and extends them by one per new token
            embeds, mask, _, _ = self.model.build_inputs(image_embeds, ids, padding_side="left")
            config = _greedy_config(max_new_tokens, eos, self.tokenizer.pad_token_id)
            # inputs_embeds without input_ids: the result holds only the new tokens, [B, <= max_new_tokens]
            # (rows finished early are filled with the pad id)
            tokens = self.model.llm.generate(inputs_embeds=embeds, attention_mask=mask, generation_config=config)
        texts = []
        for row in tokens.tolist():
            row = row[: row.index(eos)] if eos in row else row
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True).strip())
        return texts

    @torch.no_grad()
    def choose(self, examples: Sequence[EvalExample]) -> list[str]:
        """For each example, the candidate in `choices` with the highest log-likelihood (the first
        one on a tie, as `np.argmax`), carrying every candidate's probability renormalised over the
        candidates, as vlm-evaluation's `return_string_probabilities` computes them: when every
        candidate is one token (its case: "Yes"/"No", "True"/"False", letters), the next-token
        distribution after the prompt, read at the candidates' tokens; otherwise each candidate's
        summed log-probability, softmaxed. Each answer is an `examples.Choice`: a str equal to the
        candidate, with `.probabilities` (float32, as vlm-evaluation keeps them).

        Examples are scored one at a time, so that nothing about an answer (choice or probabilities)
        depends on which other examples share its batch (padding and kernel shapes move logits by
        ~1e-6, enough to change a probability, though not the choice)."""
        from vlm_sweeps.eval.examples import Choice

        model = self.model
        chosen = []
        for ex in examples:
            prompt = self._prompt_ids(ex)
            candidates = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in ex.choices]
            single_token = all(len(c) == 1 for c in candidates)
            # one row (the prompt) when the candidates are single tokens, else prompt + candidate per row
            rows = [torch.tensor(prompt, device=self.device)] if single_token else \
                [torch.tensor(prompt + c, device=self.device) for c in candidates]
            with self._autocast():
                image_embeds = self._image_embeds([ex])
                repeated = image_embeds.expand(len(rows), *image_embeds.shape[1:]) if image_embeds is not None else None
                embeds, mask, pos, _ = model.build_inputs(repeated, rows, padding_side="right")
                logprobs = model.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos,
                                     use_cache=False).logits.float().log_softmax(-1)
            offset = model.num_patches if image_embeds is not None else 0
            # token t of a candidate sits at sequence position offset+len(prompt)+t, predicted at -1
            if single_token:
                scores = [logprobs[0, offset + len(prompt) - 1, c[0]].item() for c in candidates]
            else:
                scores = [logprobs[r, torch.arange(len(c), device=self.device) + offset + len(prompt) - 1,
                                   torch.tensor(c, device=self.device)].sum().item() for r, c in enumerate(candidates)]
            best = max(range(len(scores)), key=lambda k: (scores[k], -k))  # first of equal maxima
            probabilities = torch.tensor(scores, dtype=torch.float64).softmax(0).to(torch.float32).tolist()
            chosen.append(Choice(ex.choices[best], probabilities))
        return chosen

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
