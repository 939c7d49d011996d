"""The evaluation setting a job records per benchmark (eval/settings.py): what the scores depend on,
in one canonical text, the same for the same evaluation."""

from __future__ import annotations

import json

from vlm_sweeps import naming
from vlm_sweeps.data.synthetic import VERSION as WORLD_VERSION
from vlm_sweeps.eval import registry, settings
from vlm_sweeps.eval.harness import HARNESS_VERSION

CFG = {"benchmarks": {"suite": ["synth_vqa", "vqav2"], "max_examples": 8}, "scale": {"precision": "bf16"}}


def _rows(n: int, start: int = 0) -> list[dict]:
    return [{"qid": i, "question": f"q{i}", "prediction": "x", "answers": ["a"]} for i in range(start, start + n)]


def test_a_setting_says_what_was_scored_and_how():
    tags = settings.tags(CFG, {"synth_vqa": _rows(5), "vqav2": _rows(8)}, True,
                         {"synth_vqa/accuracy": 0.25, "vqav2/accuracy": 0.5})
    synth = json.loads(tags[naming.TAG_EVAL_SETTING + "blind/synth_vqa"])
    assert synth == {"n": 5, "max_examples": 8, "version": f"1+world{WORLD_VERSION}", "blind": True,
                     "max_new_tokens": registry.get("synth_vqa").max_new_tokens, "harness": HARNESS_VERSION,
                     "dtype": "bf16", "examples": settings.examples_digest(_rows(5)), "score": 0.25}
    assert json.loads(tags[naming.TAG_EVAL_SETTING + "blind/vqav2"])["version"] == "1"  # files: the loader's own
    # canonical: equal settings are equal text, whatever the rows' order; other examples, another digest
    again = settings.tags(CFG, {"synth_vqa": _rows(5)[::-1]}, True, {"synth_vqa/accuracy": 0.25})
    assert again[naming.TAG_EVAL_SETTING + "blind/synth_vqa"] == tags[naming.TAG_EVAL_SETTING + "blind/synth_vqa"]
    assert settings.examples_digest(_rows(5, start=1)) != settings.examples_digest(_rows(5))
    assert settings.decode(tags[naming.TAG_EVAL_SETTING + "blind/vqav2"])["n"] == 8 and settings.decode("8") == {}
