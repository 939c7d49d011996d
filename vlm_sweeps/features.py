"""The frozen-feature cache: a frozen vision backbone's patch features of an image, computed once
and reused across epochs and across the runs of a sweep.

Content-addressed on disk, under `<paths.cache_dir>/features/` (or `run.feature_cache_dir`):

    <space>/<image[:2]>/<image>.feat

- `space` is a digest of everything the features depend on besides the image: the backbone's
  class and weights (every tensor's bytes), the image transform (resize strategy, resolution,
  normalisation, interpolation), the storage dtype and the torch version.
- `image` is a digest of the image file's bytes (not its path: the same picture under two names is
  one entry, an edited file is a new one).

An entry is a 16-byte header (magic, format, dtype, shape) and the raw half-precision bits: read
in one call and checked against its header, about 4x cheaper than `.npy` (whose header is parsed
with `ast`), which matters on the hit path of every training step.

Half precision: features are stored as fp16 (bf16 for bf16 runs), and a frozen encoder's features
are rounded to that dtype whether the cache is on or off (models/vlm.py), so a run gives the same
result with and without it. The vision towers are batch-invariant on CPU (tested), so features
computed in another batch, epoch or run are bit-identical; on GPU, kernels may differ by batch
shape in the last bits before rounding.

Safe when several jobs fill it at once: an entry is written to a temp file and renamed into place,
so a reader sees a whole entry or none; two writers of one entry write the same bytes. Entries are
not fsynced (thousands of small files): a reader that finds a torn one (after a power loss, or a
full disk) drops it and recomputes. Bounded: after a stage fills it, least-recently-used entries (by mtime,
refreshed on every hit) are removed until the cache is under `max_bytes`; an entry evicted under
another job's feet is a miss there, recomputed, never an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vlm_sweeps.atomic import atomic_write

log = logging.getLogger(__name__)

SUFFIX = ".feat"
LEGACY_SUFFIXES = (".npy",)  # entries of the first format: never read, evicted first (never touched)
_MAGIC, _FORMAT = b"VLMF", 1
_DTYPES = {torch.float16: 0, torch.bfloat16: 1}  # dtype -> its code in the header
_HEADER = struct.Struct("<4sBBxxII")  # magic, format, dtype code, rows, columns: [rows, columns] features


def encode_entry(features: torch.Tensor, dtype: torch.dtype) -> bytes:
    """[N, C] features -> an entry's bytes (rounded to `dtype`)."""
    rows, columns = features.shape
    bits = features.detach().to("cpu", dtype).contiguous().view(torch.int16).numpy()
    return _HEADER.pack(_MAGIC, _FORMAT, _DTYPES[dtype], rows, columns) + bits.tobytes()


def decode_entry(data: bytes | bytearray, dtype: torch.dtype) -> torch.Tensor:
    """An entry's bytes -> its [N, C] features; ValueError if torn or not an entry of `dtype`."""
    if len(data) < _HEADER.size:
        raise ValueError(f"{len(data)} bytes, shorter than the header")
    magic, version, code, rows, columns = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != _FORMAT or code != _DTYPES[dtype]:
        raise ValueError(f"not a format-{_FORMAT} {dtype} entry (magic {magic!r}, format {version}, dtype {code})")
    if len(data) != _HEADER.size + 2 * rows * columns:
        raise ValueError(f"{len(data)} bytes for [{rows}, {columns}] features: torn")
    bits = np.frombuffer(data, np.int16, offset=_HEADER.size).reshape(rows, columns)
    return torch.from_numpy(bits).view(dtype)


def image_key(path: Path | str) -> str:
    """Digest of an image file's bytes."""
    with open(path, "rb") as f:
        return hashlib.blake2b(f.read(), digest_size=16).hexdigest()


