"""Predictions cached on disk, so that re-scoring a benchmark (a fixed scorer, an added metric)
or evaluating it again costs no generation.

Layout: `<paths.cache_dir>/predictions/<model key>/<benchmark>.<settings digest>.jsonl`, one file per
(model, benchmark, answer settings). The model key is `<signature>-<digest of the trained weights>`
(`model_key`): the signature names the job, the digest pins the exact weights (an intermediate
checkpoint of the same job is another model); a job after training (`job_cache`) and
`python -m vlm_sweeps.evaluate` on its final checkpoint compute the same key. The settings are the blind control, the dtype, the
generation budget and `harness.HARNESS_VERSION`; the file's first line spells them out.

Inside a file, one line per example, found again by a fingerprint of what the model is shown
(id, question, choices, answer mode, a digest of the image file's bytes), so a slim subset reuses the
predictions of a larger one and a changed benchmark file, or an image replaced by another of the
same name and size, misses instead of returning stale answers.
Batch size is not part of the key: batched answers equal batch-size-1 answers (tests/unit/test_harness.py).
Files are replaced atomically (temp file + rename): a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from vlm_sweeps.atomic import atomic_write_text
from vlm_sweeps.eval.examples import EvalExample
from vlm_sweeps.features import image_key

log = logging.getLogger(__name__)
FOLDER = "predictions"


def weights_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of a state dict (order independent)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def model_key(signature: str, trained: Mapping[str, torch.Tensor]) -> str:
    """`<signature>-<weights digest>`: the job and the exact trained weights it ended with.
    `trained` is the checkpoint's "model" entry (train/checkpoint.py: `trained_state`)."""
    return f"{signature}-{weights_digest(trained)[:16]}"


def job_cache(cfg: Any, model: torch.nn.Module, signature: str) -> tuple[PredictionCache | None, str | None]:
    """The cache and model key a job evaluates with after training: the same key as
    `python -m vlm_sweeps.evaluate` computes from the job's final checkpoint, so either one reuses
    the other's predictions. (None, None) when `eval.cache=false`."""
    if not cfg.eval.cache:
        return None, None
    from vlm_sweeps.train.checkpoint import trained_parts, trained_state

    return PredictionCache(Path(cfg.paths.cache_dir).expanduser().resolve()), model_key(
        signature, trained_state(model, trained_parts(cfg)))


@dataclass(frozen=True)
class CacheKey:
    """Everything besides the example that decides a prediction."""

    model: str  # `model_key(...)`
    benchmark: str
    blind: bool
    max_new_tokens: int
    dtype: str  # autocast dtype, "fp32" without autocast
    harness_version: int

    def digest(self) -> str:
        settings = {k: v for k, v in asdict(self).items() if k not in ("model", "benchmark")}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


# (path, device, inode, size, mtime, ctime) -> digest of the file's bytes: an evaluation reads each image
# once per process for its fingerprint, not once per lookup. ctime changes whenever the file is written or
# replaced (a copy that keeps the mtime too), and cannot be set back.
_DIGESTS: dict[tuple, str] = {}
_DIGESTS_MAX = 1 << 18  # about 100 MB of entries at most (a benchmark has up to ~40K images); past it, start again


def image_digest(path: Path | str) -> str | None:
    """`features.image_key` of the file at `path` (blake2b of its bytes), memoized on its stat; None
    if there is no such file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    stamp = (os.fspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    digest = _DIGESTS.get(stamp)
    if digest is None:
        if len(_DIGESTS) >= _DIGESTS_MAX:
            _DIGESTS.clear()
        digest = _DIGESTS[stamp] = image_key(path)
    return digest


def fingerprint(ex: EvalExample) -> str:
    """What the model is shown for `ex`: the same fingerprint means the same prediction. The image
    counts by its bytes (an image replaced by another of the same name and size is another example);
    a missing image by its name."""
    image = None
    if ex.image is not None:
        image = image_digest(ex.image) or ["missing", Path(ex.image).name]
    blob = json.dumps([ex.qid, ex.question, list(ex.choices), ex.mode, image], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class PredictionCache:
    """Predictions under `<cache_dir>/predictions/`, per `CacheKey`, per example."""

    def __init__(self, cache_dir: Path | str):
        self.root = Path(cache_dir) / FOLDER

    def path(self, key: CacheKey) -> Path:
        return self.root / key.model / f"{key.benchmark}.{key.digest()}.jsonl"

    def _read(self, key: CacheKey) -> dict[str, dict]:
        """fingerprint -> {"fp", "qid", "prediction"}"""
        path = self.path(key)
        if not path.is_file():
            return {}
        try:
            with path.open(encoding="utf-8") as f:
                next(f, None)  # the header: the key, for people reading the folder
                rows = [json.loads(line) for line in f if line.strip()]
            return {row["fp"]: row for row in rows}
        except (ValueError, KeyError, TypeError) as err:  # edited by hand: regenerate rather than trust it
            log.warning("ignoring unreadable prediction cache %s: %s", path, err)
            return {}

    def lookup(self, key: CacheKey, examples: Sequence[EvalExample]) -> list[str | None]:
        """The cached prediction of each example, None where there is none."""
        found = self._read(key)
        return [found[fp]["prediction"] if fp in found else None for fp in map(fingerprint, examples)]

    def store(self, key: CacheKey, examples: Sequence[EvalExample], predictions: Sequence[str]) -> None:
        """Add predictions to the key's file (rewritten atomically with what it held before)."""
        rows = self._read(key)
        for ex, p in zip(examples, predictions):
            fp = fingerprint(ex)
            rows[fp] = {"fp": fp, "qid": ex.qid, "prediction": p}
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"key": asdict(key)})] + [json.dumps(r, ensure_ascii=False) for r in rows.values()]
        atomic_write_text(path, "\n".join(lines) + "\n")

