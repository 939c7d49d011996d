"""Evaluation harness: greedy decoding through transformers' `generate` gives the texts of the
hand-written loop it replaced, for every LLM family, and batched equals batch size 1 (also when some
rows stop early); closed-set picks the most likely candidate; the blind control really removes the
image."""

import copy
import dataclasses
import inspect
import logging

import pytest
import torch

from tests.conftest import SMALL, compose
from vlm_sweeps.eval.harness import Answerer
from vlm_sweeps.eval.registry import LoadContext, get
from vlm_sweeps.models.builder import build_vlm, image_transforms
from vlm_sweeps.models.prompts import get_format


@pytest.fixture(scope="module")
def answerer(small_world, session_root):
    world, tok = small_world
    cfg = compose(SMALL + ["llm=mistral"], root=session_root)
    torch.manual_seed(0)
    model = build_vlm(cfg, tok).eval()
    return Answerer(model, tok, get_format(cfg.llm.prompt), image_transforms(cfg, model), torch.device("cpu"))


# one option per transformers model type (Gemma-2: hybrid sliding-window cache, eager attention)
FAMILIES = ["llama2", "mistral", "phi2", "qwen25_7b", "gemma2_9b", "phi3_mini"]


def _family_answerer(tok, root, overrides):
    cfg = compose(SMALL + overrides, root=root)
    torch.manual_seed(0)
    model = build_vlm(cfg, tok).eval()
    llm = model.llm
    if llm.config.model_type == "gemma2":
        # Gemma-2 ties its head to the sqrt(width)-scaled embeddings: a random tiny one only echoes the
        # prompt's last token (a space) in every row, all texts empty; an untied random head talks
        torch.manual_seed(1)
        head = llm.get_output_embeddings()
        head.weight = torch.nn.Parameter(torch.randn_like(head.weight) * llm.config.initializer_range)
    return Answerer(model, tok, get_format(cfg.llm.prompt), image_transforms(cfg, model), torch.device("cpu"))


@pytest.fixture(scope="module", params=FAMILIES)
def family_answerer(request, small_world, session_root):
    return _family_answerer(small_world[1], session_root, [f"llm={request.param}"])


def _free_form(world):
    """Short answers and long box coordinates: prompts of different lengths, so left padding."""
    return get("synth_vqa").load(LoadContext(world))[:6] + get("synth_ref").load(LoadContext(world))[:4]


@torch.no_grad()
def _reference_tokens(answerer, examples, max_new_tokens):
    """The hand-written greedy loop `Answerer.generate` had before it called transformers'
    `generate`, kept verbatim as the reference: prefill from inputs_embeds with left padding and
    explicit position ids, then one token at a time with the KV cache; a row that emitted EOS keeps
    emitting EOS. Returns the token rows (EOS included)."""
    model, llm = answerer.model, answerer.model.llm
    with answerer._autocast():
        image_embeds = answerer._image_embeds(examples)
        ids = [torch.tensor(answerer._prompt_ids(ex), device=answerer.device) for ex in examples]
        embeds, mask, pos, _ = model.build_inputs(image_embeds, ids, padding_side="left")
        out = llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
        # transformers >= 5.2x names the KV cache `cache` (in and out); earlier `past_key_values`
        cache_arg = "cache" if "cache" in inspect.signature(llm.forward).parameters else "past_key_values"
        eos = answerer.tokenizer.eos_token_id
        done = torch.zeros(len(examples), dtype=torch.bool, device=answerer.device)
        generated = []
        for _ in range(max_new_tokens):
            next_ids = out.logits[:, -1].argmax(-1)
            next_ids = torch.where(done, torch.full_like(next_ids, eos), next_ids)
            generated.append(next_ids)
            done |= next_ids == eos
            if bool(done.all()):
                break
            mask = torch.cat([mask, mask.new_ones(len(examples), 1)], dim=1)
            pos = pos[:, -1:] + 1
            out = llm(input_ids=next_ids[:, None], attention_mask=mask, position_ids=pos, use_cache=True,
                      **{cache_arg: getattr(out, cache_arg)})
    return torch.stack(generated, dim=1).tolist() if generated else [[] for _ in examples]


def _reference_texts(answerer, examples, max_new_tokens):
    eos, texts = answerer.tokenizer.eos_token_id, []
    for row in _reference_tokens(answerer, examples, max_new_tokens):
        row = row[: row.index(eos)] if eos in row else row
        texts.append(answerer.tokenizer.decode(row, skip_special_tokens=True).strip())
    return texts


class _EosAs:
    """The tokenizer with another token id as EOS: makes a random model stop early in some rows."""

    def __init__(self, tokenizer, eos_token_id: int):
        self._tokenizer, self.eos_token_id = tokenizer, eos_token_id

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __call__(self, *args, **kwargs):
        return self._tokenizer(*args, **kwargs)


def test_generate_gives_the_texts_of_the_hand_written_loop(family_answerer, small_world):
    world, _ = small_world
    examples = _free_form(world)
    texts = family_answerer.generate(examples, max_new_tokens=12)
    assert texts == _reference_texts(family_answerer, examples, 12)
    assert texts == [family_answerer.generate([ex], max_new_tokens=12)[0] for ex in examples]
    assert sum(map(bool, texts)) >= len(texts) // 2  # a random model still emits text: not vacuous
    assert family_answerer.generate(examples[:2], max_new_tokens=0) == ["", ""]


