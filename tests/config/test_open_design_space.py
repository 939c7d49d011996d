"""The design space is open: a new axis, LLM family or encoder is option files (and one row of the
axis table for an axis), with no code change; what identifies a job follows by default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, SMALL, compose
from vlm_sweeps import identity, naming, validate


def _searchpath(folder: Path) -> str:
    return f"hydra.searchpath=[file://{folder}]"


@pytest.fixture()
def probe_axis(tmp_path, monkeypatch):
    """A throwaway axis group `probe` with options a and b, in a folder outside the repo, and its
    row in the axis table: nothing else is edited."""
    conf = tmp_path / "my_conf"
    (conf / "probe").mkdir(parents=True)
    (conf / "probe" / "a.yaml").write_text("name: a\nstrength: 1\n")
    (conf / "probe" / "b.yaml").write_text("name: b\nstrength: 2\n")
    monkeypatch.setattr(naming, "AXIS_TABLE", naming.AXIS_TABLE + (naming.Axis("probe"),))
    return conf


def test_a_new_axis_group_enters_the_signature_and_the_align_signature(probe_axis, tmp_path):
    base = SMALL + ["optimization=two_stage", _searchpath(probe_axis)]
    a, b = (compose(base + [f"+probe={o}"], root=tmp_path) for o in ("a", "b"))
    assert identity.signature(a) != identity.signature(b)
    assert identity.align_signature(a) != identity.align_signature(b)
    # a field of the new group, not only its name, is part of both
    a2 = compose(base + ["+probe=a", "probe.strength=3"], root=tmp_path)
    assert identity.signature(a2) != identity.signature(a)
    assert identity.align_signature(a2) != identity.align_signature(a)
    # and the axis table makes it a logged axis and part of the run name
    from vlm_sweeps.job import axes_of, run_name

    axes = axes_of(a)
    assert axes["probe"] == "a" and "probe=a" in run_name(axes)
    validate.check(a)


def test_run_time_keys_stay_out_of_the_signature(tmp_path):
    base = SMALL + ["optimization=two_stage"]
    ref = compose(base, root=tmp_path)
    for override in ["run.threads=1", "tracking.heartbeat_s=5", "paths.models_dir=/x", "eval.cache=false",
                     "scale.finetune.micro_batch_size=4"]:
        other = compose(base + [override], root=tmp_path)
        assert identity.signature(other) == identity.signature(ref), override
        assert identity.align_signature(other) == identity.align_signature(ref), override


# transformers causal LM families the repo has no option for, with their config.json fields
# (Qwen3-8B, OLMo-2-1124-7B, granite-3.1-8b-base)
NEW_FAMILIES = {
    "qwen3_8b": """name: qwen3_8b
id: Qwen/Qwen3-8B
model_type: qwen3
prompt: chatml
config:
  vocab_size: 151936
  hidden_size: 4096
  num_hidden_layers: 36
  num_attention_heads: 32
  num_key_value_heads: 8
  head_dim: 128
  intermediate_size: 12288
  rms_norm_eps: 1.0e-6
  rope_theta: 1000000
  max_position_embeddings: 40960
""",
    "olmo2_7b": """name: olmo2_7b
id: allenai/OLMo-2-1124-7B
model_type: olmo2
prompt: base
config:
  vocab_size: 100352
  hidden_size: 4096
  num_hidden_layers: 32
  num_attention_heads: 32
  num_key_value_heads: 32
  intermediate_size: 11008
  rms_norm_eps: 1.0e-6
  rope_theta: 500000
  max_position_embeddings: 4096
""",
    "granite31_8b": """name: granite31_8b
id: ibm-granite/granite-3.1-8b-base
model_type: granite
prompt: base
config:
  vocab_size: 49155
  hidden_size: 4096
  num_hidden_layers: 40
  num_attention_heads: 32
  num_key_value_heads: 8
  intermediate_size: 12800
  rms_norm_eps: 1.0e-5
  embedding_multiplier: 12.0
  attention_multiplier: 0.0078125
  residual_multiplier: 0.22
  logits_scaling: 16.0
""",
}


@pytest.mark.parametrize("name", sorted(NEW_FAMILIES))
def test_an_llm_of_a_new_family_is_one_yaml_file(name, tmp_path, small_world, session_root):
    from vlm_sweeps.data.instruct import InstructDataset, collate
    from vlm_sweeps.data.llava import load_llava
    from vlm_sweeps.models.builder import build_vlm, image_transforms
    from vlm_sweeps.models.prompts import get_format

    conf = tmp_path / "my_conf"
    (conf / "llm").mkdir(parents=True)
    (conf / "llm" / f"{name}.yaml").write_text(NEW_FAMILIES[name])
    cfg = compose(SMALL + [_searchpath(conf), f"llm={name}"], root=session_root)
    validate.check(cfg)
    world, tok = small_world
    model = build_vlm(cfg, tok)
    llm = model.llm
    assert llm.config.model_type == cfg.llm.model_type
    # the declared proportions shrunk by scale.llm_shrink (width 64, depth 16, heads 8)
    declared = cfg.llm.config
    assert llm.config.num_attention_heads == declared.num_attention_heads // 8
    assert llm.config.num_hidden_layers == max(1, int(declared.num_hidden_layers / 16 + 0.5))  # half rounds up
    assert llm.config.intermediate_size == declared.intermediate_size // 64
    records = [r for r in load_llava(Path(world) / "finetune.json") if r.is_multimodal][:2]
    ds = InstructDataset(records, tok, get_format(cfg.llm.prompt), image_transforms(cfg, model),
                         cfg.scale.max_seq_len, model.num_patches)
    batch = collate([ds[0], ds[1]])
    loss = model(batch["pixel_values"], batch["input_ids"], batch["labels"]).loss
    loss.backward()
    assert torch.isfinite(loss)


def test_an_unknown_model_type_or_missing_field_says_what_to_fix(tmp_path):
    conf = tmp_path / "my_conf"
    (conf / "llm").mkdir(parents=True)
    (conf / "llm" / "bad.yaml").write_text("name: bad\nid: x/y\nmodel_type: lama\nprompt: base\n"
                                           "config: {hidden_size: 64}\n")
    (conf / "llm" / "short.yaml").write_text("name: short\nid: x/y\nmodel_type: llama\nprompt: base\n"
                                             "config: {hidden_size: 64, num_attention_heads: 0}\n")
    with pytest.raises(validate.ConfigError, match=r"llm=bad: model_type 'lama' is not a transformers causal LM"):
        validate.check(compose(SMALL + [_searchpath(conf), "llm=bad"], root=tmp_path))
    with pytest.raises(validate.ConfigError, match=r"(?s)llm=short: llm.config lacks num_hidden_layers, "
                                                   r"intermediate_size.*num_attention_heads=0"):
        validate.check(compose(SMALL + [_searchpath(conf), "llm=short"], root=tmp_path))


def test_the_readme_shows_how_to_add_an_option():
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Adding an option"):]
    section = section[:section.index("\n## ", 4)]
    for needle in ("model_type:", "config:", "kind: open_clip", "hydra.searchpath", "AXIS_TABLE", "KINDS"):
        assert needle in section, needle
    assert re.search(r"```yaml\n# conf/llm/\w+\.yaml", section)
