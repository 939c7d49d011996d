"""The align signature: jobs whose align stage would compute the same thing share it; anything the
align stage's result depends on separates them."""

import pytest

from tests.conftest import compose
from vlm_sweeps.identity import align_signature, signature

TWO_STAGE = ["optimization=two_stage"]


@pytest.fixture(scope="module")
def base() -> str:
    sig = align_signature(compose(TWO_STAGE))
    assert sig is not None and len(sig) == 12
    return sig


@pytest.mark.parametrize("overrides", [
    ["optimization=two_stage", "epochs=2"],  # the epochs axis is the finetune's
    ["optimization=two_stage", "epochs=1.5"],
    ["optimization=two_stage_full_finetune"],  # same align, another finetune (and another option name)
    ["optimization=two_stage", "scale.finetune.lr=0.5", "scale.finetune.batch_size=4"],
    ["optimization=two_stage", "benchmarks=paper"],
    ["optimization=two_stage", "eval.blind=true"],
    ["optimization=two_stage", "run.share_align=false", "run.checkpoint_every=3"],
    ["optimization=two_stage", "scale.align.micro_batch_size=8"],  # memory layout, as for the job signature
    ["optimization=two_stage", "data.finetune_file=x.json"],
], ids=lambda o: " ".join(o[1:]) or o[0])
def test_what_the_align_does_not_depend_on_is_shared(base, overrides):
    assert align_signature(compose(overrides)) == base


@pytest.mark.parametrize("override", [
    "encoder=siglip", "encoder=clip_224", "projector=linear", "projector=resampler", "projector=pool",
    "features=last", "features=multi", "resize=naive", "llm=vicuna_v15",
    "llm=llama2_chat",  # same architecture, another prompt format
    "seed=8", "scale.align.lr=1e-3", "scale.align.batch_size=16", "scale.align_epochs=2",
    "scale.max_seq_len=128", "scale.vocab_size=256", "scale.llm_shrink.depth=8",
    "data=synthetic_grounded",  # another synthetic world: other captions, another tokenizer
    "data.synthetic.n_align=100", "data.drop_text_only=true",
])
def test_what_the_align_depends_on_separates(base, override):
    assert align_signature(compose(TWO_STAGE + [override])) != base


def test_the_paper_mixes_share_one_align():
    """They differ only in their finetune file: all align on the same 558K captions."""
    mixes = ("llava_v15", "llava_lrv", "llava_lvis4v", "llava_lvis4v_lrv", "llava_v15_no_language")
    sigs = {align_signature(compose(["optimization=two_stage", "scale=full", f"data={mix}"])) for mix in mixes}
    assert len(sigs) == 1
    assert align_signature(compose(["optimization=two_stage", "scale=full", "data=llava_v15",
                                    "data.align_file=other.json"])) not in sigs


def test_single_stage_plans_have_no_align():
    assert align_signature(compose(["optimization=single_stage"])) is None
    assert align_signature(compose(["optimization=full_finetune"])) is None


def test_sharing_runs_are_still_different_jobs(base):
    assert signature(compose(TWO_STAGE)) != signature(compose(TWO_STAGE + ["epochs=2"]))
    assert signature(compose(TWO_STAGE)) == signature(compose(TWO_STAGE + ["run.share_align=false"]))