def space_key(backbone: torch.nn.Module, transform, dtype: torch.dtype) -> str:
    """Digest of everything a backbone's features depend on besides the image."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{type(backbone).__module__}.{type(backbone).__qualname__}|{getattr(backbone, 'kind', '')}|"
             f"layers {getattr(backbone, 'layers', '')}|{backbone!r}|"  # the module tree: activations, norms
             f"{transform!r}|{dtype}|torch {torch.__version__}".encode())
    for name, tensor in backbone.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    written: int = 0
    evicted: int = 0


class FeatureCache:
    """Entries of one or more feature spaces under `root`, at most `max_bytes` in all."""

    def __init__(self, root: Path | str, max_bytes: int, dtype: torch.dtype = torch.float16):
        if dtype not in _DTYPES:
            raise ValueError(f"feature cache dtype must be float16 or bfloat16, not {dtype}")
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.dtype = dtype
        self.stats = CacheStats()

    def path(self, space: str, image: str) -> Path:
        return self.root / space / image[:2] / f"{image}{SUFFIX}"

    def get(self, space: str, image: str) -> torch.Tensor | None:
        path = self.path(space, image)
        try:
            with open(path, "rb") as f:
                data = bytearray(f.read())  # writable: torch takes the buffer without a copy or a warning
                os.utime(f.fileno())  # recency, for eviction
            features = decode_entry(data, self.dtype)
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        except (OSError, ValueError) as err:  # torn or foreign file: drop it, recompute
            log.warning("feature cache: dropping unreadable entry %s (%s)", path, err)
            path.unlink(missing_ok=True)
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return features

    def put(self, space: str, image: str, features: torch.Tensor) -> None:
        path = self.path(space, image)
        if path.exists():
            return
        data = encode_entry(features, self.dtype)
        atomic_write(path, lambda f: f.write(data), durable=False)
        self.stats.written += 1

    def size(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> list[tuple[Path, int, float]]:
        found = []
        for folder, _, names in os.walk(self.root):
            for name in names:
                if not name.endswith((SUFFIX, *LEGACY_SUFFIXES)):
                    continue
                path = Path(folder) / name
                try:
                    st = path.stat()
                except FileNotFoundError:  # evicted by another job meanwhile
                    continue
                found.append((path, st.st_size, st.st_mtime))
        return found

    def evict(self) -> int:
        """Remove least-recently-used entries until the cache holds at most `max_bytes`."""
        entries = self._entries()
        total = sum(size for _, size, _ in entries)
        removed = 0
        for path, size, _ in sorted(entries, key=lambda e: e[2]):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        self.stats.evicted += removed
        if removed:
            log.info("feature cache: evicted %d entries to stay under %.2f GB", removed, self.max_bytes / 1e9)
        return removed


class FrozenFeatures:
    """The cache as one job's dataset and training loop see it: one space per backbone."""

    def __init__(self, cache: FeatureCache, spaces: Sequence[str]):
        self.cache = cache
        self.spaces = list(spaces)

    @classmethod
    def for_model(cls, cache: FeatureCache, model, transforms) -> "FrozenFeatures":
        return cls(cache, [space_key(bb, t, cache.dtype) for bb, t in zip(model.encoder, transforms)])

    def lookup(self, image: str) -> list[torch.Tensor] | None:
        """Every backbone's features of `image`, or None if any is missing."""
        found = []
        for space in self.spaces:
            features = self.cache.get(space, image)
            if features is None:
                return None
            found.append(features)
        return found

    def store(self, images: Sequence[str], features: Sequence[torch.Tensor]) -> None:
        """features: one [M, N, C] tensor per backbone, rows in the order of `images`."""
        for space, per_backbone in zip(self.spaces, features):
            for image, row in zip(images, per_backbone):
                self.cache.put(space, image, row)


def open_cache(cfg, dtype: torch.dtype) -> FeatureCache:
    root = cfg.run.feature_cache_dir or str(Path(cfg.paths.cache_dir) / "features")
    return FeatureCache(Path(root).resolve(), int(cfg.run.feature_cache_max_gb * 1e9), dtype)
