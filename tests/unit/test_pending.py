"""What a FINISHED run lacks of the suite a re-run asks for (eval/pending.py): expected lists
written from the rule (headline metric present, on the same slim size, blind apart)."""

from vlm_sweeps import naming
from vlm_sweeps.eval.pending import evaluated_tag, lacking

SUITE = ["synth_vqa", "synth_count"]
DONE = {"synth_vqa/accuracy": 0.5, "synth_count/accuracy": 0.4, "synth_pope/f1": 0.1}
PARAMS = {"benchmarks.max_examples": "None"}


def test_a_run_with_every_headline_on_the_same_size_lacks_nothing():
    assert lacking(SUITE, None, False, DONE, {}, PARAMS) == []


def test_a_larger_suite_lacks_only_the_new_benchmarks():
    # synth_pope has a secondary metric but not its headline: it was not evaluated as such
    assert lacking(SUITE + ["synth_pope", "synth_ref"], None, False, DONE, {}, PARAMS) == ["synth_pope", "synth_ref"]


def test_another_slim_size_re_evaluates_and_a_later_evaluation_is_remembered():
    assert lacking(SUITE, 5, False, DONE, {}, PARAMS) == SUITE
    tags = {evaluated_tag("synth_vqa", False): "5"}
    assert lacking(SUITE, 5, False, DONE, tags, PARAMS) == ["synth_count"]
    assert lacking(SUITE, None, False, DONE, tags, PARAMS) == ["synth_vqa"]


def test_the_blind_control_is_its_own_evaluation():
    assert lacking(SUITE, None, True, DONE, {}, PARAMS) == SUITE
    blind = {**DONE, "blind/synth_vqa/accuracy": 0.2, "blind/synth_count/accuracy": 0.2}
    tags = {evaluated_tag(b, True): "None" for b in SUITE}
    assert lacking(SUITE, None, True, blind, tags, PARAMS) == []
    assert evaluated_tag("synth_vqa", True) == naming.TAG_PREFIX + "evaluated.blind/synth_vqa"
