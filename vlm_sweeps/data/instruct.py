"""Instruction records -> model inputs: per-backbone pixels, token ids, labels on assistant turns."""

from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset

from vlm_sweeps.data.llava import DataError, Record
from vlm_sweeps.data.transforms import ImageTransform
from vlm_sweeps.models.prompts import PromptFormat, conversation_segments
from vlm_sweeps.models.vlm import IGNORE_INDEX


def encode_segments(tokenizer, segments: list[tuple[str, bool]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[BOS] + each segment tokenized on its own; labels are -100 except on target segments.
    Truncated to `max_len` tokens (the sequence budget left after the image patches)."""
    ids, labels = [tokenizer.bos_token_id], [IGNORE_INDEX]
    for text, is_target in segments:
        seg = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += seg
        labels += seg if is_target else [IGNORE_INDEX] * len(seg)
    return torch.tensor(ids[:max_len]), torch.tensor(labels[:max_len])


def load_image(path, where: str) -> Image.Image:
    """Open an image fully, naming the file and record when it is missing or corrupt.
    We stop rather than skip: silently training on fewer or garbage samples would bias a sweep."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError) as err:
        raise DataError(f"{where}: cannot read image {path}: {err}") from err


class InstructDataset(Dataset):
    def __init__(self, records: Sequence[Record], tokenizer, fmt: PromptFormat,
                 transforms: Sequence[ImageTransform], max_seq_len: int, num_patches: int):
        self.records = list(records)
        self.tokenizer, self.fmt, self.transforms = tokenizer, fmt, list(transforms)
        self.max_seq_len, self.num_patches = max_seq_len, num_patches

    def __len__(self) -> int:
        return len(self.records)

    def modalities(self) -> list[bool]:
        return [r.is_multimodal for r in self.records]

    def lengths(self) -> list[int]:
        """Cheap length estimates for length-grouped batching (the anchor's: words of the
        conversation, plus the image patches), without tokenizing or opening images."""
        return [sum(len(t["value"].split()) for t in r.conversations) + (self.num_patches if r.is_multimodal else 0)
                for r in self.records]

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        segments = conversation_segments(self.fmt, list(record.conversations), self.tokenizer.eos_token)
        budget = self.max_seq_len - (self.num_patches if record.is_multimodal else 0)
        input_ids, labels = encode_segments(self.tokenizer, segments, budget)
        item = {"input_ids": input_ids, "labels": labels, "pixel_values": None}
        if record.is_multimodal:
            image = load_image(record.image, f"record {index} (id {record.id})")
            item["pixel_values"] = [t(image) for t in self.transforms]
        return item


def collate(items: list[dict]) -> dict:
    """Stack pixels per backbone; keep token sequences as lists (the VLM pads after inserting
    patches). A batch is all-multimodal or all-text (see samplers.py)."""
    multimodal = items[0]["pixel_values"] is not None
    if any((it["pixel_values"] is not None) != multimodal for it in items):
        raise ValueError("a batch mixes multimodal and text-only samples; use the split-modality sampler")
    pixels = None
    if multimodal:
        pixels = [torch.stack([it["pixel_values"][b] for it in items]) for b in range(len(items[0]["pixel_values"]))]
    return {"pixel_values": pixels, "input_ids": [it["input_ids"] for it in items],
            "labels": [it["labels"] for it in items]}
