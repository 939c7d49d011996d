"""Instruction records -> model inputs: per-backbone pixels, token ids, labels on assistant turns."""

from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset

from vlm_sweeps.data.llava import DataError, Record
from vlm_sweeps.data.transforms import ImageTransform
from vlm_sweeps.features import FrozenFeatures, image_key
from vlm_sweeps.models.prompts import PromptFormat, conversation_segments
from vlm_sweeps.models.vlm import IGNORE_INDEX


def encode_segments(tokenizer, segments: list[tuple[str, bool]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[BOS] + each segment tokenized on its own; labels are -100 except on target segments.
    Truncated to `max_len` tokens (the sequence budget left after the image patches)."""
    ids, labels = [tokenizer.bos_token_id], [IGNORE_INDEX]
    if not segments:
        return torch.tensor(ids[:max_len]), torch.tensor(labels[:max_len])
    # one batched call: each segment still tokenized on its own, without a call's overhead per segment
    encoded = tokenizer([text for text, _ in segments], add_special_tokens=False)["input_ids"]
    for (_, is_target), seg in zip(segments, encoded):
        ids += seg
        labels += seg if is_target else [IGNORE_INDEX] * len(seg)
    return torch.tensor(ids[:max_len]), torch.tensor(labels[:max_len])


def load_image(path, where: str) -> Image.Image:
    """Open an image fully, naming the file and record when it is missing or corrupt.
    We stop rather than skip: silently training on fewer or garbage samples would bias a sweep."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Image.DecompressionBombError as err:
        raise DataError(f"{where}: image {path} is too large for PIL ({err}); downscale it, or raise "
                        "PIL.Image.MAX_IMAGE_PIXELS deliberately") from err
    except (OSError, ValueError) as err:
        raise DataError(f"{where}: cannot read image {path}: {err}") from err


# Datasets up to this many records keep their tokenized records in memory for later epochs (a few
# hundred MB at most); beyond it (the full-scale mixes: 558K and 665K) records are tokenized on every read.
MEMO_RECORDS = 100_000


class InstructDataset(Dataset):
    """Records -> items. With `features` (the frozen-feature cache of the stage's encoder), an
    image whose features are cached is neither read nor transformed: the item carries its
    features; otherwise its pixels, and the training loop computes and stores the features."""

    def __init__(self, records: Sequence[Record], tokenizer, fmt: PromptFormat,
                 transforms: Sequence[ImageTransform], max_seq_len: int, num_patches: int,
                 features: FrozenFeatures | None = None):
        self.records = list(records)
        self.tokenizer, self.fmt, self.transforms = tokenizer, fmt, list(transforms)
        self.max_seq_len, self.num_patches = max_seq_len, num_patches
        self.features = features
        self._image_keys: dict[int, str] = {}
        self._tokens: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # tokenized once, reused by later epochs

    def __len__(self) -> int:
        return len(self.records)

    def modalities(self) -> list[bool]:
        return [r.is_multimodal for r in self.records]

    def lengths(self) -> list[int]:
        """Cheap length estimates for length-grouped batching (the anchor's: words of the
        conversation, plus the image patches), without tokenizing or opening images."""
        return [sum(len(t["value"].split()) for t in r.conversations) + (self.num_patches if r.is_multimodal else 0)
                for r in self.records]

    def tokens(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, labels) of record `index`: [BOS] + its segments, within the sequence budget
        left after the image patches."""
        found = self._tokens.get(index)
        if found is not None:
            return found
        record = self.records[index]
        segments = conversation_segments(self.fmt, list(record.conversations), self.tokenizer.eos_token)
        budget = self.max_seq_len - (self.num_patches if record.is_multimodal else 0)
        found = encode_segments(self.tokenizer, segments, budget)
        if self.memoizes:
            self._tokens[index] = found
        return found

    @property
    def memoizes(self) -> bool:
        """Whether tokenized records are kept for later epochs (and for other jobs: token_cache.py)."""
        return len(self.records) <= MEMO_RECORDS

    def tokenized(self) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """The records tokenized so far, by index."""
        return self._tokens

    def adopt_tokens(self, tokens: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Records tokenized elsewhere (token_cache.py), exactly as `tokens` would make them."""
        self._tokens.update(tokens)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        input_ids, labels = self.tokens(index)
        item = {"input_ids": input_ids, "labels": labels, "pixel_values": None}
        if record.is_multimodal and self.features is not None:
            key = self._image_keys.get(index)
            if key is None:
                try:
                    key = self._image_keys[index] = image_key(record.image)
                except OSError as err:
                    raise DataError(f"record {index} (id {record.id}): cannot read image {record.image}: {err}") from err
            item["image_key"] = key
            found = self.features.lookup(key)
            if found is not None:
                item["features"] = found
                return item
        if record.is_multimodal:
            image = load_image(record.image, f"record {index} (id {record.id})")
            item["pixel_values"] = [t(image) for t in self.transforms]
        return item


def _is_multimodal(item: dict) -> bool:
    return item["pixel_values"] is not None or "features" in item


def collate(items: list[dict]) -> dict:
    """Stack pixels per backbone; keep token sequences as lists (the VLM pads after inserting
    patches). A batch is all-multimodal or all-text (see samplers.py).

    Items from a dataset with the feature cache add `image_keys`, `features` (per backbone
    [B, N, C], zero rows where not cached; None if nothing was) and `missing` (the rows whose
    `pixel_values`, stacked in that order, the loop encodes and stores)."""
    multimodal = _is_multimodal(items[0])
    if any(_is_multimodal(it) != multimodal for it in items):
        raise ValueError("a batch mixes multimodal and text-only samples; use the split-modality sampler")
    batch = {"input_ids": [it["input_ids"] for it in items], "labels": [it["labels"] for it in items]}
    with_pixels = [it for it in items if it["pixel_values"] is not None]
    batch["pixel_values"] = ([torch.stack([it["pixel_values"][b] for it in with_pixels])
                              for b in range(len(with_pixels[0]["pixel_values"]))] if with_pixels else None)
    if multimodal and "image_key" in items[0]:
        batch["image_keys"] = [it["image_key"] for it in items]
        batch["missing"] = [i for i, it in enumerate(items) if "features" not in it]
        cached = [it for it in items if "features" in it]
        batch["features"] = None
        if cached:
            batch["features"] = [torch.zeros((len(items), *f.shape), dtype=f.dtype) for f in cached[0]["features"]]
            for i, it in enumerate(items):
                for b, f in enumerate(it.get("features", ())):
                    batch["features"][b][i] = f
    return batch
