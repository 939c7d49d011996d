"""An in-process tokenizer for tiny scale: a Llama-style BPE (metaspace, single-digit numbers)
trained on the synthetic corpus, cached on disk keyed by its corpus and size."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterable

from vlm_sweeps import atomic

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Punctuation(),
    ])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="<pad>")


def cached_tokenizer(corpus_file: Path, vocab_size: int, cache_dir: Path):
    """Train once per (corpus, vocab size); concurrent jobs race safely (atomic rename). The folder
    it is saved into first is named for its writer (atomic.temp_dir): one a killed job left behind
    is removed by the next job here, one a live job writes is not."""
    from transformers import AutoTokenizer

    digest = hashlib.sha256(corpus_file.read_bytes() + str(vocab_size).encode()).hexdigest()[:16]
    target = cache_dir / f"tokenizer-{digest}"
    atomic.remove_stale(cache_dir)
    if not target.exists():
        texts = [json.loads(line) for line in corpus_file.read_text().splitlines() if line]
        tok = train_tokenizer(texts, vocab_size)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = atomic.temp_dir(cache_dir, "tokenizer")
        try:
            tok.save_pretrained(tmp)
            os.rename(tmp, target)
        except OSError:  # another job finished first: its copy is identical
            if not target.exists():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return AutoTokenizer.from_pretrained(target)


PAD_TOKEN = "<PAD>"


def load_pretrained_tokenizer(model_id: str, models_dir: Path | None, max_seq_len: int):
    """The LLM's own tokenizer from its local checkpoint folder (models/weights.py), with a pad token
    added when it has none (the embeddings are resized to match in models/llm.py) and the
    sequence budget as its max length."""
    from transformers import AutoTokenizer

    from vlm_sweeps.models.weights import WeightSpec, resolve

    folder = resolve(WeightSpec(model_id, "transformers", "llm tokenizer", needs_tokenizer=True), models_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, model_max_length=max_seq_len)
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    if tokenizer.bos_token is None:  # Qwen2.5: no BOS in the tokenizer; its config's bos_token_id starts a sequence
        bos_id = json.loads((folder / "config.json").read_text()).get("bos_token_id")
        bos_id = bos_id[0] if isinstance(bos_id, list) else bos_id
        tokenizer.bos_token = tokenizer.convert_ids_to_tokens(bos_id) if bos_id is not None else tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer
