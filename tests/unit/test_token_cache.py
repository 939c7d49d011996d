"""Tokenized records shared across jobs (vlm_sweeps/data/token_cache.py): a job that reads them gets
exactly what tokenizing gives, an entry belongs to one records file, tokenizer, prompt format and
sequence budget, only a complete tokenization is saved, and a torn entry is tokenized again."""

from __future__ import annotations

import pytest
import torch

from vlm_sweeps.data import token_cache
from vlm_sweeps.data.instruct import InstructDataset
from vlm_sweeps.data.llava import load_llava
from vlm_sweeps.models.prompts import get_format

PATCHES = 49


@pytest.fixture()
def made(small_world, tmp_path):
    world, tokenizer = small_world
    records = load_llava(world / "finetune.json")

    def dataset(fmt="base", max_seq_len=256):
        return InstructDataset(records, tokenizer, get_format(fmt), [], max_seq_len, PATCHES)

    def entry(fmt="base", max_seq_len=256, file=world / "finetune.json"):
        return token_cache.path_of(tmp_path, token_cache.key(file, False, tokenizer, get_format(fmt), max_seq_len,
                                                             PATCHES))
    return records, dataset, entry


def test_a_job_reading_the_entry_gets_exactly_the_tokens_it_would_make(made):
    records, dataset, entry = made
    first = dataset()
    expected = [first.tokens(i) for i in range(len(records))]
    assert token_cache.save(entry(), first.tokenized(), len(records))
    assert not token_cache.save(entry(), first.tokenized(), len(records))  # written once
    later = dataset()
    later.adopt_tokens(token_cache.load(entry(), len(records)))
    assert len(later.tokenized()) == len(records)
    for i, (ids, labels) in enumerate(expected):
        got_ids, got_labels = later.tokens(i)
        assert got_ids.dtype == ids.dtype == torch.int64 and torch.equal(got_ids, ids)
        assert torch.equal(got_labels, labels)
    assert any((labels == -100).any() and (labels != -100).any() for _, labels in expected)  # not vacuous


def test_an_entry_is_one_file_tokenizer_format_and_budget(made, small_world):
    world, _ = small_world
    entry = made[2]
    assert entry() == entry()
    assert len({entry(), entry("vicuna"), entry(max_seq_len=128), entry(file=world / "align.json")}) == 4


def test_only_a_complete_tokenization_is_saved(made):
    records, dataset, entry = made
    partial = dataset()
    for i in range(len(records) // 2):  # a fractional epoch, or one process's slices
        partial.tokens(i)
    assert not token_cache.save(entry(), partial.tokenized(), len(records)) and not entry().exists()


def test_a_torn_entry_is_tokenized_again(made, caplog):
    records, dataset, entry = made
    full = dataset()
    for i in range(len(records)):
        full.tokens(i)
    token_cache.save(entry(), full.tokenized(), len(records))
    entry().write_bytes(entry().read_bytes()[:100])
    assert token_cache.load(entry(), len(records)) is None and "tokenizing again" in caplog.text
    assert token_cache.load(entry().with_name("absent.pt"), len(records)) is None
