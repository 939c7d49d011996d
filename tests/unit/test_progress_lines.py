"""Training progress where no bar shows it (a job's log file): a line after the first step, then every
`run.progress_every_s` seconds or `run.progress_every_steps` steps, with step/total, loss, samples/s
and ETA; the one line an interrupted job ends with."""

from __future__ import annotations

from vlm_sweeps.train.loop import ProgressEvery, ProgressLines, duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_after_the_first_step_then_every_n_seconds_with_loss_speed_and_eta():
    clock = Clock()
    lines = ProgressLines("finetune", 600, 0, ProgressEvery(seconds=30.0, steps=0), clock=clock)
    clock.now += 2.0
    # the first step pays for warm-up (loading, caches): it is said, not taken as the pace
    assert lines.update(1, 3.0, 16) == "stage finetune: step 1/600 (0%), loss 3.000, first step in 2.0 s"
    said = []
    for step in range(2, 121):  # 0.25 s a step, losses 2 and 4 alternating
        clock.now += 0.25
        line = lines.update(step, 2.0 if step % 2 else 4.0, 16)
        if line:
            said.append((step, line))
    # 30 s after the first line: step 121 would be the 120th step since; none before
    assert said == []
    clock.now += 0.25
    line = lines.update(121, 2.0, 16)
    # over the 120 steps since the last line: mean loss 3, 16 samples per 0.25 s; ETA: 479 steps at 0.25 s
    assert line == "stage finetune: step 121/600 (20%), loss 3.000, 64.0 samples/s, ETA 2m00s"


def test_a_step_cap_a_resumed_stage_and_off():
    clock = Clock()
    lines = ProgressLines("align", 100, 40, ProgressEvery(seconds=30.0, steps=10), clock=clock)
    clock.now += 1.0
    # a resumed stage: its first step in this attempt says where it is
    assert lines.update(41, 1.5, 8) == "stage align: step 41/100 (41%), loss 1.500, first step in 1.0 s"
    said = {}
    for step in range(42, 61):
        clock.now += 1.0
        line = lines.update(step, 1.0, 8)
        if line:
            said[step] = line
    assert list(said) == [51]  # every 10 steps (before 30 s)
    assert said[51].endswith("8.0 samples/s, ETA 49s")  # 49 steps left at this attempt's pace, 1 s a step
    off = ProgressLines("align", 100, 0, ProgressEvery(seconds=0, steps=0), clock=clock)
    assert all(off.update(step, 1.0, 8) is None for step in range(1, 101))


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (0.4, 42, 190, 3600 * 2 + 300, -3)] == ["0s", "42s", "3m10s", "2h05m", "0s"]
