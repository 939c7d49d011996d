"""Split-modality batching and fractional epochs."""

from vlm_sweeps.data.samplers import batch_stream, epoch_batches, steps_for


def test_batches_never_mix_modalities_and_cover_every_sample_once():
    modalities = [i % 3 != 0 for i in range(50)]
    batches = epoch_batches(modalities, 8, seed=7, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(50))
    for b in batches:
        assert len({modalities[i] for i in b}) == 1


def test_epochs_reshuffle_and_are_reproducible():
    mods = [True] * 40
    assert epoch_batches(mods, 8, 7, 0) == epoch_batches(mods, 8, 7, 0)
    assert epoch_batches(mods, 8, 7, 0) != epoch_batches(mods, 8, 7, 1)


def test_fractional_epochs_round_up_to_whole_steps():
    mods = [True] * 80  # 10 batches of 8 per epoch
    assert steps_for(mods, 8, 1.0) == 10
    assert steps_for(mods, 8, 1.5) == 15
    assert steps_for(mods, 8, 0.25) == 3


def test_stream_resumes_at_a_step():
    mods = [True] * 24
    full = batch_stream(mods, 8, seed=3)
    first = [next(full) for _ in range(7)]
    resumed = batch_stream(mods, 8, seed=3, start_step=4)
    assert [next(resumed) for _ in range(3)] == first[4:]
