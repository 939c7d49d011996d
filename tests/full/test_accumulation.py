"""GPU-ready training at tiny size: gradient accumulation equals the whole batch, length grouping
keeps batches (and resume) intact, gradient checkpointing changes memory, not gradients."""

from pathlib import Path

import pytest
import torch

from tests.conftest import SMALL, compose
from vlm_sweeps.data.instruct import InstructDataset, collate
from vlm_sweeps.data.llava import load_llava
from vlm_sweeps.data.samplers import batch_stream, epoch_batches, micro_batches
from vlm_sweeps.models.builder import build_vlm, image_transforms
from vlm_sweeps.models.llm import enable_grad_checkpointing
from vlm_sweeps.models.prompts import get_format
from vlm_sweeps.train.loop import _forward_backward
from vlm_sweeps.train.stages import set_trainable


@pytest.fixture(scope="module")
def tiny(small_world, session_root):
    world, tok = small_world
    cfg = compose(SMALL, root=session_root)
    torch.manual_seed(0)
    model = build_vlm(cfg, tok)
    records = [r for r in load_llava(Path(world) / "finetune.json") if r.is_multimodal][:6]
    ds = InstructDataset(records, tok, get_format(cfg.llm.prompt), image_transforms(cfg, model),
                         cfg.scale.max_seq_len, model.num_patches)
    return model, ds


def _grads(model, parts, train):
    set_trainable(model, train)
    model.zero_grad(set_to_none=True)
    loss, n = _forward_backward(model, parts, torch.device("cpu"), torch.autocast("cpu", enabled=False))
    return loss, n, {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_micro_batches_accumulate_to_the_whole_batch_gradient(tiny):
    model, ds = tiny
    items = [ds[i] for i in range(6)]
    whole = _grads(model, [collate(items)], ["projector", "llm"])
    micro = _grads(model, [collate(items[i:i + 2]) for i in (0, 2, 4)], ["projector", "llm"])
    assert whole[1] == micro[1] == 6
    assert micro[0] == pytest.approx(whole[0], rel=1e-5)  # the logged loss is the batch's token mean
    assert whole[2].keys() == micro[2].keys()
    for k in whole[2]:
        assert torch.allclose(whole[2][k], micro[2][k], atol=1e-6, rtol=1e-4), k


def test_gradient_checkpointing_recomputes_even_in_a_frozen_llm_with_equal_gradients(tiny):
    model, ds = tiny
    batch = [collate([ds[i] for i in range(3)])]
    plain = _grads(model, batch, ["projector"])[2]
    calls = []
    # a pre-hook: the recompute stops early (inside the layer), after the last tensor it needs
    hooks = [layer.mlp.register_forward_pre_hook(lambda *a: calls.append(1)) for layer in model.llm.model.layers]
    _grads(model, batch, ["projector"])
    without = len(calls)
    enable_grad_checkpointing(model.llm)
    try:
        calls.clear()
        ckpt = _grads(model, batch, ["projector"])[2]  # align-like stage: LLM frozen, gradients cross it
        assert len(calls) == 2 * without  # every layer ran again in the backward pass
        assert not any(p.requires_grad for p in model.llm.parameters())
    finally:
        getattr(model.llm, "activation_checkpointing_disable", model.llm.gradient_checkpointing_disable)()
        for h in hooks:
            h.remove()
    assert plain.keys() == ckpt.keys() and all(k.startswith("projector") for k in plain)
    for k in plain:
        assert torch.allclose(plain[k], ckpt[k], atol=1e-6), k


def test_length_grouping_orders_within_batches_only():
    modalities = [i % 4 != 0 for i in range(70)]
    lengths = [(i * 37) % 23 for i in range(70)]
    plain = epoch_batches(modalities, 16, seed=7, epoch=1)
    grouped = epoch_batches(modalities, 16, seed=7, epoch=1, lengths=lengths)
    assert [sorted(b) for b in plain] == [sorted(b) for b in grouped]  # same batches, same order
    for b in grouped:
        assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)
        assert len({modalities[i] for i in b}) == 1
    whole = next(b for b in grouped if len(b) == 16)
    assert micro_batches(whole, 4) == [whole[i:i + 4] for i in range(0, 16, 4)]
    assert micro_batches(whole, None) == micro_batches(whole, 16) == [whole]
    # resume: the stream from step k is the tail of the stream from 0
    full = batch_stream(modalities, 16, 3, lengths=lengths)
    first = [next(full) for _ in range(9)]
    resumed = batch_stream(modalities, 16, 3, start_step=6, lengths=lengths)
    assert [next(resumed) for _ in range(3)] == first[6:]
