"""Evaluation harness: batched greedy decoding equals batch size 1; closed-set picks the most
likely candidate; the blind control really removes the image."""

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