def test_rows_that_stop_early_leave_the_other_rows_unchanged(family_answerer, small_world):
    world, tok = small_world
    examples, budget = _free_form(world), 12
    full = _reference_tokens(family_answerer, examples, budget)
    # EOS := a token some rows emit within their first 4 steps and other rows never emit
    special = set(tok.all_special_ids)
    eos = next(t for row in full for t in row[:4]
               if t not in special and any(t not in other for other in full))
    early = dataclasses.replace(family_answerer, tokenizer=_EosAs(tok, eos))
    texts = early.generate(examples, budget)
    assert texts == _reference_texts(early, examples, budget)
    assert texts == [early.generate([ex], budget)[0] for ex in examples]
    stopped = [i for i, row in enumerate(full) if eos in row[:4]]
    running = [i for i, row in enumerate(full) if eos not in row]
    assert stopped and running
    # a row that never meets the new EOS decodes its whole budget, as with the real EOS
    original = family_answerer.generate(examples, budget)
    assert [texts[i] for i in running] == [original[i] for i in running]


def test_generate_gives_the_loops_texts_when_gemma2s_window_slides(small_world, session_root):
    """A sliding window shorter than the sequence (the options' 4096 never is at tiny scale): the
    hybrid cache really drops entries. The texts still equal the loop's. (Batched equals batch size
    1 does not hold here, for the loop either: not asserted.)"""
    world, tok = small_world
    answerer = _family_answerer(tok, session_root, ["llm=gemma2_9b", "llm.config.sliding_window=16"])
    examples = _free_form(world)
    texts = answerer.generate(examples, max_new_tokens=12)
    assert texts == _reference_texts(answerer, examples, 12)
    assert any(texts)


def test_checkpoint_generation_defaults_do_not_change_greedy_texts(answerer, small_world):
    """A checkpoint's generation_config.json (Llama-2: sampling at temperature 0.6, top_p 0.9;
    Qwen2.5-instruct: top_k 20, repetition_penalty 1.05; Qwen2.5: max_new_tokens 2048; Phi-3:
    several EOS ids) changes neither the texts nor the budget, and draws no warning about flags."""
    world, _ = small_world
    examples = _free_form(world)
    expected = _reference_texts(answerer, examples, 8)
    llm = answerer.model.llm
    saved = copy.deepcopy(llm.generation_config)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        llm.generation_config.update(do_sample=True, temperature=0.6, top_p=0.9, top_k=20, repetition_penalty=1.05,
                                     max_new_tokens=2048, min_new_tokens=4,
                                     eos_token_id=[answerer.tokenizer.eos_token_id, 7])
        assert answerer.generate(examples, max_new_tokens=8) == expected
    finally:
        logger.removeHandler(handler)
        llm.generation_config = saved
    assert not [r for r in records if "generation flags" in r.getMessage()]


def test_batched_generation_equals_batch_size_one(answerer, small_world):
    world, _ = small_world
    examples = get("synth_vqa").load(LoadContext(world))[:6] + get("synth_ref").load(LoadContext(world))[:4]
    batched = answerer.generate(examples, max_new_tokens=8)
    single = [answerer.generate([ex], max_new_tokens=8)[0] for ex in examples]
    assert batched == single
    assert any(batched)  # a random model still emits text, so the comparison is not vacuous


def test_closed_set_returns_the_argmax_candidate(answerer, small_world):
    world, tok = small_world
    examples = get("synth_pope").load(LoadContext(world))[:4]
    chosen = answerer.choose(examples)
    for ex, pick in zip(examples, chosen):
        assert pick in ex.choices
        # recompute each candidate's log-likelihood one at a time
        scores = {}
        for choice in ex.choices:
            ids = answerer._prompt_ids(ex)
            cand = tok(choice, add_special_tokens=False)["input_ids"]
            px = answerer._pixels([ex])
            emb = answerer.model.encode_images(px)
            e, m, p, _ = answerer.model.build_inputs(emb, [torch.tensor(ids + cand)])
            with torch.no_grad():
                logp = answerer.model.llm(inputs_embeds=e, attention_mask=m, position_ids=p).logits.log_softmax(-1)
            start = answerer.model.num_patches + len(ids)
            scores[choice] = sum(logp[0, start + t - 1, c].item() for t, c in enumerate(cand))
        assert pick == max(scores, key=scores.get)


def test_blind_control_replaces_images(answerer, small_world):
    world, _ = small_world
    ex = get("synth_vqa").load(LoadContext(world))[:2]
    seen = answerer._pixels(ex)[0]
    answerer.blind = True
    try:
        blank = answerer._pixels(ex)[0]
    finally:
        answerer.blind = False
    assert not torch.equal(seen, blank)
    # a blank canvas of the image's size: the centre (image area at any aspect ratio) is uniform,
    # only the letterbox padding around it may differ between images
    n = blank.shape[-1]
    centre = blank[:, :, int(0.4 * n):int(0.6 * n), int(0.4 * n):int(0.6 * n)]
    assert torch.allclose(centre, centre[:1, :, :1, :1].expand_as(centre), atol=1e-4)
    assert not torch.allclose(seen[:, :, int(0.4 * n):int(0.6 * n)], seen[:1, :, :1, :1].expand_as(
        seen[:, :, int(0.4 * n):int(0.6 * n)]), atol=1e-4)
