"""Tokenized records shared by the jobs of a sweep.

Tokenizing a records file (prompt format, segments, truncation to the sequence budget) gives the
same tokens for every job with the same tokenizer, prompt format and budget: the other encoders,
resize strategies, optimization plans, epochs and seeds of a sweep. The first such job tokenizes
during its first epoch, as always, and saves the result; the others read it (~0.1 s instead of a
few seconds of tokenization in their first epoch):

    <paths.cache_dir>/tokens/<key>.pt

`key` digests the records file's bytes, the text-only filter, the tokenizer's whole serialised
definition and BOS id, the prompt format, the sequence budget (max_seq_len, image patches) and the
source of the functions that tokenize, so an edit of any of them is a new entry. Written
atomically once a dataset has tokenized every record (a first full epoch; a job of several
processes tokenizes only its slices and writes none); a torn or foreign entry is ignored.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from pathlib import Path
from typing import Any

import torch

from vlm_sweeps.atomic import atomic_write
from vlm_sweeps.models.vlm import IGNORE_INDEX

log = logging.getLogger(__name__)

FORMAT = 1


def _code_digest() -> bytes:
    """The source of what turns a record into tokens (data/instruct.py, models/prompts.py)."""
    from vlm_sweeps.data import instruct
    from vlm_sweeps.models import prompts

    code = [inspect.getsource(f) for f in (instruct.encode_segments, instruct.InstructDataset.tokens,
                                            prompts.conversation_segments, prompts.clean_user_message)]
    return hashlib.blake2b("\n".join(code).encode(), digest_size=16).digest()


def key(records_file: Path, drop_text_only: bool, tokenizer: Any, fmt: Any, max_seq_len: int,
        num_patches: int) -> str | None:
    """The entry of a records file's tokens; None for a tokenizer without a serialised definition."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    h = hashlib.blake2b(digest_size=16)
    with open(records_file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    h.update(backend.to_str().encode())
    h.update(f"|{FORMAT}|{drop_text_only}|{tokenizer.bos_token_id}|{tokenizer.eos_token}|{fmt!r}|{max_seq_len}|"
             f"{num_patches}".encode())
    h.update(_code_digest())
    return h.hexdigest()


def path_of(cache_dir: Path | str, entry: str) -> Path:
    return Path(cache_dir) / "tokens" / f"{entry}.pt"


def load(path: Path, n_records: int) -> dict[int, tuple[torch.Tensor, torch.Tensor]] | None:
    """{record index: (input_ids, labels)} of every record, or None (no entry, or not usable)."""
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        if entry.get("format") != FORMAT or int(entry["lengths"].numel()) != n_records:
            raise ValueError(f"format {entry.get('format')} with {entry['lengths'].numel()} records, expected "
                             f"{FORMAT} with {n_records}")
        ids, targets = entry["ids"].long(), entry["targets"]
        bounds = [0, *torch.cumsum(entry["lengths"], 0).tolist()]
        if bounds[-1] != ids.numel() or ids.numel() != targets.numel():
            raise ValueError("lengths do not add up: torn")
    except FileNotFoundError:
        return None
    except Exception as err:  # torn, foreign or of another format: tokenized again (and rewritten)
        log.warning("tokenized records %s not usable (%s): tokenizing again", path, err)
        return None
    labels = torch.where(targets, ids, IGNORE_INDEX)
    return {i: (ids[a:b], labels[a:b]) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))}


def save(path: Path, tokens: dict[int, tuple[torch.Tensor, torch.Tensor]], n_records: int) -> bool:
    """Write the entry if `tokens` holds every record and no entry exists; True if written."""
    if len(tokens) != n_records or path.exists():
        return False
    rows = [tokens[i] for i in range(n_records)]
    entry = {"format": FORMAT, "lengths": torch.tensor([len(ids) for ids, _ in rows], dtype=torch.int32),
             "ids": torch.cat([ids for ids, _ in rows]).to(torch.int32),
             "targets": torch.cat([labels != IGNORE_INDEX for _, labels in rows])}
    atomic_write(path, lambda f: torch.save(entry, f), durable=False)
    log.info("tokenized records of %d records saved to %s", n_records, path)
    return True
