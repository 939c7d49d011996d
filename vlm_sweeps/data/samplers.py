"""Split-modality batching (the anchor's): every batch is all-multimodal or all-text-only.
With `lengths`, each batch is also ordered longest first, so the micro-batches that gradient
accumulation cuts from it hold samples of similar length and pad little (the anchor's length
grouping). The order is applied after the shuffles: which samples form a batch, and the batch
order, do not depend on it."""

from __future__ import annotations

import math
import random
from typing import Iterator, Sequence


def epoch_batches(modalities: Sequence[bool], batch_size: int, seed: int, epoch: int,
                  lengths: Sequence[int] | None = None) -> list[list[int]]:
    """One epoch of batches: each modality shuffled and chunked on its own, batch order shuffled."""
    _check(modalities, batch_size)
    rng = random.Random(seed * 1_000_003 + epoch)
    batches: list[list[int]] = []
    for modality in (True, False):
        idx = [i for i, m in enumerate(modalities) if m == modality]
        rng.shuffle(idx)
        batches += [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    rng.shuffle(batches)
    if lengths is not None:  # stable: equal lengths keep their shuffled order
        batches = [sorted(b, key=lambda i: -lengths[i]) for b in batches]
    return batches


def _check(modalities: Sequence[bool], batch_size: int) -> None:
    """An epoch with no batch would make the endless stream below spin forever."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch size {batch_size!r}: must be an integer >= 1 (samples per optimizer step; "
                         "set scale.<stage>.batch_size)")
    if len(modalities) == 0:
        raise ValueError("no records to draw batches from (an empty dataset): an epoch would have no batch; "
                         "give the stage at least one record")


def micro_batches(batch: list[int], size: int | None) -> list[list[int]]:
    """Consecutive slices of `size` (the whole batch when `size` is None or not smaller)."""
    if not size or size >= len(batch):
        return [batch]
    return [batch[i:i + size] for i in range(0, len(batch), size)]


def steps_for(modalities: Sequence[bool], batch_size: int, epochs: float) -> int:
    """Optimizer steps for `epochs` passes; fractional epochs stop part-way through the last pass."""
    if not (isinstance(epochs, (int, float)) and math.isfinite(epochs) and epochs > 0):
        raise ValueError(f"epochs {epochs!r}: must be a positive finite number of passes")
    per_epoch = len(epoch_batches(modalities, batch_size, 0, 0))
    return max(1, math.ceil(epochs * per_epoch))


def batch_stream(modalities: Sequence[bool], batch_size: int, seed: int, start_step: int = 0,
                 lengths: Sequence[int] | None = None) -> Iterator[list[int]]:
    """Endless batches, epoch after epoch, from optimizer step `start_step` (for exact resume)."""
    epoch, step = 0, 0
    while True:
        for batch in epoch_batches(modalities, batch_size, seed, epoch, lengths):
            if step >= start_step:
                yield batch
            step += 1
        epoch += 1
